"use strict";
// Presenter window. A plain script (CSP: no other kind): Tauri injects window.__TAURI__.
// Every backend call is guarded; every failure reaches the error banner in plain words.

const THUMB_EVERY_MS = 3000;
const PREVIEW_EVERY_MS = 1000;
const SLIDER_DEBOUNCE_MS = 150;
const DASH = "\u2013";

const ui = {}; // every element with an id, camelCased: "viewer-count" -> ui.viewerCount
const app = {
  monitors: [],
  windows: [],
  desktopPicks: false, // Wayland: the desktop's own dialog picks; the window shows its pick
  picked: null, // what the desktop's dialog picked, in words, while sharing
  selected: null, // chosen monitor's index
  window: null, // chosen window's id: shared instead of the monitor when set
  sharing: false,
  busy: false, // a start or stop is in flight
  startedAt: 0,
  paused: false,
  pauseBusy: false,
  urls: [],
  lastError: null, // status error already shown; not raised again every second
  pending: {}, // slider debounce timers by field
  settings: {}, // last settings the backend confirmed; a failed change rolls back to them
};

const invoke = (name, args) => window.__TAURI__.core.invoke(name, args);

// Commands reject with a plain string; anything else is turned into one.
const message = (err) => (typeof err === "string" ? err : (err && err.message) || String(err));

function showError(text) {
  ui.errorText.textContent = text;
  ui.error.hidden = false;
}

const hideError = () => { ui.error.hidden = true; };

// Pollers report a failure once, then stay quiet until they succeed: report(err) / report().
function reporter(prefix) {
  let failing = false;
  return (err) => {
    if (err && !failing) showError(prefix + message(err));
    failing = !!err;
  };
}

function bytes(n) {
  if (n == null || !isFinite(n)) return DASH;
  if (n < 1024) return `${Math.round(n)} B`;
  if (n < 1048576) return `${(n / 1024).toFixed(n < 10240 ? 1 : 0)} KB`;
  return `${(n / 1048576).toFixed(1)} MB`;
}

const clock = (ms) => new Date(ms).toTimeString().slice(0, 8); // local HH:MM:SS

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = text;
  return node;
}

// Settings name a monitor by index, by name, or not at all (= primary).
function pickMonitor(choice) {
  const list = app.monitors;
  const found = (choice != null && list.find((m) => m.index === choice || m.name === choice))
    || list.find((m) => m.is_primary) || list[0];
  return found ? found.index : null;
}

function renderMonitors() {
  const box = ui.monitors;
  const hadFocus = box.contains(document.activeElement);
  box.replaceChildren();
  if (app.desktopPicks) {
    renderDesktopPick(box);
    return;
  }
  if (!app.monitors.length) box.append(el("p", "muted", "No screens found."));
  for (const m of app.monitors) {
    const card = sourceCard(m.name || `Screen ${m.index + 1}`, `${m.width} \u00d7 ${m.height}`, m.is_primary ? "Primary" : null);
    card.dataset.index = m.index;
    card.addEventListener("click", () => selectMonitor(m.index));
    box.append(card);
  }
  for (const w of app.windows) {
    const card = sourceCard(w.title || "Untitled window", `${w.app || "Window"} \u00b7 ${w.width} \u00d7 ${w.height}`, "Window");
    card.classList.add("window");
    card.dataset.window = w.id;
    card.addEventListener("click", () => selectWindow(w.id));
    box.append(card);
  }
  for (const card of box.querySelectorAll(".card")) card.addEventListener("keydown", moveSelection);
  markSelected();
  // Keyboard focus survives a re-render.
  if (hadFocus) (box.querySelector(`[aria-checked="true"]`) || box).focus();
}

// Wayland: one card for whatever the desktop's dialog picks, with its size while sharing.
function renderDesktopPick(box) {
  const kind = /window/i.test(app.picked?.name || "") ? "A window" : "A screen";
  const detail = app.picked
    ? `${kind} \u00b7 ${app.picked.width} \u00d7 ${app.picked.height}`
    : "Picked in your desktop's dialog";
  const name = "Your pick";
  const card = sourceCard(name, detail, null);
  card.dataset.index = 0;
  card.setAttribute("aria-checked", "true");
  card.tabIndex = 0;
  box.append(card);
  ui.desktopPick.hidden = false;
}

async function pickAgain() {
  try {
    await invoke("pick_again");
    if (!app.sharing) showNote("Your desktop will ask again when you press Share.");
  } catch (err) {
    showError("Couldn't ask your desktop again: " + message(err));
  }
}

function showNote(text) {
  ui.desktopPickHint.textContent = text;
}

// One choice of what to share: a monitor or a window. A radio group, with one tab stop and
// arrow keys between the cards.
function sourceCard(name, detail, badge) {
  const card = el("button", "card");
  card.type = "button";
  card.setAttribute("role", "radio");
  card.title = name;
  const thumb = el("span", "thumb");
  const img = thumb.appendChild(el("img"));
  img.alt = "";
  img.hidden = true; // no broken-image icon before the first thumbnail
  const meta = el("span", "card-meta");
  meta.append(el("span", "card-name", name), el("span", "card-res", detail));
  if (badge) meta.append(el("span", "badge", badge));
  card.append(thumb, meta);
  return card;
}

function markSelected() {
  for (const card of ui.monitors.querySelectorAll(".card")) {
    const chosen = card.dataset.window != null
      ? +card.dataset.window === app.window
      : app.window == null && +card.dataset.index === app.selected;
    card.setAttribute("aria-checked", chosen);
    card.tabIndex = chosen ? 0 : -1;
  }
}

// Arrow keys choose the previous or next card, as in any radio group.
function moveSelection(e) {
  const step = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 }[e.key];
  const cards = [...ui.monitors.querySelectorAll(".card")];
  if (!step || !cards.length) return;
  e.preventDefault();
  const next = cards[(cards.indexOf(e.currentTarget) + step + cards.length) % cards.length];
  next.click();
  next.focus();
}

async function selectWindow(id) {
  if (id === app.window) return;
  const before = app.window;
  app.window = id;
  markSelected();
  try {
    applySettings(await invoke("update_settings", { patch: { window: id } }));
  } catch (err) {
    app.window = before;
    markSelected();
    showError("Couldn't switch to that window: " + message(err));
  }
}

async function selectMonitor(index) {
  if (index === app.selected && app.window == null) return;
  const before = [app.selected, app.window];
  app.selected = index;
  app.window = null;
  markSelected();
  try {
    applySettings(await invoke("update_settings", { patch: { monitor: index } }));
  } catch (err) {
    [app.selected, app.window] = before;
    markSelected();
    showError("Couldn't switch screens: " + message(err));
  }
}

const thumbErrors = reporter("Couldn't update the screen pictures: ");
let thumbsBusy = false;

// Re-lists first, so a screen plugged in or out shows up without a restart.
async function refreshThumbnails() {
  const hidden = document.visibilityState !== "visible";
  // Hidden, only a first list is worth having (listing failed at start): no pictures, so no
  // capture is kept awake.
  // The desktop's dialog picks: there is nothing to list, and a picture would need a cast.
  if (app.desktopPicks || thumbsBusy || (hidden && app.monitors.length > 0)) return;
  thumbsBusy = true;
  try {
    const list = await invoke("list_monitors");
    // Windows come and go; their positions do not make a new list.
    const windows = (await invoke("list_windows").catch(() => []))
      .map(({ id, title, app: program, width, height }) => ({ id, title, app: program, width, height }));
    if (JSON.stringify(list) !== JSON.stringify(app.monitors) || JSON.stringify(windows) !== JSON.stringify(app.windows)) {
      app.monitors = list;
      app.windows = windows;
      if (!list.some((m) => m.index === app.selected)) app.selected = pickMonitor(app.settings.monitor);
      // A chosen window that closed: back to the monitor before a share (a share says it is gone).
      if (app.window != null && !app.sharing && !windows.some((w) => w.id === app.window)) app.window = null;
      renderMonitors();
    }
    if (hidden) { thumbErrors(); return; }
    await Promise.all([
      ...app.monitors.map(async (m) => {
        const url = await invoke("monitor_thumbnail", { index: m.index });
        const img = ui.monitors.querySelector(`[data-index="${m.index}"] img`);
        if (img && url) { img.src = url; img.hidden = false; }
      }),
      ...app.windows.map(async (w) => {
        const url = await invoke("window_thumbnail", { id: w.id }).catch(() => null);
        const img = ui.monitors.querySelector(`[data-window="${w.id}"] img`);
        if (img && url) { img.src = url; img.hidden = false; }
      }),
    ]);
    thumbErrors();
  } catch (err) {
    thumbErrors(err);
  } finally {
    thumbsBusy = false;
  }
}

// Chained timeouts, not an interval, so refreshes never overlap.
function thumbnailLoop() {
  refreshThumbnails().finally(() => setTimeout(thumbnailLoop, THUMB_EVERY_MS));
}

function showSliderValues() {
  ui.fpsValue.textContent = `${ui.fps.value} fps`;
  ui.qualityValue.textContent = `${ui.quality.value}%`;
}

// Shows the settings in force, except on a slider the user is still moving.
function applySettings(s) {
  if (!s) return;
  app.settings = s;
  if (!app.pending.fps && s.fps != null) ui.fps.value = s.fps;
  if (!app.pending.quality && s.quality != null) ui.quality.value = s.quality;
  if (s.max_width !== undefined) {
    const value = s.max_width == null ? "" : String(s.max_width);
    // A stored width that is not a preset is added, not silently replaced.
    if (![...ui.maxWidth.options].some((o) => o.value === value)) ui.maxWidth.append(new Option(`${value} px`, value));
    ui.maxWidth.value = value;
  }
  if (typeof s.show_pointer === "boolean") ui.showPointer.checked = s.show_pointer;
  if (typeof s.motion === "string") ui.motion.value = s.motion;
  if (typeof s.audio === "boolean") ui.audio.checked = s.audio;
  if (typeof s.history === "boolean") ui.history.checked = s.history;
  if (s.window !== undefined) {
    const id = typeof s.window === "number" ? s.window : null;
    if (id !== app.window) { app.window = id; markSelected(); }
  }
  if (s.pin !== undefined && document.activeElement !== ui.pin) ui.pin.value = s.pin ?? "";
  if (typeof s.require_approval === "boolean") ui.requireApproval.checked = s.require_approval;
  if (s.max_viewers != null && document.activeElement !== ui.maxViewers) ui.maxViewers.value = s.max_viewers;
  ui.pinShown.hidden = !s.pin;
  ui.pinDigits.textContent = s.pin ?? "";
  if (app.sharing && typeof s.paused === "boolean") setPaused(s.paused);
  showSliderValues();
}

async function patch(field, value) {
  app.patching = (app.patching || 0) + 1;
  try {
    applySettings(await invoke("update_settings", { patch: { [field]: value } }));
  } catch (err) {
    applySettings(app.settings);
    showError("Couldn't apply that setting: " + message(err));
  } finally {
    app.patching -= 1;
  }
}

// A drag fires "input" for every step; only the value the user settles on is sent.
function wireSlider(input, field) {
  input.addEventListener("input", () => {
    showSliderValues();
    clearTimeout(app.pending[field]);
    app.pending[field] = setTimeout(() => {
      delete app.pending[field];
      patch(field, +input.value);
    }, SLIDER_DEBOUNCE_MS);
  });
}

const maxWidthValue = () => (ui.maxWidth.value === "" ? null : +ui.maxWidth.value);

async function startShare() {
  if (app.busy || app.sharing) return;
  setBusy(true);
  setState("starting");
  // paused: false, since pressing Share means "show my screen now".
  // Where the desktop's dialog picks, a monitor or window remembered from an X11 session means
  // nothing: the dialog decides.
  const [monitor, shared] = app.desktopPicks ? [null, null] : [app.selected, app.window];
  const settings = { monitor, window: shared, fps: +ui.fps.value, quality: +ui.quality.value, max_width: maxWidthValue(), paused: false, show_pointer: ui.showPointer.checked,
    motion: ui.motion.value, audio: ui.audio.checked, history: ui.history.checked,
    pin: ui.pin.value.trim() || null, require_approval: ui.requireApproval.checked, max_viewers: +ui.maxViewers.value || 50 };
  try {
    const result = await invoke("start_share", { settings });
    hideError();
    app.startedAt = Date.now();
    setSharing(true, result);
  } catch (err) {
    setState(null);
    showError("Couldn't start sharing: " + message(err));
  } finally {
    setBusy(false);
  }
}

async function stopShare() {
  if (app.busy) return;
  setBusy(true);
  try {
    await invoke("stop_share");
    setSharing(false);
  } catch (err) {
    showError("Couldn't stop sharing: " + message(err));
  } finally {
    setBusy(false);
  }
}

async function togglePause() {
  if (!app.sharing || app.pauseBusy) return;
  const want = !app.paused;
  app.pauseBusy = true;
  try {
    const s = await invoke("update_settings", { patch: { paused: want } });
    setPaused(want);
    applySettings(s); // the backend's word wins
    setState(app.paused ? "paused" : "live");
  } catch (err) {
    showError(`Couldn't ${want ? "pause" : "resume"}: ${message(err)}`);
  } finally {
    app.pauseBusy = false;
  }
}

function setBusy(busy) {
  // "Choose again" too: during a start the desktop's dialog is already asking.
  app.busy = ui.share.disabled = ui.stop.disabled = ui.pickAgain.disabled = busy;
  ui.share.setAttribute("aria-busy", busy);
  ui.shareLabel.textContent = busy ? (app.desktopPicks ? "Answer your desktop\u2019s dialog\u2026" : "Starting\u2026") : "Share";
  // A disabled button can drop keyboard focus; give it back.
  if (!busy && document.activeElement === document.body) (app.sharing ? ui.stop : ui.share).focus();
}

// The label says what pressing does ("Pause", "Resume"); the state is in the share's status.
function setPaused(paused) {
  app.paused = paused;
  ui.pause.textContent = paused ? "Resume" : "Pause";
  ui.pause.classList.toggle("resume", paused);
}

function setSharing(on, result) {
  if (app.sharing === on) return;
  // The pressed button gets hidden; focus moves to the one replacing it.
  const active = document.activeElement;
  const moveFocus = active === ui.share || active === ui.stop || active === document.body;
  app.sharing = on;
  if (!on && app.picked) {
    app.picked = null;
    renderMonitors();
  }
  ui.share.hidden = ui.idleView.hidden = on;
  ui.stop.hidden = ui.liveView.hidden = !on;
  ui.pause.disabled = !on;
  if (on) {
    showLinks(result);
    previewLoop();
  } else {
    setPaused(false);
    setState(null);
    app.lastError = null;
    resetLive();
  }
  if (moveFocus) (on ? ui.stop : ui.share).focus();
}

function showLinks({ viewer_urls: urls, qr_svg: qr }) {
  app.urls = urls || [];
  ui.url.textContent = app.urls[0] || "No network address found";
  ui.otherUrls.replaceChildren(...app.urls.slice(1).map((u) => el("li", null, u)));
  ui.copy.disabled = !app.urls.length;
  // Our own backend's SVG; the CSP would block any script in it anyway.
  ui.qr.innerHTML = qr || "";
  ui.qr.hidden = !qr;
  ui.qr.setAttribute("aria-label", `QR code for ${app.urls[0]}`);
}

// The next share must not open with this one's numbers, viewers and picture.
function resetLive() {
  app.urls = [];
  showStats({});
  ui.preview.hidden = true;
  ui.previewEmpty.hidden = false;
}

const STATE_TEXT = { starting: "Starting\u2026", live: "Live", idle: "Waiting for viewers", paused: "Paused" };

// Rewritten only on change: it is a live region, and status arrives every second.
function setState(state, error) {
  const text = !state ? "Not sharing"
    : state === "source_lost" ? `Source lost: ${error || "the screen is gone"}`
    : STATE_TEXT[state] || state;
  ui.shareState.dataset.state = state || "off";
  if (ui.shareState.textContent !== text) ui.shareState.textContent = text;
}

// Only for a share this window started; a start or stop in flight decides for itself.
function onStatus(s) {
  if (!s || !app.sharing || app.busy) return;
  if (!s.sharing) {
    // Ended by the backend, unless this is a late not-sharing event (sent every second)
    // from just before our start.
    if (Date.now() - app.startedAt > 2500) setSharing(false);
    return;
  }
  setState(s.state, s.error);
  if (!app.pauseBusy && s.state !== "starting") setPaused(s.state === "paused");
  // Raised once per new error, so a dismissed banner stays dismissed.
  if (s.error && s.error !== app.lastError) {
    showError(s.state === "source_lost" ? `The shared screen is gone: ${s.error}` : s.error);
  }
  app.lastError = s.error || null;
  // The share's settings are the truth (a PATCH on the control URL changes them too); not while
  // a change of ours is on its way or a slider is being moved.
  if (s.settings && !app.patching && !Object.keys(app.pending).length) applySettings(s.settings);
  showStats(s);
  if (app.desktopPicks) {
    const picked = s.source && s.width ? { name: s.source, width: s.width, height: s.height } : null;
    if (JSON.stringify(picked) !== JSON.stringify(app.picked)) {
      app.picked = picked;
      renderMonitors();
    }
  }
}

function showStats(s) {
  const wrong = s.wrong_pins || 0;
  ui.wrongPins.textContent = wrong ? `\u00b7 ${wrong} wrong ${wrong === 1 ? "try" : "tries"}` : "";
  // Approval keeps guessers out whatever they try; offered while the PIN is under attack.
  ui.pinAttack.hidden = !(s.pin_under_attack && !ui.requireApproval.checked);
  const bw = s.bandwidth_bytes_per_sec;
  ui.viewerCount.textContent = s.viewers ?? 0;
  ui.achievedFps.textContent = s.achieved_fps != null ? `${s.achieved_fps.toFixed(1)} fps` : DASH;
  ui.frameSize.textContent = bytes(s.jpeg_bytes ?? s.png_bytes);
  ui.bandwidth.textContent = bw != null ? `${bytes(bw)}/s` : DASH;
  // Video is one stream for everyone; when it cannot be made the share stays on tiles, said here.
  // A video shrunk to spare this machine's CPU says its size.
  const shrunk = s.video_size && s.video_size[0] < s.width ? ` ${s.video_size[0]}×${s.video_size[1]}` : "";
  ui.showing.textContent = s.video_error ? "Tiles (no video)" : s.showing === "video" ? `Video${shrunk}` : s.showing === "tiles" ? "Tiles" : DASH;
  ui.showing.title = s.video_error || (shrunk ? "Encoded smaller than the screen to keep this computer's processor free; viewers see it scaled up" : "");
  app.sound = s.audio || null;
  showSound(app.sound, ui.audio.checked);
  const viewers = s.viewer_list || [];
  // Rebuilt only when someone arrives, leaves or is let in, so focus and selection stay put.
  const who = viewers.map((v) => `${v.id}:${v.access}`).join(" ");
  if (who !== app.viewersShown || !ui.viewerList.children.length) {
    const focused = document.activeElement?.dataset?.viewer;
    app.viewersShown = who;
    ui.viewerList.replaceChildren(...viewers.map(viewerItem));
    if (!viewers.length) ui.viewerList.append(el("li", "muted", "Nobody yet"));
    if (focused) ui.viewerList.querySelector(`[data-viewer="${CSS.escape(focused)}"]`)?.focus();
  }
  viewers.forEach((v, i) => {
    const li = ui.viewerList.children[i];
    if (li) li.title = `${v.frames} frames, ${bytes(v.bytes)}`;
  });
}

// Sound: its level while it is live, and in words what it is doing (or why not).
function showSound(sound, on) {
  const live = Boolean(on && sound && sound.live);
  ui.audioLevel.value = live ? Math.max(-60, sound.level_db) : -60;
  ui.audioLevel.hidden = !on;
  ui.audioState.textContent = !on ? "Off: what this computer plays stays private"
    : !app.sharing ? "Viewers can turn sound on once you share"
    : sound && sound.error ? `No sound: ${sound.error}`
    : live ? `Viewers who turn sound on hear ${sound.source || "what this computer plays"}`
    : "Starting…";
  ui.audioState.classList.toggle("problem", Boolean(on && sound && sound.error));
}

// One viewer: who, since when, and what the presenter can do about it.
function viewerItem(v) {
  const waiting = v.access === "waiting";
  const li = el("li", waiting ? "viewer waiting" : "viewer");
  const whoBox = el("div", "viewer-who");
  const browser = v.browser && v.browser !== "unknown" ? ` \u00b7 ${v.browser}` : "";
  whoBox.append(el("span", "addr", v.address + browser),
    el("span", "since", waiting ? "wants to watch" : `since ${clock(v.since_unix_ms)}`));
  const actions = el("div", "viewer-actions");
  if (waiting) actions.append(viewerButton("Let in", "admit_viewer", v, "btn small primary"));
  actions.append(viewerButton("Remove", "remove_viewer", v, "btn small"));
  li.append(whoBox, actions);
  return li;
}

function viewerButton(label, command, v, className) {
  const button = el("button", className, label);
  button.type = "button";
  button.dataset.viewer = `${command}:${v.id}`;
  button.setAttribute("aria-label", `${label} ${v.address}${v.browser && v.browser !== "unknown" ? ", " + v.browser : ""}`);
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await invoke(command, { id: v.id });
    } catch (err) {
      showError(`Couldn't ${label.toLowerCase()} that viewer: ` + message(err));
      button.disabled = false;
    }
  });
  return button;
}

const previewErrors = reporter("Couldn't get the preview: ");
let previewRunning = false;

// One loop per share, each round awaited, so slow previews never pile up.
async function previewLoop() {
  if (previewRunning) return;
  previewRunning = true;
  while (app.sharing) {
    // A hidden or minimised window asks for nothing: the preview must not keep capture awake.
    if (document.hidden) {
      await new Promise((r) => document.addEventListener("visibilitychange", r, { once: true }));
      continue;
    }
    try {
      const url = await invoke("preview");
      if (url && app.sharing) {
        ui.preview.src = url;
        ui.preview.hidden = false;
        ui.previewEmpty.hidden = true;
        // The desktop's pick has no picture of its own before a share: its card shows this one.
        const thumb = app.desktopPicks && ui.monitors.querySelector(".card img");
        if (thumb) { thumb.src = url; thumb.hidden = false; }
      }
      previewErrors();
    } catch (err) {
      if (app.sharing) previewErrors(err);
    }
    await new Promise((r) => setTimeout(r, PREVIEW_EVERY_MS));
  }
  previewRunning = false;
}

let copyTimer = null;

async function copyUrl() {
  if (!app.urls[0]) return;
  clearTimeout(copyTimer);
  try {
    await navigator.clipboard.writeText(app.urls[0]);
    ui.copy.textContent = "Copied";
  } catch {
    // No clipboard access: select the link so one keystroke copies it.
    getSelection().selectAllChildren(ui.url);
    ui.copyHint.textContent = "Couldn't copy. The link is selected: press Ctrl+C.";
  }
  copyTimer = setTimeout(() => {
    ui.copy.textContent = "Copy link";
    ui.copyHint.textContent = "";
  }, 3000);
}

// Six digits from the system's randomness: easy to read out to a room, hard to guess in the
// few tries a minute the share allows.
function randomPin() {
  const digits = new Uint32Array(1);
  crypto.getRandomValues(digits);
  return String(digits[0] % 1000000).padStart(6, "0");
}

async function init() {
  for (const node of document.querySelectorAll("[id]")) {
    ui[node.id.replace(/-(\w)/g, (_, c) => c.toUpperCase())] = node;
  }
  const clicks = { errorClose: hideError, share: startShare, stop: stopShare, pause: togglePause, copy: copyUrl, pickAgain };
  for (const [key, handler] of Object.entries(clicks)) ui[key].addEventListener("click", handler);
  wireSlider(ui.fps, "fps");
  wireSlider(ui.quality, "quality");
  ui.maxWidth.addEventListener("change", () => patch("max_width", maxWidthValue()));
  ui.showPointer.addEventListener("change", () => patch("show_pointer", ui.showPointer.checked));
  ui.audio.addEventListener("change", () => { patch("audio", ui.audio.checked); showSound(app.sound, ui.audio.checked); });
  ui.motion.addEventListener("change", () => patch("motion", ui.motion.value));
  ui.history.addEventListener("change", () => patch("history", ui.history.checked));
  ui.pin.addEventListener("change", () => patch("pin", ui.pin.value.trim() || null));
  ui.newPin.addEventListener("click", () => patch("pin", randomPin()));
  ui.requireApproval.addEventListener("change", () => patch("require_approval", ui.requireApproval.checked));
  ui.approveInstead.addEventListener("click", () => {
    ui.requireApproval.checked = true;
    ui.pinAttack.hidden = true;
    patch("require_approval", true);
  });
  ui.maxViewers.addEventListener("change", () => patch("max_viewers", +ui.maxViewers.value));
  document.addEventListener("visibilitychange", refreshThumbnails);
  document.addEventListener("keydown", (e) => { if (e.key === "Escape") hideError(); });

  try {
    await window.__TAURI__.event.listen("status", (e) => onStatus(e.payload));
  } catch (err) {
    showError("Live sharing status is unavailable: " + message(err));
  }

  let saved = {};
  try {
    saved = (await invoke("load_settings")) || {};
    applySettings(saved);
    if (saved.notice) showError(saved.notice);
  } catch (err) {
    showError("Couldn't load your last settings: " + message(err));
  }

  app.desktopPicks = await invoke("desktop_picks").catch(() => false);
  try {
    app.monitors = await invoke("list_monitors");
    app.selected = pickMonitor(saved.monitor);
    renderMonitors();
  } catch (err) {
    ui.monitors.replaceChildren(el("p", "muted", "Screens could not be listed."));
    showError("Couldn't list your screens: " + message(err));
  }
  thumbnailLoop();
}

document.addEventListener("DOMContentLoaded", init);
