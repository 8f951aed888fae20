// The annotation UI: open an image, a video or a recording (recording.js), prompt objects, propagate, export.
import * as api from "./api.js";
import { decodeRle } from "./rle.js";
import { renderObjectList } from "./objects.js";
import { createRecordingMode } from "./recording.js";
import { drawOverlay, drawPicture, drawTimeline, fitStage, sizeCanvases } from "./view.js";

const $ = (id) => document.getElementById(id);
const ui = {
  stage: $("stage"), picture: $("image-canvas"), overlay: $("overlay-canvas"), empty: $("empty"),
  status: $("status"), objects: $("objects"), scrubber: $("scrubber"), frameLabel: $("frame-label"),
  timeline: $("timeline"), videoBar: $("video-bar"), progress: $("progress"), progressLabel: $("progress-label"),
  cancel: $("cancel"), auto: $("auto"), fileName: $("file-name"),
};
const canvases = [ui.picture, ui.overlay];

const state = {
  kind: null, session: null, fileName: "", width: 0, height: 0, frame: 0, numFrames: 0,
  objects: [], selected: null, prompts: new Map(), masks: new Map(), masked: new Set(), history: [],
  mode: "pos", picture: null, frames: new Map(), drag: null, propagating: false, pending: 0, showToken: 0,
};
window.sam2kitState = state; // for debugging and the browser tests

const key = (frame, id) => `${frame}:${id}`;
const base = () => `/v1/${state.kind}s/${state.session}`;

function setStatus(text, error = false) {
  ui.status.textContent = text;
  ui.status.classList.toggle("error", error);
}

// Runs an async action with the pending counter (tests wait on data-pending="0") and error display.
async function run(action, label) {
  state.pending += 1;
  document.body.dataset.pending = String(state.pending);
  if (label) setStatus(label);
  try {
    return await action();
  } catch (error) {
    if (error instanceof api.ApiError && error.status === 401) askToken();
    setStatus(error.message || String(error), true);
    return undefined;
  } finally {
    state.pending -= 1;
    document.body.dataset.pending = String(state.pending);
  }
}

function askToken() {
  const dialog = $("token-dialog");
  if (dialog.open) return;
  dialog.showModal();
  dialog.addEventListener("close", () => { api.setToken($("token-input").value.trim()); loadInfo(); }, { once: true });
}

async function loadInfo() {
  const info = await run(() => api.request("GET", "/v1/info"));
  if (info) $("model").textContent = `${info.model.config} · ${info.device}`;
}

// ---------------------------------------------------------------- opening files
function reset(kind, session, fileName) {
  Object.assign(state, {
    kind, session: session.session_id, fileName, width: session.width, height: session.height, frame: 0,
    numFrames: session.num_frames || 1, objects: [], selected: null, prompts: new Map(), masks: new Map(),
    masked: new Set(), history: [], frames: new Map(), picture: null,
  });
  sizeCanvases(canvases, state.width, state.height);
  ui.empty.hidden = true;
  ui.fileName.textContent = fileName;
  ui.videoBar.hidden = kind !== "video";
  ui.auto.disabled = kind !== "image";
  ui.scrubber.max = String(state.numFrames - 1);
  ui.scrubber.value = "0";
  ui.progress.value = 0;
  ui.progressLabel.textContent = "";
  newObject();
  layout();
}

async function openImage(file) {
  const session = await run(() => api.upload("/v1/images", file), `Uploading ${file.name}…`);
  if (!session) return;
  reset("image", session, file.name);
  state.picture = await createImageBitmap(file);
  drawPicture(ui.picture, state.picture);
  render();
  setStatus(`${file.name}: ${session.width}×${session.height}. Click an object.`);
}

async function openVideo(file) {
  const session = await run(() => api.upload("/v1/videos", file), `Uploading ${file.name}…`);
  if (!session) return;
  reset("video", session, file.name);
  await showFrame(0);
  setStatus(`${file.name}: ${session.num_frames} frames, ${session.width}×${session.height}. Click an object.`);
}

// ---------------------------------------------------------------- objects
function newObject() {
  const id = state.objects.reduce((m, o) => Math.max(m, o.id), 0) + 1;
  state.objects.push({ id, name: `object ${id}`, hidden: false });
  state.selected = id;
  renderObjects();
  render();
}

function select(id) {
  state.selected = id;
  renderObjects();
  render();
}

function renderObjects() {
  renderObjectList(ui.objects, state.objects, state.selected, {
    select, rename, remove: deleteObject,
    toggle: (obj) => { obj.hidden = !obj.hidden; renderObjects(); render(); },
  });
}

async function rename(obj, name) {
  obj.name = name;
  const known = [...state.prompts.keys()].some((k) => k.endsWith(`:${obj.id}`));
  if (known) await run(() => api.request("PATCH", `${base()}/objects/${obj.id}`, { name }));
  renderObjects();
}

async function deleteObject(id) {
  if (!state.session) return;
  const known = [...state.prompts.keys()].some((k) => k.endsWith(`:${id}`));
  if (known) await run(() => api.request("DELETE", `${base()}/objects/${id}`));
  state.objects = state.objects.filter((o) => o.id !== id);
  for (const k of [...state.prompts.keys()]) if (k.endsWith(`:${id}`)) state.prompts.delete(k);
  for (const masks of state.masks.values()) masks.delete(id);
  state.history = state.history.filter((h) => h.id !== id);
  if (state.selected === id) state.selected = state.objects.length ? state.objects[state.objects.length - 1].id : null;
  if (state.kind === "video") await refreshSession();
  renderObjects();
  render();
}

// ---------------------------------------------------------------- prompts
function currentPrompt(frame = state.frame, id = state.selected) {
  return state.prompts.get(key(frame, id)) || { points: [], box: null };
}

function decodeAll(objects) {
  const masks = new Map();
  for (const item of objects) if (item.mask) masks.set(item.obj_id, decodeRle(item.mask));
  return masks;
}

async function send(frame, id, prompt) {
  const obj = state.objects.find((o) => o.id === id);
  const name = obj ? obj.name : undefined;
  if (state.kind === "image") {
    const result = await api.request("PUT", `${base()}/objects/${id}`, { points: prompt.points, box: prompt.box, name });
    const masks = state.masks.get(0) || new Map();
    if (result.mask) masks.set(id, decodeRle(result.mask)); else masks.delete(id);
    state.masks.set(0, masks);
  } else {
    const result = await api.request("PUT", `${base()}/prompts`, { frame, obj_id: id, points: prompt.points, box: prompt.box, name });
    const masks = decodeAll(result.objects);
    state.masks.set(frame, masks);
    const any = [...masks.values()].some((m) => m.some((v) => v));
    if (any) state.masked.add(frame); else state.masked.delete(frame);
  }
}

async function applyPrompt(prompt) {
  if (!state.session || state.propagating) return;
  if (state.selected === null) newObject();
  const frame = state.frame;
  const id = state.selected;
  const before = currentPrompt(frame, id);
  state.prompts.set(key(frame, id), prompt);
  state.history.push({ frame, id, before });
  render();
  const done = await run(async () => { await send(frame, id, prompt); return true; }, "Segmenting…");
  if (!done) { state.prompts.set(key(frame, id), before); state.history.pop(); }
  else setStatus(`${describe(id)} updated.`);
  render();
}

function describe(id) {
  const obj = state.objects.find((o) => o.id === id);
  return obj ? obj.name : `object ${id}`;
}

async function undo() {
  const last = state.history.pop();
  if (!last || state.propagating) return;
  state.prompts.set(key(last.frame, last.id), last.before);
  if (!last.before.points.length && !last.before.box) state.prompts.delete(key(last.frame, last.id));
  if (state.kind === "video" && last.frame !== state.frame) await showFrame(last.frame);
  state.selected = last.id;
  await run(() => send(last.frame, last.id, last.before), "Undoing…");
  setStatus("Undid the last prompt.");
  renderObjects();
  render();
}

function toImage(event) {
  const rect = ui.overlay.getBoundingClientRect();
  const x = ((event.clientX - rect.left) * state.width) / rect.width;
  const y = ((event.clientY - rect.top) * state.height) / rect.height;
  return [Math.max(0, Math.min(state.width - 1, x)), Math.max(0, Math.min(state.height - 1, y))];
}

ui.overlay.addEventListener("contextmenu", (event) => event.preventDefault());
ui.overlay.addEventListener("pointerdown", (event) => {
  if (!state.session) return;
  ui.overlay.setPointerCapture(event.pointerId);
  state.drag = { start: toImage(event), end: toImage(event), button: event.button, alt: event.altKey };
});
ui.overlay.addEventListener("pointermove", (event) => {
  if (!state.drag) return;
  state.drag.end = toImage(event);
  if (state.mode === "box") render();
});
ui.overlay.addEventListener("pointerup", (event) => {
  const drag = state.drag;
  state.drag = null;
  if (!drag) return;
  drag.end = toImage(event);
  const [x0, y0] = drag.start;
  const [x1, y1] = drag.end;
  const prompt = currentPrompt();
  const far = Math.hypot(x1 - x0, y1 - y0) > Math.max(4, state.width / 100);
  if (state.mode === "box" && far) {
    const box = [Math.min(x0, x1), Math.min(y0, y1), Math.max(x0, x1), Math.max(y0, y1)].map(Math.round);
    applyPrompt({ points: prompt.points, box });
    return;
  }
  const label = state.mode === "neg" || drag.button === 2 || drag.alt ? 0 : 1;
  applyPrompt({ points: [...prompt.points, [Math.round(x0), Math.round(y0), label]], box: prompt.box });
});

// ---------------------------------------------------------------- video frames
async function frameBitmap(frame) {
  if (state.frames.has(frame)) return state.frames.get(frame);
  const bitmap = await createImageBitmap(await api.blob(`${base()}/frames/${frame}/image`));
  state.frames.set(frame, bitmap);
  if (state.frames.size > 64) state.frames.delete(state.frames.keys().next().value);
  return bitmap;
}

async function showFrame(frame) {
  if (state.kind !== "video") return;
  frame = Math.max(0, Math.min(state.numFrames - 1, frame));
  state.frame = frame;
  ui.scrubber.value = String(frame);
  ui.frameLabel.textContent = `${frame} / ${state.numFrames - 1}`;
  drawTimeline(ui.timeline, state.numFrames, state.masked, frame);
  await run(async () => {
    const bitmap = await frameBitmap(frame);
    if (!state.masks.has(frame) && state.masked.has(frame)) {
      const result = await api.request("GET", `${base()}/frames/${frame}/masks`);
      state.masks.set(frame, decodeAll(result.objects));
    }
    if (state.frame !== frame) return;
    drawPicture(ui.picture, bitmap);
    render();
  });
}

async function refreshSession() {
  const session = await run(() => api.request("GET", base()));
  if (!session) return;
  state.masked = new Set(session.masked_frames);
  drawTimeline(ui.timeline, state.numFrames, state.masked, state.frame);
}

async function propagate(direction) {
  if (state.kind !== "video" || state.propagating) return;
  const job = await run(() => api.request("POST", `${base()}/propagate`, { direction, start_frame: state.frame }));
  if (!job) return;
  state.propagating = true;
  ui.cancel.disabled = false;
  setStatus(`Propagating ${direction}…`);
  await run(() => api.events(`${base()}/propagate/events`, (name, data) => {
    ui.progress.max = data.total || 1;
    ui.progress.value = data.done;
    ui.progressLabel.textContent = `${data.done} / ${data.total}`;
    if (data.last_frame !== null) {
      state.masked.add(data.last_frame);
      state.masks.delete(data.last_frame);
      drawTimeline(ui.timeline, state.numFrames, state.masked, state.frame);
    }
    if (name === "end") setStatus(`Propagation ${data.status}: ${data.done} frames in ${data.elapsed_s.toFixed(1)} s.`, data.status === "failed");
  }));
  state.propagating = false;
  ui.cancel.disabled = true;
  state.masks = new Map();
  await refreshSession();
  await showFrame(state.frame);
}

async function cancel() {
  if (state.propagating) await run(() => api.request("POST", `${base()}/propagate/cancel`));
}

// ---------------------------------------------------------------- automatic masks, export
async function automatic() {
  if (state.kind !== "image") return;
  const result = await run(() => api.request("POST", `${base()}/automatic`, {}), "Finding every object…");
  if (!result) return;
  const masks = state.masks.get(0) || new Map();
  for (const item of result.masks) {
    state.objects.push({ id: item.obj_id, name: `auto ${item.obj_id}`, hidden: false });
    state.prompts.set(key(0, item.obj_id), { points: [], box: null, auto: true });
    masks.set(item.obj_id, decodeRle(item.mask));
  }
  state.masks.set(0, masks);
  setStatus(`${result.masks.length} automatic masks.`);
  renderObjects();
  render();
}

const EXTENSIONS = { coco: "_coco.json", boxes: "_boxes.json", davis: "_davis.zip", yolo: "_yolo.zip" };

async function exportAs(format) {
  if (!state.session) return;
  const data = await run(() => api.blob(`${base()}/export/${format}`), `Exporting ${format}…`);
  if (!data) return;
  const stem = state.fileName.replace(/\.[^.]*$/, "") || state.kind;
  const suffix = EXTENSIONS[format] || (state.kind === "video" ? "_overlay.mp4" : "_overlay.png");
  const link = document.createElement("a");
  link.href = URL.createObjectURL(data);
  link.download = stem + suffix;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  setStatus(`Exported ${link.download}.`);
}

// ---------------------------------------------------------------- layout, drawing, keys
function render() {
  if (!state.session) return;
  const drag = state.drag && state.mode === "box" ? [...state.drag.start, ...state.drag.end] : null;
  drawOverlay(ui.overlay, {
    masks: state.masks.get(state.kind === "video" ? state.frame : 0), objects: state.objects,
    selected: state.selected, prompt: state.selected !== null ? currentPrompt() : null, dragBox: drag,
  });
  recording.draw(ui.overlay);
}

function layout() {
  fitStage(ui.stage, canvases, state.width, state.height);
  if (state.kind === "video") drawTimeline(ui.timeline, state.numFrames, state.masked, state.frame);
}

function setMode(mode) {
  state.mode = mode;
  for (const button of document.querySelectorAll("[data-mode]")) button.classList.toggle("active", button.dataset.mode === mode);
}

function selectOffset(step) {
  if (!state.objects.length) return;
  const index = state.objects.findIndex((o) => o.id === state.selected);
  select(state.objects[(index + step + state.objects.length) % state.objects.length].id);
}

document.addEventListener("keydown", (event) => {
  if (event.target instanceof HTMLInputElement && event.target.type !== "range") return;
  const k = event.key;
  if ((event.ctrlKey || event.metaKey) && k.toLowerCase() === "z") { event.preventDefault(); undo(); return; }
  const actions = {
    1: () => setMode("pos"), 2: () => setMode("neg"), 3: () => setMode("box"),
    n: newObject, N: newObject, "[": () => selectOffset(-1), "]": () => selectOffset(1),
    h: () => { const o = state.objects.find((x) => x.id === state.selected); if (o) { o.hidden = !o.hidden; renderObjects(); render(); } },
    Delete: () => state.selected !== null && deleteObject(state.selected),
    Backspace: () => state.selected !== null && deleteObject(state.selected),
    ArrowLeft: () => showFrame(state.frame - 1), ArrowRight: () => showFrame(state.frame + 1),
    f: () => propagate("forward"), b: () => propagate("backward"), Escape: cancel,
  };
  const action = actions[k] || actions[k.toLowerCase()];
  if (action) { event.preventDefault(); action(); }
});

$("open-image").addEventListener("change", (event) => { const f = event.target.files[0]; if (f) openImage(f); event.target.value = ""; });
$("open-video").addEventListener("change", (event) => { const f = event.target.files[0]; if (f) openVideo(f); event.target.value = ""; });
$("new-object").addEventListener("click", newObject);
$("undo").addEventListener("click", undo);
ui.auto.addEventListener("click", automatic);
$("prev-frame").addEventListener("click", () => showFrame(state.frame - 1));
$("next-frame").addEventListener("click", () => showFrame(state.frame + 1));
ui.scrubber.addEventListener("input", () => showFrame(Number(ui.scrubber.value)));
$("propagate-fwd").addEventListener("click", () => propagate("forward"));
$("propagate-back").addEventListener("click", () => propagate("backward"));
ui.cancel.addEventListener("click", cancel);
for (const button of document.querySelectorAll("[data-mode]")) button.addEventListener("click", () => setMode(button.dataset.mode));
for (const button of document.querySelectorAll("[data-export]")) button.addEventListener("click", () => exportAs(button.dataset.export));
const recording = createRecordingMode({ state, ui, run, setStatus, reset, showFrame, refreshSession, renderObjects });
window.addEventListener("resize", layout);
document.body.dataset.pending = "0";
loadInfo();
