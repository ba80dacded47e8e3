"use strict";
// Look back: this page keeps the distinct pictures it was shown (one each time the screen has
// been still for a moment after a change: slides, not every frame of typing) within a memory
// budget, and shows any of them again while the live picture goes on underneath. Nothing leaves
// the page; the presenter can turn it off for a share (`history`), and then nothing is kept.
window.screenshareLookback = (options) => {
  const { canvas, announce, onChange } = options;
  const $ = (id) => document.getElementById(id);
  const past$ = $("past"), panel = $("lookback"), strip = $("timeline"), label = $("lookback-text");
  const pastCtx = past$.getContext("2d", { alpha: false });

  // What the page may hold: whichever limit comes first. 40 MB of pictures is what keeps the
  // browser's whole cost of looking back (the pictures, the last one's pixels, the buffers on
  // their way to the collector) within 64 MB: measured in `cargo xtask bench`.
  const BUDGET_BYTES = 40 * 1024 * 1024, KEEP_MS = 30 * 60 * 1000;
  // A browser without compression streams (before 2023) keeps nothing.
  const CAN_KEEP = typeof CompressionStream === "function" && typeof DecompressionStream === "function";
  // Still this long after a change: a picture worth keeping.
  const STILL_MS = 1000;
  // A screen that never settles (a terminal running top, a scrolling log) is looked at this
  // often anyway: the viewer can still look back at it, a picture every so often.
  const BUSY_MS = 10 * 1000;
  // An update touching less than this share of the screen does not break the stillness (a
  // blinking caret, a clock, a pointer's trail).
  const SMALL = 0.005;
  // A picture is kept only when at least this share of its pixels differs from the one kept
  // before it (a caret that blinked is not a new slide).
  const DISTINCT = 0.01;
  const THUMB_WIDTH = 192;
  // One canvas for every thumbnail (toBlob takes its pixels at once): a canvas per picture
  // would leave its pixels to the garbage collector, which takes its time with canvases.
  const thumb = document.createElement("canvas");

  // Oldest first: { at, width, height, data, thumbUrl, bytes, pointer }; `data` is the picture's
  // RGBA pixels, deflated, in the chunks the compressor gave.
  const pictures = [];
  // Whether the share lets pages keep pictures: null until its status says.
  let allowed = null, bytes = 0;
  // Changes since the last look at the screen, when the screen last changed much, since when it
  // has kept changing, and the timer that looks once it has been still.
  let changedArea = 0, quietSince = 0, busySince = 0, timer = null;
  // The pixels of the picture kept last (to tell a new picture from the same one) and how much
  // changed since (to tell whether the live screen is that picture).
  let reference = null, referenceBytes = 0, sinceKept = 0;
  // The picture looked at (an index in `pictures`), or -1 for live; pictures kept since.
  let looking = -1, keptWhileLooking = 0, drawToken = 0;

  const timeOf = (at) => new Date(at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });

  // Called for every update drawn on the live canvas.
  function seen(update) {
    if (update.pieces.length === 0) return;
    const screen = Math.max(1, update.width * update.height);
    const area = update.full ? screen : update.pieces.reduce((sum, p) => sum + p.w * p.h, 0);
    changedArea += area;
    sinceKept += area;
    const now = performance.now();
    if (area >= screen * SMALL) {
      quietSince = now;
      busySince = busySince || now;
      arm(now - busySince >= BUSY_MS ? 0 : STILL_MS);
    }
    else if (changedArea >= screen * SMALL && timer === null) arm(STILL_MS);
  }

  function arm(ms) {
    clearTimeout(timer);
    timer = setTimeout(look, ms);
  }

  // The screen has been still (or changed only in small places) for a moment: keep it when it
  // differs from the picture kept before.
  function look() {
    timer = null;
    const now = performance.now(), wait = STILL_MS - (now - quietSince);
    if (wait > 0 && !(busySince && now - busySince >= BUSY_MS)) { arm(wait); return; }
    busySince = 0;
    // Counted for whoever wants to know the page looked (tests, the benchmark).
    document.body.dataset.stills = String(Number(document.body.dataset.stills || 0) + 1);
    if (!allowed || !CAN_KEEP || canvas.width < 2 || changedArea === 0) return;
    changedArea = 0;
    let pixels;
    try { pixels = new Uint32Array(canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data.buffer); }
    catch { return; }
    if (reference && reference.length === pixels.length && !differs(reference, pixels, pixels.length * DISTINCT)) {
      sinceKept = 0;
      return;
    }
    keep(pixels);
  }

  function differs(a, b, enough) {
    let count = 0;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i] && ++count >= enough) return true;
    return false;
  }

  function keep(pixels) {
    // Shown since the last big change (or now, when the page never saw one).
    const at = Date.now() - (quietSince ? Math.max(0, performance.now() - quietSince) : 0);
    const width = canvas.width, height = canvas.height, pointer = options.pointer();
    reference = pixels; referenceBytes = pixels.byteLength; sinceKept = 0;
    thumb.width = THUMB_WIDTH; thumb.height = Math.max(1, Math.round(height * THUMB_WIDTH / width));
    thumb.getContext("2d").drawImage(canvas, 0, 0, thumb.width, thumb.height);
    Promise.all([
      pack(new Uint8Array(pixels.buffer), width, height),
      new Promise((resolve) => thumb.toBlob(resolve, "image/jpeg", 0.7)),
    ]).then(([data, small]) => {
      if (!small || !allowed) return;
      const size = data.reduce((sum, chunk) => sum + chunk.byteLength, 0);
      const picture = { at, width, height, data, thumbUrl: URL.createObjectURL(small), bytes: size + small.size, pointer };
      pictures.push(picture);
      bytes += picture.bytes;
      if (looking >= 0) keptWhileLooking++;
      trim();
      renderStrip();
      render();
    }).catch((err) => console.warn("screenshare: could not keep a picture:", err));
  }

  // Pictures are kept deflated in ArrayBuffers, not as PNG Blobs: they come back exactly
  // (putImageData, no decoder in between), and the page's garbage collector counts their
  // memory, where a dropped Blob lingers in the browser until some later collection (measured:
  // the browser's memory kept growing past the budget). The pixels go in as they are (RGBA
  // rows, in bands of rows, each its own task so drawing the live screen never waits) and the
  // deflated chunks are kept as they come: nothing is copied on the way, little is left for
  // the collector.
  const BAND_ROWS = 32;
  async function pack(rgba, width, height) {
    const stream = new CompressionStream("deflate"), writer = stream.writable.getWriter();
    const collected = chunksOf(stream.readable), row = width * 4;
    for (let top = 0; top < height; top += BAND_ROWS) {
      await writer.write(rgba.subarray(top * row, Math.min(height, top + BAND_ROWS) * row));
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    await writer.close();
    return collected;
  }

  // The picture's pixels again, as ImageData.
  async function unpack(picture) {
    const stream = new DecompressionStream("deflate"), writer = stream.writable.getWriter();
    const collected = chunksOf(stream.readable);
    (async () => { for (const chunk of picture.data) await writer.write(chunk); await writer.close(); })().catch(() => {});
    const chunks = await collected, size = picture.width * picture.height * 4;
    if (chunks.reduce((sum, chunk) => sum + chunk.length, 0) !== size) throw new Error("a kept picture came back the wrong size");
    const pixels = new Uint8ClampedArray(size);
    let at = 0;
    for (const chunk of chunks) { pixels.set(chunk, at); at += chunk.length; }
    return new ImageData(pixels, picture.width, picture.height);
  }

  async function chunksOf(readable) {
    const reader = readable.getReader(), chunks = [];
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return chunks;
      chunks.push(value);
    }
  }

  // Lets go of the oldest pictures beyond the budget or older than half an hour.
  function trim() {
    const old = Date.now() - KEEP_MS;
    let dropped = false;
    while (pictures.length > 0 && (bytes + referenceBytes > BUDGET_BYTES || pictures[0].at < old)) {
      dropped = true;
      const gone = pictures.shift();
      bytes -= gone.bytes;
      URL.revokeObjectURL(gone.thumbUrl);
      // The picture looked at stays in view; if it is the one that goes, the next one shows.
      if (looking >= 0) looking = Math.max(0, looking - 1);
      strip.firstElementChild?.remove();
    }
    if (pictures.length === 0 && looking >= 0) toLive();
    else if (dropped && looking >= 0) draw();
  }
  setInterval(() => { if (pictures.length) { trim(); render(); } }, 60 * 1000);

  // The presenter allows keeping pictures, or no longer does (then everything kept goes).
  function allow(on) {
    if (on === allowed) return;
    allowed = on;
    if (!on) {
      clearTimeout(timer); timer = null;
      toLive();
      for (const p of pictures) URL.revokeObjectURL(p.thumbUrl);
      pictures.length = 0; bytes = 0; reference = null; referenceBytes = 0; changedArea = 0;
      strip.replaceChildren();
    } else {
      // Whatever is on screen now counts as a change to keep.
      changedArea = sinceKept = canvas.width * canvas.height;
      arm(STILL_MS);
    }
    render();
  }

  // Whether the live screen is the newest kept picture (nothing much changed since): then a
  // step back goes to the one before it.
  const liveIsNewest = () => sinceKept < canvas.width * canvas.height * SMALL;

  function back() {
    if (!allowed) { announce("The presenter turned off looking back for this share"); return; }
    if (looking < 0) {
      const index = pictures.length - (liveIsNewest() ? 2 : 1);
      if (index < 0) { announce(pictures.length ? "This is the first picture shown" : "No earlier picture yet"); return; }
      lookAt(index);
    } else if (looking > 0) lookAt(looking - 1);
    else announce("This is the oldest picture kept");
  }

  function forward() {
    if (looking < 0) return;
    const next = looking + 1;
    if (next < pictures.length && !(next === pictures.length - 1 && liveIsNewest())) lookAt(next);
    else toLive();
  }

  function lookAt(index) {
    if (index < 0 || index >= pictures.length) return;
    if (looking < 0) keptWhileLooking = 0;
    looking = index;
    draw();
    render();
    strip.children[index]?.scrollIntoView({ block: "nearest", inline: "center" });
  }

  // Shows the picture looked at, exactly as it was drawn.
  async function draw() {
    const picture = pictures[looking];
    if (!picture) return;
    const token = ++drawToken;
    try {
      const image = await unpack(picture);
      if (token !== drawToken) return;
      past$.width = picture.width; past$.height = picture.height;
      pastCtx.putImageData(image, 0, 0);
      past$.dataset.at = String(picture.at);
      past$.hidden = false;
      onChange();
    } catch (err) { console.warn("screenshare: could not show an earlier picture:", err); }
  }

  function toLive() {
    if (looking < 0) return;
    looking = -1;
    drawToken++;
    past$.hidden = true;
    render();
    onChange();
  }

  function renderStrip() {
    const have = strip.children.length;
    for (let i = have; i < pictures.length; i++) {
      const picture = pictures[i], button = document.createElement("button");
      button.type = "button";
      button.className = "thumb";
      const img = document.createElement("img");
      img.src = picture.thumbUrl;
      img.alt = "";
      const time = document.createElement("span");
      time.textContent = timeOf(picture.at);
      button.append(img, time);
      button.setAttribute("aria-label", `Picture shown at ${timeOf(picture.at)}`);
      button.addEventListener("click", () => lookAt(pictures.indexOf(picture)));
      strip.append(button);
    }
  }

  function render() {
    const lookingBack = looking >= 0;
    document.body.classList.toggle("looking-back", lookingBack);
    panel.hidden = !lookingBack;
    past$.hidden = !lookingBack || past$.hidden;
    document.body.dataset.kept = String(pictures.length);
    document.body.dataset.keptBytes = String(bytes + referenceBytes);
    const backButton = $("look-back");
    backButton.hidden = allowed !== true || !CAN_KEEP;
    backButton.disabled = pictures.length === 0;
    backButton.title = pictures.length ? `Look back at the ${pictures.length} picture${pictures.length === 1 ? "" : "s"} shown so far (←)` : "Look back: pictures shown will be kept here (←)";
    $("history-off").hidden = allowed !== false;
    if (!lookingBack) return;
    const picture = pictures[looking];
    label.textContent = `You are looking at ${timeOf(picture.at)} (${looking + 1} of ${pictures.length})`;
    $("to-live").textContent = keptWhileLooking > 0 ? `Back to live (${keptWhileLooking} new)` : "Back to live";
    $("past-older").disabled = looking === 0;
    [...strip.children].forEach((button, i) => {
      if (i === looking) button.setAttribute("aria-current", "true"); else button.removeAttribute("aria-current");
    });
  }

  // The stage makes room for the timeline (the picture shows whole below it).
  if (typeof ResizeObserver === "function") {
    new ResizeObserver(() => document.body.style.setProperty("--lookback-height", `${panel.offsetHeight + 18}px`)).observe(panel);
  }
  $("look-back").addEventListener("click", back);
  $("past-older").addEventListener("click", back);
  $("past-newer").addEventListener("click", forward);
  $("to-live").addEventListener("click", toLive);
  render();

  return {
    seen, allow, back, forward, toLive, unpack,
    get allowed() { return allowed === true; },
    // The picture looked at, or null while live.
    get current() { return looking >= 0 ? pictures[looking] : null; },
  };
};
