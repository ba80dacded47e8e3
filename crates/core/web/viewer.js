"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const canvas = $("screen"), overlay = $("pointer"), view$ = $("view"), statusText = $("status-text"), body = document.body;
  const ctx = canvas.getContext("2d", { alpha: false });
  const pointerCtx = overlay.getContext("2d");

  // This viewer's own view; it never touches the share, only this page.
  const saved = (() => { try { return JSON.parse(localStorage.getItem("screenshare.view")) || {}; } catch { return {}; } })();
  const view = {
    fit: saved.fit !== false,
    format: saved.format === "lossless" || saved.format === "png" ? "lossless" : "adaptive",
    cap: Number(saved.cap) || 0,
    volume: Number.isFinite(saved.volume) ? Math.min(1, Math.max(0, saved.volume)) : 1,
    snapshotPointer: saved.snapshotPointer === true,
    // Every visit starts muted (a browser plays sound only after a gesture): never saved.
    sound: false,
  };
  const save = () => { try { localStorage.setItem("screenshare.view", JSON.stringify({ ...view, sound: undefined })); } catch { /* private mode */ } };

  // `after`: the frame this canvas shows (0: none yet, so the next update is the whole screen).
  let shareFps = 10, after = 0, shareState = "starting", ended = false, shown = false, wake = null, inFlight = null;
  let framesOk = true, statusOk = true, lastAnnounced = "";
  // Where this browser stands with the share: joining, pin, waiting, admitted, removed. The
  // loops stop (`stopLoops`) when the server says it is no longer admitted.
  let access = "joining", stopLoops = false;
  // Why a shared window is out of sight, when one is: "closed", "minimised" or "other_desktop".
  let windowGone = null;
  // Bumped by a change of picture mode: an update begun before it must not set `after`.
  let generation = 0;
  const pointer = { shape: 0, x: 0, y: 0, hotX: 0, hotY: 0, scale: 1, drawn: null };
  // Pointer shapes by id, once loaded (a looked-back picture or a snapshot may need an old one).
  const shapes = new Map(), loadingShapes = new Set();

  // Short messages that come and go (a snapshot saved, a key that does nothing here).
  let toastTimer = null;
  function announce(text) {
    const toast = $("toast");
    toast.textContent = text;
    toast.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { toast.hidden = true; }, 3500);
  }

  const lookback = window.screenshareLookback({
    canvas, announce,
    pointer: () => ({ shape: pointer.shape, x: pointer.x, y: pointer.y, hotX: pointer.hotX, hotY: pointer.hotY, scale: pointer.scale }),
    onChange: () => { drawPointer(); renderTools(); },
  });

  function render() {
    body.classList.toggle("actual", !view.fit);
    $("fit").textContent = view.fit ? "Fit" : "1:1";
    $("format").value = view.format;
    $("cap").value = String(view.cap);
    renderSound();
    renderTools();
    if (!view.fit) { view$.style.width = canvas.width + "px"; view$.style.height = canvas.height + "px"; }
    else { view$.style.width = ""; view$.style.height = ""; }
    let state, text;
    if (ended) { state = "ended"; text = "The share has ended"; }
    else if (access === "removed") { state = "ended"; text = "The presenter removed you from this share"; }
    else if (!framesOk || !statusOk) { state = "reconnecting"; text = "Reconnecting…"; }
    else if (access === "pin") { state = "waiting"; text = "PIN needed"; }
    else if (access === "waiting") { state = "waiting"; text = "Waiting to be let in…"; }
    else if (access === "full") { state = "waiting"; text = "The share is full — trying again"; }
    else if (access === "joining") { state = "waiting"; text = "Connecting…"; }
    else if (shareState === "paused") { state = "paused"; text = "Paused by the presenter"; }
    else if (shareState === "source_lost") {
      state = "lost";
      text = windowGone === "closed" ? "The shared window was closed — showing its last picture"
        : windowGone === "minimised" ? "The shared window is minimised — showing its last picture"
        : windowGone === "other_desktop" ? "The shared window is on another desktop — showing its last picture"
        : "Screen lost — showing the last frame";
    }
    else if (!shown) { state = "waiting"; text = "Waiting for the screen…"; }
    else { state = "live"; text = "Live"; }
    body.dataset.state = state;
    body.classList.toggle("problem", state !== "live");
    $("reload").hidden = !ended;
    const gated = access !== "admitted";
    view$.hidden = !shown || access === "removed";
    $("waiting").hidden = (shown && access !== "removed") || access === "pin";
    $("waiting-text").textContent = access === "removed" ? "The presenter removed you from this share."
      : ended ? "The share has ended."
      : access === "waiting" ? "Waiting for the presenter to let you in…"
      : access === "full" ? "This share has as many viewers as it admits. Trying again…"
      : gated ? "Connecting to the shared screen…" : "Waiting for the screen…";
    $("gate").hidden = access !== "pin" || ended;
    // The status is a live region: touch it only when it says something new.
    if (text !== lastAnnounced) { statusText.textContent = text; lastAnnounced = text; }
  }

  const sleep = (ms) => new Promise((resolve) => { const t = setTimeout(resolve, ms); wake = () => { clearTimeout(t); resolve(); }; });
  const interrupt = () => { if (wake) { const w = wake; wake = null; w(); } };
  // A view change drops the request under way (it may be a long poll) and asks again at once.
  const restart = () => { if (inFlight) { inFlight.changedView = true; inFlight.abort(); } interrupt(); };

  function endShare() { ended = true; render(); }

  // Reads one update (the format is documented in the engine's frame/wire.rs).
  function parse(buffer) {
    const data = new DataView(buffer);
    if (buffer.byteLength < 12 || data.getUint8(0) !== 2) throw new Error("not an update this page can read");
    const flags = data.getUint8(1);
    const update = {
      full: (flags & 1) === 1,
      video: (flags & 2) === 2,
      // Absent: the size of this page's canvas (a new size always comes whole).
      width: canvas.width, height: canvas.height,
      seq: data.getUint32(4, true) + data.getUint32(8, true) * 4294967296,
      // Absent: the pointer is as the frame before (the one this page has) showed it.
      pointer: undefined,
      pieces: [],
    };
    let at = 12;
    if ((flags & 3) && !(flags & 8)) throw new Error("a whole or video update without its size");
    if (flags & 8) {
      if (buffer.byteLength < at + 4) throw new Error("update cut short");
      update.width = data.getUint16(at, true);
      update.height = data.getUint16(at + 2, true);
      at += 4;
    }
    if (flags & 4) {
      if (buffer.byteLength < at + 16) throw new Error("update cut short");
      update.pointer = { shape: data.getUint32(at, true), x: data.getInt16(at + 4, true), y: data.getInt16(at + 6, true),
        hotX: data.getUint16(at + 8, true), hotY: data.getUint16(at + 10, true), scale: data.getUint16(at + 12, true) / 1000 };
      at += 16;
    }
    for (let n = data.getUint16(2, true); n > 0; n--) {
      const piece = { x: data.getUint16(at, true), y: data.getUint16(at + 2, true),
        w: data.getUint16(at + 4, true), h: data.getUint16(at + 6, true), kind: data.getUint8(at + 8) };
      at += 9;
      if (piece.kind === 0) {
        piece.fill = `rgb(${data.getUint8(at)},${data.getUint8(at + 1)},${data.getUint8(at + 2)})`;
        at += 3;
      } else if (piece.kind === 3 || piece.kind === 4) {
        const length = data.getUint32(at, true);
        at += 4;
        if (at + length > buffer.byteLength || length < 1) throw new Error("update cut short");
        if (piece.kind === 3) {
          const codecLength = data.getUint8(at);
          piece.codec = String.fromCharCode(...new Uint8Array(buffer, at + 1, codecLength));
          piece.bytes = new Uint8Array(buffer, at + 1 + codecLength, length - 1 - codecLength);
        } else {
          piece.bytes = new Uint8Array(buffer, at, length);
        }
        at += length;
      } else if (piece.kind === 5) {
        if (at + 2 > buffer.byteLength) throw new Error("update cut short");
        const bits = data.getUint8(at), colours = data.getUint8(at + 1);
        if (![1, 2, 4].includes(bits) || colours < 1 || colours > 16) throw new Error("a few-colour piece that does not add up");
        const rowBytes = Math.ceil(piece.w * bits / 8), length = 2 + colours * 3 + rowBytes * piece.h;
        if (at + length > buffer.byteLength) throw new Error("update cut short");
        piece.indexed = { bits, rowBytes, palette: new Uint8Array(buffer, at + 2, colours * 3), packed: new Uint8Array(buffer, at + 2 + colours * 3, rowBytes * piece.h) };
        at += length;
      } else {
        const length = data.getUint32(at, true);
        at += 4;
        if (at + length > buffer.byteLength) throw new Error("update cut short");
        piece.blob = new Blob([new Uint8Array(buffer, at, length)], { type: piece.kind === 1 ? "image/png" : "image/jpeg" });
        at += length;
      }
      update.pieces.push(piece);
    }
    if (at !== buffer.byteLength) throw new Error("bytes after the update's last piece");
    return update;
  }

  // Motion comes as H.264 video while the screen is in motion (the engine decides when): a
  // <video> over the canvas plays it through Media Source Extensions and chases the live edge.
  // The canvas under it keeps the last tiles; when the motion ends the tiles that changed come
  // lossless and the video goes. A browser that cannot play it never asks and stays on tiles.
  const motion$ = $("motion");
  const MediaSourceKind = window.ManagedMediaSource || window.MediaSource;
  let videoBroken = !MediaSourceKind || !MediaSourceKind.isTypeSupported('video/mp4; codecs="avc1.42E01F"');
  const video = { source: null, buffer: null, codec: "", queue: [], appended: 0, starts: 0 };

  function videoStart(codec, init) {
    if (video.buffer && video.source && video.source.readyState === "open") {
      // The engine changed the video's size (to keep the presenter's CPU free): the same buffer
      // takes the new init segment and plays on, as adaptive players switch renditions.
      if (codec !== video.codec) video.queue.push({ codec });
      video.queue.push(init);
      video.codec = codec;
      return;
    }
    videoStop();
    video.codec = codec;
    const source = new MediaSourceKind();
    video.source = source;
    video.starts++;
    motion$.dataset.starts = String(video.starts);
    video.queue = [init];
    const url = URL.createObjectURL(source);
    motion$.disableRemotePlayback = true;
    motion$.src = url;
    source.addEventListener("sourceopen", () => {
      URL.revokeObjectURL(url);
      if (video.source !== source) return;
      try {
        const buffer = source.addSourceBuffer(`video/mp4; codecs="${codec}"`);
        // Pictures follow one another whatever their timestamps: a page that joined, or
        // skipped to a newer keyframe, plays on from where it is.
        buffer.mode = "sequence";
        buffer.addEventListener("updateend", () => { if (video.buffer === buffer) { chase(); pump(); } });
        buffer.addEventListener("error", () => videoFailed("the browser could not decode the video"));
        video.buffer = buffer;
        pump();
      } catch (err) { videoFailed(err); }
    }, { once: true });
  }

  function pump() {
    const buffer = video.buffer;
    try {
      while (buffer && !buffer.updating && video.queue.length > 0 && video.queue[0].codec) {
        const { codec } = video.queue.shift();
        if (buffer.changeType) buffer.changeType(`video/mp4; codecs="${codec}"`);
      }
      if (!buffer || buffer.updating || video.queue.length === 0) return;
      buffer.appendBuffer(video.queue.shift()); video.appended++; motion$.dataset.appended = String(video.appended);
    } catch (err) { videoFailed(err); }
  }

  // Plays the newest picture: jumps when more than a quarter second behind, plays a little
  // faster when a little behind, and forgets what it played. While sound plays, the picture
  // keeps to the sound's time instead (the sound needs more buffer to play without gaps, and
  // lips must match the voice): a little faster or slower, a jump when far off.
  function chase() {
    const buffer = video.buffer;
    if (!buffer || buffer.buffered.length === 0) return;
    const last = buffer.buffered.length - 1, end = buffer.buffered.end(last), lag = end - motion$.currentTime;
    const clock = soundClock();
    if (clock !== null && !motion$.seeking) {
      const heard = clock - (sound.outputDelay || 0);
      const target = Math.min(heard + videoOffset(), end - 0.03), ahead = motion$.currentTime - target;
      if (Math.abs(ahead) > 0.25 && target >= buffer.buffered.start(last)) motion$.currentTime = target;
      motion$.playbackRate = Math.min(1.1, Math.max(0.9, 1 - ahead));
    } else {
      if (lag > 0.25 || motion$.currentTime < buffer.buffered.start(last)) {
        motion$.currentTime = Math.max(buffer.buffered.start(last), end - 0.03);
      }
      motion$.playbackRate = lag > 0.1 ? 1.1 : 1;
    }
    if (motion$.paused) motion$.play().catch(() => {});
    const start = buffer.buffered.start(0);
    if (!buffer.updating && motion$.currentTime - start > 10) buffer.remove(start, motion$.currentTime - 2);
  }

  function videoStop() {
    video.source = null; video.buffer = null; video.queue = [];
    if (!motion$.hidden || motion$.src) {
      motion$.hidden = true;
      motion$.removeAttribute("src");
      motion$.load();
    }
    body.dataset.picture = "tiles";
  }

  // Shows the video once it has a picture: until then the canvas stays.
  motion$.addEventListener("loadeddata", () => {
    if (!video.source) return;
    motion$.hidden = false;
    body.dataset.picture = "video";
  });
  motion$.addEventListener("error", () => { if (video.source) videoFailed("the browser could not play the video"); });

  // This browser cannot play the share's video after all: tiles from now on, without fuss.
  function videoFailed(why) {
    console.info("screenshare: staying on tiles, the video does not play here:", why);
    videoBroken = true;
    videoStop();
    restart();
  }

  function applyVideo(update) {
    if (canvas.width !== update.width || canvas.height !== update.height) {
      // A page that joined mid-motion: the canvas has nothing yet, the tiles come after.
      canvas.width = overlay.width = update.width;
      canvas.height = overlay.height = update.height;
      pointer.drawn = null;
      after = 0;
    }
    for (const piece of update.pieces) {
      if (piece.kind === 3) videoStart(piece.codec, piece.bytes);
      else if (piece.kind === 4 && video.source) video.queue.push(piece.bytes);
    }
    pump();
    Object.assign(pointer, update.pointer);
    drawPointer();
    shown = true;
  }

  // Sound comes as Opus in MP4 records between the updates (the engine's audio/record.rs),
  // asked for only while this viewer has it on. Its times are on the share's clock, as the
  // video's are: the sound plays just behind its own live edge, and while the video plays, the
  // video keeps to the sound's time (so lips and voice agree). The video's buffer places pictures
  // one after another ("sequence"), so its times are the share's plus the buffer's
  // timestampOffset, which the browser keeps up to date.
  const videoOffset = () => (video.buffer ? video.buffer.timestampOffset : 0);
  const SOUND_START = 0xa1, SOUND_FRAGMENT = 0xa2;
  // How far behind the newest sound the page plays, in seconds: fragments come every 60 ms.
  const SOUND_LAG = 0.08;
  const sound$ = $("sound");
  sound$.volume = view.volume;
  let soundBroken = !MediaSourceKind || !MediaSourceKind.isTypeSupported('audio/mp4; codecs="opus"');
  const sound = { offered: false, source: null, buffer: null, queue: [], appended: 0 };
  const soundWanted = () => view.sound && sound.offered && !soundBroken;

  function renderSound() {
    $("sound-controls").hidden = !sound.offered || soundBroken;
    const toggle = $("sound-toggle");
    toggle.setAttribute("aria-pressed", String(view.sound));
    toggle.title = view.sound ? "Mute (M)" : "Hear the presenter's sound (M)";
    $("volume").value = String(view.volume);
    $("volume").disabled = !view.sound;
  }

  function soundOffered(on) {
    if (on === sound.offered) return;
    sound.offered = on;
    if (!on) soundStop();
    // Asked for (or no longer) on the stream.
    if (view.sound) restart();
  }

  // A click is the gesture a browser wants before it plays sound: play() is called within it.
  function toggleSound() {
    view.sound = !view.sound;
    if (view.sound) { soundOpen(); sound$.play().catch(() => {}); measureSoundOutput(); } else soundStop();
    render();
    restart();
  }

  // What is heard lags what the sound element plays by the browser's audio output latency (its
  // buffers and the device's): measured once, in the same gesture, with a short-lived
  // AudioContext; the video then shows each picture that much later.
  function measureSoundOutput() {
    if (sound.outputDelay !== undefined || typeof AudioContext !== "function") return;
    sound.outputDelay = 0;
    try {
      const probe = new AudioContext();
      probe.resume()
        .then(() => new Promise((resolve) => setTimeout(resolve, 250)))
        .then(() => { sound.outputDelay = Math.min(0.25, (probe.baseLatency || 0) + (probe.outputLatency || 0)); })
        .finally(() => probe.close().catch(() => {}));
    } catch { /* no Web Audio: no correction */ }
  }

  function soundOpen() {
    if (sound.source) return;
    const source = new MediaSourceKind();
    sound.source = source;
    sound.queue = [];
    sound$.disableRemotePlayback = true;
    const url = window.ManagedMediaSource && source instanceof window.ManagedMediaSource ? null : URL.createObjectURL(source);
    if (url) sound$.src = url; else sound$.srcObject = source;
    source.addEventListener("sourceopen", () => {
      if (url) URL.revokeObjectURL(url);
      if (sound.source !== source) return;
      try {
        const buffer = source.addSourceBuffer('audio/mp4; codecs="opus"');
        buffer.addEventListener("updateend", () => { if (sound.buffer === buffer) { soundChase(); soundPump(); } });
        buffer.addEventListener("error", () => soundFailed("the browser could not decode the sound"));
        sound.buffer = buffer;
        soundPump();
      } catch (err) { soundFailed(err); }
    }, { once: true });
  }

  function soundStop() {
    sound.source = null; sound.buffer = null; sound.queue = [];
    if (sound$.src || sound$.srcObject) { sound$.removeAttribute("src"); sound$.srcObject = null; sound$.load(); }
  }

  function soundFailed(why) {
    console.info("screenshare: no sound here:", why);
    soundBroken = true;
    soundStop();
    render();
    restart();
  }

  function soundRecord(record) {
    if (!view.sound) return;
    if (record[0] === SOUND_START) {
      // A new start (sound turned off and on): the same buffer takes it, times only go forward.
      soundOpen();
      sound.queue.push(record.subarray(2 + record[1]));
    } else if (sound.source) {
      sound.queue.push(record.subarray(1));
    }
    soundPump();
  }

  function soundPump() {
    const buffer = sound.buffer;
    if (!buffer || buffer.updating || sound.queue.length === 0) return;
    try { buffer.appendBuffer(sound.queue.shift()); sound.appended++; sound$.dataset.appended = String(sound.appended); }
    catch (err) { soundFailed(err); }
  }

  // The sound plays just behind the newest sound (`SOUND_LAG`), and the video keeps to it
  // (`chase`). It closes a gap by playing up to 10% faster or slower (the browser keeps the
  // pitch): a jump (a seek) restarts the decoder and costs more than it saves, so it jumps only
  // when far off, or into a gap (a silence the engine did not send).
  function soundChase() {
    const buffer = sound.buffer;
    if (!buffer || buffer.buffered.length === 0 || sound$.seeking) return;
    const last = buffer.buffered.length - 1, start = buffer.buffered.start(last), end = buffer.buffered.end(last);
    const ahead = sound$.currentTime - (end - SOUND_LAG);
    if (sound$.currentTime < start || Math.abs(ahead) > 0.4) {
      sound$.currentTime = Math.max(start, end - SOUND_LAG);
      sound$.playbackRate = 1;
    } else {
      sound$.playbackRate = Math.min(1.1, Math.max(0.9, 1 - ahead));
    }
    if (sound$.paused) sound$.play().catch(() => {});
    const first = buffer.buffered.start(0);
    if (!buffer.updating && sound$.currentTime - first > 10) buffer.remove(first, sound$.currentTime - 2);
  }

  // The time on the share's clock of the sound playing now; null while none plays (sound off,
  // starting, a silence the engine did not send).
  function soundClock() {
    if (!sound.buffer || sound$.paused || sound$.seeking || sound$.readyState < 3) return null;
    return sound$.currentTime;
  }

  // Decodes every piece first, then draws them all at once: the canvas never shows half an update.
  async function apply(update) {
    if (update.video) { applyVideo(update); return; }
    const bitmaps = await Promise.all(update.pieces.map((piece) => piece.blob
      ? createImageBitmap(piece.blob, { colorSpaceConversion: "none", premultiplyAlpha: "none" })
      : null));
    if (update.full || canvas.width !== update.width || canvas.height !== update.height) {
      canvas.width = overlay.width = update.width;
      canvas.height = overlay.height = update.height;
      pointer.drawn = null;
    }
    update.pieces.forEach((piece, index) => {
      const bitmap = bitmaps[index];
      if (bitmap) { ctx.drawImage(bitmap, piece.x, piece.y); bitmap.close(); }
      else if (piece.indexed) ctx.putImageData(fewColours(piece), piece.x, piece.y);
      else { ctx.fillStyle = piece.fill; ctx.fillRect(piece.x, piece.y, piece.w, piece.h); }
    });
    Object.assign(pointer, update.pointer);
    drawPointer();
    shown = true;
    canvas.dataset.frame = String(update.seq);
    lookback.seen(update);
    // The canvas is exact again: the video (if any) goes.
    if (video.source || !motion$.hidden) videoStop();
  }

  // A few-colour piece's pixels (a typed character, a caret): each pixel's index in the palette,
  // `bits` a pixel, rows starting on a byte. Drawn as they are, with no decoder in between.
  function fewColours(piece) {
    const { bits, rowBytes, palette, packed } = piece.indexed, mask = (1 << bits) - 1;
    const image = new ImageData(piece.w, piece.h), out = image.data;
    for (let y = 0, o = 0; y < piece.h; y++) {
      for (let x = 0; x < piece.w; x++, o += 4) {
        const bit = x * bits, entry = ((packed[y * rowBytes + (bit >> 3)] >> (8 - bits - (bit & 7))) & mask) * 3;
        out[o] = palette[entry]; out[o + 1] = palette[entry + 1]; out[o + 2] = palette[entry + 2]; out[o + 3] = 255;
      }
    }
    return image;
  }

  // The pointer lives on its own layer: a move redraws a few pixels, never the screen. While
  // looking back, the layer shows where the pointer was in that picture.
  function drawPointer() {
    const past = lookback.current, which = past ? past.pointer : pointer;
    if (pointer.drawn) { pointerCtx.clearRect(...pointer.drawn); pointer.drawn = null; }
    if (!past) followPointer();
    if (!which) return;
    const box = pointerBox(which);
    if (!box) return;
    pointerCtx.drawImage(box.image, box.x, box.y, box.w, box.h);
    overlay.dataset.at = `${which.x},${which.y}`;
    pointer.drawn = [Math.floor(box.x) - 1, Math.floor(box.y) - 1, Math.ceil(box.w) + 2, Math.ceil(box.h) + 2];
  }

  // Where pointer `p` is drawn on the shared screen, with its image; null when hidden or its
  // shape is not loaded yet (then it is asked for).
  function pointerBox(p) {
    if (p.shape === 0) return null;
    const image = shapes.get(p.shape);
    if (!image) { loadShape(p.shape); return null; }
    return { image, w: image.width * p.scale, h: image.height * p.scale, x: p.x - p.hotX * p.scale, y: p.y - p.hotY * p.scale };
  }

  async function loadShape(id) {
    if (loadingShapes.has(id)) return;
    loadingShapes.add(id);
    try {
      const res = await fetch(`pointer.png?shape=${id}`);
      if (!res.ok) return;
      const image = await createImageBitmap(await res.blob());
      // A presenter's pointer takes a handful of shapes; a long share may see many more.
      if (shapes.size >= 64) { const [oldest, old] = shapes.entries().next().value; old.close(); shapes.delete(oldest); }
      shapes.set(id, image);
      drawPointer();
    } catch { /* the next update names the shape again */ }
    finally { loadingShapes.delete(id); }
  }

  // Saves the picture on screen (or the earlier one looked at) as a PNG at the shared size,
  // with the pointer when this viewer asked for it.
  async function snapshot() {
    if (!lookback.allowed) { announce("The presenter turned off snapshots for this share"); return; }
    if (!shown) { announce("Nothing to save yet"); return; }
    const past = lookback.current;
    const width = past ? past.width : canvas.width, height = past ? past.height : canvas.height;
    const out = document.createElement("canvas");
    out.width = width; out.height = height;
    const c = out.getContext("2d", { alpha: false });
    try {
      if (past) {
        c.putImageData(await lookback.unpack(past), 0, 0);
      } else {
        c.drawImage(canvas, 0, 0);
        // In motion the video is what the viewer sees; it may be smaller than the screen.
        if (body.dataset.picture === "video" && motion$.videoWidth > 0) c.drawImage(motion$, 0, 0, width, height);
      }
      const box = view.snapshotPointer ? pointerBox(past ? past.pointer : pointer) : null;
      if (box) c.drawImage(box.image, box.x, box.y, box.w, box.h);
      const blob = await new Promise((resolve) => out.toBlob(resolve, "image/png"));
      if (!blob) throw new Error("the browser could not make a PNG");
      const when = new Date(past ? past.at : Date.now()), two = (n) => String(n).padStart(2, "0");
      const name = `screenshare-${when.getFullYear()}-${two(when.getMonth() + 1)}-${two(when.getDate())}-${two(when.getHours())}-${two(when.getMinutes())}-${two(when.getSeconds())}.png`;
      const link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = name;
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 60 * 1000);
      announce(`Saved ${name}`);
    } catch (err) {
      announce("Could not save the snapshot");
      console.warn("screenshare: snapshot failed:", err);
    }
  }

  // The tools that depend on what the presenter allows and on this viewer's zoom.
  function renderTools() {
    const allowed = lookback.allowed;
    $("snapshot").hidden = !allowed;
    $("snapshot-pointer").hidden = !allowed;
    $("snapshot-pointer").setAttribute("aria-pressed", String(view.snapshotPointer));
    $("zoom-controls").hidden = !view.fit;
    $("zoom-level").textContent = `${Math.round(zoom.scale * 100)}%`;
    $("zoom-out").disabled = zoom.scale <= 1;
    $("zoom-in").disabled = zoom.scale >= MAX_ZOOM;
    $("follow").hidden = !canFollow();
    $("follow").setAttribute("aria-pressed", String(zoom.follow));
    view$.dataset.follow = String(zoom.follow);
  }

  // Updates come pushed on one response (`stream`) as the share publishes them, so the frame
  // rate does not wait for a round trip; each is a 4-byte length and the update (0: a heartbeat).
  // A browser without streamed bodies, or a path that delivers a stream only at its end (a
  // buffering proxy), asks for one update at a time instead (`updates`, a long poll).
  let pushing = typeof ReadableStream === "function" && typeof Response === "function" && "body" in Response.prototype;

  // Draws one update; false when it could not be drawn (start over from the whole screen).
  async function show(buffer, begun, mode) {
    try {
      const update = parse(buffer);
      // A switch of picture mode starts afresh from the whole screen.
      if (begun === generation) {
        await apply(update);
        canvas.dataset.mode = mode;
        // Switched while it decoded: the next update is the whole screen in the new mode. Video
        // leaves the canvas (and `after`, what it shows) where the tiles left it.
        if (begun === generation && !update.video) after = update.seq;
      }
      return true;
    } catch (err) {
      console.warn("screenshare: could not draw an update:", err);
      after = 0;
      return false;
    }
  }

  // Reads records off a pushed stream until it ends, the view changes or an update fails to
  // draw; how many records came.
  async function readPushed(reader, begun, mode, alive) {
    // What arrived and is not a whole record yet, kept in the pieces it came in: a large update
    // comes in many, and joining them only once it is whole copies it once.
    const pieces = [];
    let held = 0, records = 0;
    const take = (count) => {
      const out = new Uint8Array(count);
      for (let at = 0; at < count;) {
        const first = pieces[0], need = count - at;
        if (first.length <= need) { out.set(first, at); at += first.length; pieces.shift(); }
        else { out.set(first.subarray(0, need), at); pieces[0] = first.subarray(need); at += need; }
      }
      held -= count;
      return out;
    };
    const lengthAhead = () => {
      const head = new Uint8Array(4);
      let at = 0;
      for (const piece of pieces) {
        const n = Math.min(4 - at, piece.length);
        head.set(piece.subarray(0, n), at);
        at += n;
        if (at === 4) break;
      }
      return new DataView(head.buffer).getUint32(0, true);
    };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return records;
      alive();
      if (value.length === 0) continue;
      pieces.push(value);
      held += value.length;
      while (held >= 4) {
        const length = lengthAhead();
        if (held < 4 + length) break;
        take(4);
        records++;
        framesOk = true;
        if (length === 0) { render(); continue; }
        const record = take(length);
        if (record[0] === SOUND_START || record[0] === SOUND_FRAGMENT) { soundRecord(record); continue; }
        if (record[0] === STATUS_RECORD) { statusOnStream(record); continue; }
        const drawn = await show(record.buffer, begun, mode);
        render();
        if (!drawn || begun !== generation) { reader.cancel().catch(() => {}); return records; }
      }
    }
  }

  // Asks for what changed after the picture on screen: a pushed stream, or one update at a time
  // no faster than the cap.
  async function frameLoop() {
    let backoff = 500;
    while (!ended && !stopLoops) {
      if (document.hidden) { await new Promise((r) => document.addEventListener("visibilitychange", r, { once: true })); continue; }
      const started = performance.now();
      const mode = view.format, begun = generation;
      const ctl = new AbortController();
      inFlight = ctl;
      // One deadline for headers and each piece of the body: a download that stalls is a
      // dropped network (a stream hears a heartbeat at least every few seconds).
      let deadline = setTimeout(() => ctl.abort(), 20000);
      const alive = () => { clearTimeout(deadline); deadline = setTimeout(() => ctl.abort(), 20000); };
      const push = pushing;
      let got;
      try {
        const url = push
          ? `stream?after=${after}&mode=${mode}${view.cap ? `&fps=${Math.min(view.cap, 60)}` : ""}${mode === "adaptive" && !videoBroken ? "&video=1" : ""}${soundWanted() ? "&audio=1" : ""}`
          : `updates?after=${after}&mode=${mode}`;
        const res = await fetch(url, { cache: "no-store", signal: ctl.signal });
        if (res.status === 404) { clearTimeout(deadline); endShare(); return; }
        if (res.status === 401 || res.status === 403) { clearTimeout(deadline); await refused(res); return; }
        if (res.status === 204) { clearTimeout(deadline); framesOk = true; render(); continue; }
        if (res.status === 503) {
          clearTimeout(deadline);
          const body = await res.json().catch(() => ({}));
          if (body.full) access = "full";
          framesOk = true; render();
          await sleep(body.full ? 5000 : 1000);
          continue;
        }
        if (access === "full") access = "admitted";
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        if (push && res.body) {
          let records;
          try { records = await readPushed(res.body.getReader(), begun, mode, alive); } finally { statusOffStream(); }
          clearTimeout(deadline);
          // Ended without a record: something on the way holds streams back; poll instead.
          if (records === 0) pushing = false;
          backoff = 500;
          continue;
        }
        got = await res.arrayBuffer();
        clearTimeout(deadline);
      } catch (err) {
        clearTimeout(deadline);
        if (ctl.changedView || stopLoops) continue;
        framesOk = false; render();
        await sleep(backoff);
        backoff = Math.min(backoff * 2, 5000);
        continue;
      }
      framesOk = true; backoff = 500;
      if (!(await show(got, begun, mode))) await sleep(1000);
      render();
      const fps = view.cap ? Math.min(view.cap, shareFps) : shareFps;
      const gap = 1000 / Math.max(fps, 0.1) - (performance.now() - started);
      if (gap > 0) await sleep(gap);
    }
  }

  // The stream says where the share stands when it opens and whenever that changes: while it
  // does, the page does not ask (`status` polls were half of what a typing presenter cost).
  const STATUS_RECORD = 0xa3;
  let statusPushed = false, statusWake = null;
  function statusOnStream(record) {
    try { applyStatus(JSON.parse(new TextDecoder().decode(record.subarray(1))), "stream"); } catch { return; }
    statusPushed = true;
    render();
  }
  function statusOffStream() {
    statusPushed = false;
    if (statusWake) { const wake = statusWake; statusWake = null; wake(); }
  }
  // `from`: "stream" or "poll", which tests read off the page.
  function applyStatus(s, from) {
    body.dataset.statusFrom = from;
    shareFps = s.fps || shareFps;
    shareState = s.paused ? "paused" : s.state;
    windowGone = s.window_gone || null;
    soundOffered(Boolean(s.audio));
    // A server from before look-back does not say: it allows it.
    lookback.allow(s.history !== false);
    statusOk = true;
  }

  async function statusLoop() {
    while (!ended && !stopLoops) {
      if (statusPushed) { await new Promise((r) => { statusWake = r; }); continue; }
      try {
        const ctl = new AbortController();
        const timer = setTimeout(() => ctl.abort(), 5000);
        let res;
        try { res = await fetch("status", { cache: "no-store", signal: ctl.signal }); } finally { clearTimeout(timer); }
        if (res.status === 404) { endShare(); return; }
        if (res.status === 401 || res.status === 403) { await refused(res); return; }
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        const told = await res.json();
        // The stream's first record may have come meanwhile: it is newer than this answer.
        if (!statusPushed) applyStatus(told, "poll");
      } catch { statusOk = false; }
      render();
      await new Promise((r) => setTimeout(r, statusOk ? 2000 : 1000));
    }
  }

  function toggleFullscreen() {
    if (!document.fullscreenEnabled) { lastAnnounced = ""; statusText.textContent = "Fullscreen is not available in this browser"; return; }
    if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
    else document.documentElement.requestFullscreen().catch(() => {});
  }
  function toggleFit() { view.fit = !view.fit; resetZoom(); save(); render(); followPointer(); }

  // Zoom into the shared screen: pinch on a phone, keys (+ − 0), the bar's buttons or Ctrl and
  // the wheel; drag (or Shift and the arrows) to pan, double-tap to fit again. The zoom is this
  // page's own, a transform on the view; the pixels are untouched. While zoomed, the view
  // follows the presenter's pointer (the pointer is data here, not pixels) until the viewer
  // moves the view by hand; P (or the Follow button) follows again.
  const ZOOM_STEPS = [1, 1.5, 2, 3, 4, 6, 8], MAX_ZOOM = ZOOM_STEPS[ZOOM_STEPS.length - 1];
  const zoom = { scale: 1, x: 0, y: 0, follow: true, target: null, frame: 0 };
  const touches = new Map();
  let gesture = null, lastTap = null;
  function applyZoom() {
    view$.style.transform = zoom.scale === 1 ? "" : `translate(${zoom.x}px, ${zoom.y}px) scale(${zoom.scale})`;
    view$.dataset.zoom = zoom.scale.toFixed(2);
    view$.dataset.pan = `${Math.round(zoom.x)},${Math.round(zoom.y)}`;
    renderTools();
  }
  function resetZoom() { stopGlide(); zoom.scale = 1; zoom.x = 0; zoom.y = 0; zoom.follow = true; applyZoom(); }
  // Keeps the zoomed view covering the stage: no panning off into nothing.
  function clampPan() {
    const w = stage.clientWidth, h = stage.clientHeight;
    zoom.x = Math.min(0, Math.max(w - w * zoom.scale, zoom.x));
    zoom.y = Math.min(0, Math.max(h - h * zoom.scale, zoom.y));
  }
  const stage = $("stage");
  // Zooms to `scale` keeping the stage's point (cx, cy) where it is.
  function zoomAt(scale, cx, cy) {
    if (!view.fit) return;
    scale = Math.min(MAX_ZOOM, Math.max(1, scale));
    stopGlide();
    zoom.x = cx - scale * (cx - zoom.x) / zoom.scale;
    zoom.y = cy - scale * (cy - zoom.y) / zoom.scale;
    zoom.scale = scale;
    if (scale === 1) { zoom.x = 0; zoom.y = 0; zoom.follow = true; }
    clampPan();
    applyZoom();
    followPointer();
  }
  // The keys and buttons step through the zooms (in: +1, out: -1), around the pointer while
  // following it, else around the middle.
  function zoomStep(direction) {
    const next = direction > 0 ? ZOOM_STEPS.find((step) => step > zoom.scale + 0.01)
      : [...ZOOM_STEPS].reverse().find((step) => step < zoom.scale - 0.01);
    if (next === undefined) return;
    const spot = zoom.follow && !lookback.current ? pointerOnStage() : null;
    zoomAt(next, spot ? spot.x : stage.clientWidth / 2, spot ? spot.y : stage.clientHeight / 2);
  }
  // The viewer moved the view: it stays where they put it.
  function panBy(dx, dy) {
    if (zoom.scale <= 1) return;
    stopGlide();
    zoom.follow = false;
    zoom.x += dx; zoom.y += dy;
    clampPan();
    applyZoom();
  }
  function toggleFollow() {
    zoom.follow = !zoom.follow;
    renderTools();
    followPointer();
  }

  // Where the presenter's pointer is on the stage, at this zoom (the picture is fitted into
  // the view: letterboxed, centred); null when it is not shown.
  function pointerOnStage() {
    if (pointer.shape === 0 || canvas.width < 2) return null;
    const w = stage.clientWidth, h = stage.clientHeight, k = Math.min(w / canvas.width, h / canvas.height);
    const vx = (w - canvas.width * k) / 2 + pointer.x * k, vy = (h - canvas.height * k) / 2 + pointer.y * k;
    return { x: zoom.x + zoom.scale * vx, y: zoom.y + zoom.scale * vy, vx, vy };
  }

  // Keeps the pointer in the middle part of the view: at once back inside when it left the view
  // (so it is never out of sight), then gliding the rest of the way.
  function followPointer() {
    if (!view.fit) { followByScrolling(); return; }
    if (!zoom.follow || zoom.scale <= 1 || lookback.current) return;
    const spot = pointerOnStage();
    if (!spot) return;
    const w = stage.clientWidth, h = stage.clientHeight, mx = w * 0.25, my = h * 0.25;
    const shift = (at, size, margin) => (at < margin ? margin - at : at > size - margin ? size - margin - at : 0);
    const dx = shift(spot.x, w, mx), dy = shift(spot.y, h, my);
    if (dx === 0 && dy === 0) return;
    // Out of sight: just inside the edge now.
    const edge = (at, size) => (at < 0 ? 8 - at : at > size ? size - 8 - at : 0);
    const jx = edge(spot.x, w), jy = edge(spot.y, h);
    if (jx || jy) { zoom.x += jx; zoom.y += jy; clampPan(); applyZoom(); }
    zoom.target = { x: zoom.x + dx - jx, y: zoom.y + dy - jy };
    if (!zoom.frame) { zoom.last = performance.now(); zoom.frame = requestAnimationFrame(glide); }
  }
  function glide(now) {
    zoom.frame = 0;
    if (!zoom.target || !zoom.follow) return;
    const t = 1 - Math.exp(-(now - zoom.last) / 120);
    zoom.last = now;
    const before = { x: zoom.x, y: zoom.y };
    zoom.x += (zoom.target.x - zoom.x) * t;
    zoom.y += (zoom.target.y - zoom.y) * t;
    clampPan();
    applyZoom();
    const moved = Math.abs(zoom.x - before.x) + Math.abs(zoom.y - before.y);
    if (Math.abs(zoom.target.x - zoom.x) + Math.abs(zoom.target.y - zoom.y) < 0.5 || (moved < 0.01 && t > 0)) { zoom.target = null; return; }
    zoom.frame = requestAnimationFrame(glide);
  }
  // At 1:1 the stage scrolls where the picture is larger than the window: following scrolls it
  // so the pointer stays in the middle half, and the viewer's own scrolling stops following (as
  // a drag does when zoomed). A scroll that leaves the stage anywhere but where following last
  // put it is the viewer's.
  const scrolls = () => !view.fit && (stage.scrollWidth > stage.clientWidth + 1 || stage.scrollHeight > stage.clientHeight + 1);
  const canFollow = () => (view.fit ? zoom.scale > 1 : scrolls());
  const scroll = { placed: null, target: null, frame: 0, last: 0 };
  function scrollStage(left, top) {
    stage.scrollTo(left, top);
    scroll.placed = { left: stage.scrollLeft, top: stage.scrollTop };
  }
  stage.addEventListener("scroll", () => {
    if (view.fit || !zoom.follow) return;
    const placed = scroll.placed;
    if (placed && Math.abs(stage.scrollLeft - placed.left) <= 1 && Math.abs(stage.scrollTop - placed.top) <= 1) return;
    zoom.follow = false;
    scroll.target = null;
    renderTools();
  }, { passive: true });
  function followByScrolling() {
    if (!zoom.follow || lookback.current || !scrolls() || pointer.shape === 0) return;
    const w = stage.clientWidth, h = stage.clientHeight;
    const x = view$.offsetLeft + pointer.x - stage.scrollLeft, y = view$.offsetTop + pointer.y - stage.scrollTop;
    const shift = (at, size) => (at < size / 4 ? size / 4 - at : at > size * 3 / 4 ? size * 3 / 4 - at : 0);
    const dx = shift(x, w), dy = shift(y, h);
    if (dx === 0 && dy === 0) return;
    // Out of sight: there at once; in sight, gliding.
    if (x < 0 || y < 0 || x > w || y > h) { scroll.target = null; scrollStage(stage.scrollLeft - dx, stage.scrollTop - dy); return; }
    scroll.target = { left: stage.scrollLeft - dx, top: stage.scrollTop - dy };
    if (!scroll.frame) { scroll.last = performance.now(); scroll.frame = requestAnimationFrame(glideScroll); }
  }
  function glideScroll(now) {
    scroll.frame = 0;
    if (!scroll.target || !zoom.follow || view.fit) return;
    const t = 1 - Math.exp(-(now - scroll.last) / 120);
    scroll.last = now;
    const from = { left: stage.scrollLeft, top: stage.scrollTop };
    // At least a pixel a frame (scroll positions may be whole pixels), the last two at once.
    const step = (at, to) => (Math.abs(to - at) < 2 ? to : at + Math.sign(to - at) * Math.max(1, Math.abs(to - at) * t));
    scrollStage(step(from.left, scroll.target.left), step(from.top, scroll.target.top));
    // Arrived, or held by the stage's edge.
    if (stage.scrollLeft === from.left && stage.scrollTop === from.top) { scroll.target = null; return; }
    scroll.frame = requestAnimationFrame(glideScroll);
  }
  function stopGlide() { zoom.target = null; if (zoom.frame) { cancelAnimationFrame(zoom.frame); zoom.frame = 0; } }

  const centre = () => {
    const [a, b] = [...touches.values()];
    return { cx: (a.x + b.x) / 2, cy: (a.y + b.y) / 2, d: Math.hypot(a.x - b.x, a.y - b.y) || 1 };
  };
  stage.addEventListener("pointerdown", (e) => {
    if (!view.fit) return;
    if (e.pointerType !== "touch") {
      // A mouse drags a zoomed view.
      if (e.button === 0 && zoom.scale > 1) { gesture = { mouse: e.pointerId, panX: e.clientX, panY: e.clientY }; stage.setPointerCapture?.(e.pointerId); }
      return;
    }
    touches.set(e.pointerId, { x: e.clientX, y: e.clientY });
    stopGlide();
    gesture = touches.size === 2 ? { ...centre(), scale: zoom.scale, x: zoom.x, y: zoom.y }
      : { panX: e.clientX, panY: e.clientY, x: zoom.x, y: zoom.y };
  });
  stage.addEventListener("pointermove", (e) => {
    if (gesture && gesture.mouse === e.pointerId) {
      panBy(e.clientX - gesture.panX, e.clientY - gesture.panY);
      gesture.panX = e.clientX; gesture.panY = e.clientY;
      return;
    }
    if (!touches.has(e.pointerId) || !gesture) return;
    touches.set(e.pointerId, { x: e.clientX, y: e.clientY });
    if (touches.size === 2 && gesture.d) {
      const now = centre();
      const scale = Math.min(MAX_ZOOM, Math.max(1, gesture.scale * now.d / gesture.d));
      // The point of the screen under the fingers at the start stays under them.
      zoom.x = now.cx - scale * (gesture.cx - gesture.x) / gesture.scale;
      zoom.y = now.cy - scale * (gesture.cy - gesture.y) / gesture.scale;
      zoom.scale = scale;
      if (scale === 1) zoom.follow = true;
    } else if (touches.size === 1 && zoom.scale > 1 && gesture.panX !== undefined) {
      zoom.x = gesture.x + e.clientX - gesture.panX;
      zoom.y = gesture.y + e.clientY - gesture.panY;
      // Moved by hand: the view stays where the viewer put it.
      zoom.follow = false;
    } else return;
    clampPan();
    applyZoom();
  });
  const lift = (e) => {
    if (gesture && gesture.mouse === e.pointerId) { gesture = null; return; }
    if (!touches.delete(e.pointerId)) return;
    gesture = touches.size === 1 ? (() => { const [t] = touches.values(); return { panX: t.x, panY: t.y, x: zoom.x, y: zoom.y }; })() : null;
    if (e.type !== "pointerup" || touches.size) return;
    const now = performance.now();
    if (lastTap && now - lastTap.at < 350 && Math.hypot(e.clientX - lastTap.x, e.clientY - lastTap.y) < 40) {
      resetZoom(); lastTap = null;
    } else lastTap = { at: now, x: e.clientX, y: e.clientY };
  };
  // Ctrl and the wheel (a trackpad's pinch too) zoom around the mouse instead of the page.
  stage.addEventListener("wheel", (e) => {
    if (!e.ctrlKey || !view.fit) return;
    e.preventDefault();
    zoomAt(zoom.scale * Math.exp(-e.deltaY / 300), e.clientX, e.clientY);
  }, { passive: false });
  stage.addEventListener("pointerup", lift);
  stage.addEventListener("pointercancel", lift);

  $("fit").addEventListener("click", toggleFit);
  $("sound-toggle").addEventListener("click", toggleSound);
  $("volume").addEventListener("input", (e) => { view.volume = Number(e.target.value); sound$.volume = view.volume; save(); });
  $("fullscreen").addEventListener("click", toggleFullscreen);
  $("reload").addEventListener("click", () => location.reload());
  $("format").addEventListener("change", (e) => { view.format = e.target.value; generation++; after = 0; save(); render(); restart(); });
  // A pushed stream carries the cap: it is asked for again with the new one.
  $("cap").addEventListener("change", (e) => { view.cap = Number(e.target.value); save(); render(); restart(); });
  // A double-click is fullscreen; a double-tap on a touch screen is "fit" (above).
  let lastPointer = "mouse";
  $("stage").addEventListener("pointerdown", (e) => { lastPointer = e.pointerType; });
  $("stage").addEventListener("dblclick", () => { if (lastPointer !== "touch") toggleFullscreen(); });
  $("snapshot").addEventListener("click", snapshot);
  $("snapshot-pointer").addEventListener("click", () => { view.snapshotPointer = !view.snapshotPointer; save(); renderTools(); });
  $("zoom-in").addEventListener("click", () => zoomStep(1));
  $("zoom-out").addEventListener("click", () => zoomStep(-1));
  $("follow").addEventListener("click", toggleFollow);
  document.addEventListener("keydown", (e) => {
    const tag = e.target.tagName;
    if (tag === "SELECT" || (tag === "INPUT" && e.target.type !== "checkbox") || e.ctrlKey || e.metaKey || e.altKey) return;
    const key = e.key;
    if (key === "ArrowLeft" && e.shiftKey) panBy(stage.clientWidth / 8, 0);
    else if (key === "ArrowRight" && e.shiftKey) panBy(-stage.clientWidth / 8, 0);
    else if (key === "ArrowUp" && e.shiftKey) panBy(0, stage.clientHeight / 8);
    else if (key === "ArrowDown" && e.shiftKey) panBy(0, -stage.clientHeight / 8);
    else if (key === "ArrowLeft") lookback.back();
    else if (key === "ArrowRight") lookback.forward();
    else if (key === "Escape" && lookback.current) lookback.toLive();
    else if (key === "f" || key === "F") toggleFullscreen();
    else if (key === "z" || key === "Z") toggleFit();
    else if (key === "s" || key === "S") snapshot();
    else if (key === "+" || key === "=") zoomStep(1);
    else if (key === "-" || key === "_") zoomStep(-1);
    else if (key === "0") resetZoom();
    else if (key === "p" || key === "P") { if (canFollow()) toggleFollow(); }
    else if ((key === "m" || key === "M") && sound.offered && !soundBroken) toggleSound();
    else return;
    // A key used here does not also scroll the page or press a focused button.
    if (key.startsWith("Arrow") || key === " ") e.preventDefault();
  });
  window.addEventListener("resize", () => {
    // A larger window pulls a scroll near the far edge back: its doing, not the viewer's.
    if (scroll.placed) scroll.placed = { left: stage.scrollLeft, top: stage.scrollTop };
    clampPan(); applyZoom(); followPointer();
  });
  document.addEventListener("fullscreenchange", () => { $("fullscreen").textContent = document.fullscreenElement ? "Exit fullscreen" : "Fullscreen"; });
  window.addEventListener("online", interrupt);

  // The toolbar steps aside while the pointer rests, and comes back when it moves.
  let idleTimer = null;
  const awake = () => { body.classList.remove("idle"); clearTimeout(idleTimer); idleTimer = setTimeout(() => body.classList.add("idle"), 2500); };
  for (const type of ["mousemove", "pointerdown", "keydown", "touchstart", "focusin"]) document.addEventListener(type, awake, { passive: true });
  awake();

  // The server no longer lets this browser watch: stop asking, and say why.
  async function refused(res) {
    const body = await res.json().catch(() => ({}));
    access = body.access === "removed" ? "removed" : "joining";
    stopLoops = true;
    restart();
    render();
  }

  // Asks to join (with the PIN when there is one); the answer says where this browser stands.
  async function join(pin) {
    const res = await fetch("join", { method: "POST", cache: "no-store",
      headers: { "content-type": "application/json" }, body: JSON.stringify(pin ? { pin } : {}) });
    if (res.status === 404) { endShare(); return "ended"; }
    const body = await res.json().catch(() => ({}));
    if (res.status === 503 && body.full) { access = "full"; render(); throw new Error("full"); }
    if (res.status === 429) {
      const wait = Number(res.headers.get("retry-after")) || 5;
      if (body.access !== "need_pin") { await sleep(wait * 1000); throw new Error("too many joins"); }
      $("gate-error").textContent = `Too many wrong PINs. Try again in ${wait} seconds.`;
      return "need_pin";
    }
    if (res.status === 403 && body.access === "need_pin") { $("gate-error").textContent = "That PIN is not right."; return "need_pin"; }
    if (body.access) return body.access;
    throw new Error(`HTTP ${res.status}`);
  }

  async function accessNow() {
    const res = await fetch("access", { cache: "no-store" });
    if (res.status === 404) { endShare(); return "ended"; }
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    return (await res.json()).access;
  }

  // Retries through a dropped network, saying so.
  async function patiently(ask) {
    for (;;) {
      try { const answer = await ask(); framesOk = true; return answer; }
      catch (error) {
        // A full share answered; anything else is the network.
        framesOk = error.message === "full";
        render();
        await sleep(framesOk ? 5000 : 1000);
      }
    }
  }

  function typedPin() {
    return new Promise((resolve) => {
      const form = $("gate"), input = $("pin");
      render();
      input.value = "";
      input.focus();
      form.onsubmit = (event) => {
        event.preventDefault();
        const pin = input.value.trim();
        if (pin) { form.onsubmit = null; $("gate-error").textContent = ""; resolve(pin); }
      };
    });
  }

  // Until this browser is let in (true), or removed, or the share ends (false).
  async function enter() {
    let state = await patiently(() => join());
    while (!ended) {
      if (state === "admitted") { access = "admitted"; render(); return true; }
      if (state === "removed") { access = "removed"; render(); return false; }
      if (state === "need_pin") {
        access = "pin";
        const pin = await typedPin();
        access = "joining"; render();
        state = await patiently(() => join(pin));
      } else if (state === "need_join") {
        state = await patiently(() => join());
      } else if (state === "waiting") {
        access = "waiting"; render();
        await sleep(2000);
        state = await patiently(accessNow);
      } else {
        return false;
      }
    }
    return false;
  }

  async function main() {
    while (!ended && access !== "removed") {
      if (!(await enter())) return;
      stopLoops = false;
      await Promise.all([frameLoop(), statusLoop()]);
    }
  }

  render();
  main();
})();
