// Recording mode: an eye-tracking recording (a folder under the server's media root) opened as a video
// session with its gaze. The AOIs are the objects clicked on the video (or a folder of AOI masks); the
// gaze mapping tracks them and computes the tables. Drawn: the gaze point with its tolerance circle
// over the video, a per-AOI timeline (visible: light, looked at: solid), the metrics table; CSV exports.
import * as api from "./api.js";
import { css } from "./colors.js";
import { colorOf } from "./view.js";

const $ = (id) => document.getElementById(id);
const SHORT = {
  aoi: "AOI", name: "name", visible_s: "visible s", fixation_count: "fixations",
  total_fixation_duration_s: "fix. total s", average_fixation_duration_s: "fix. mean s",
  time_to_first_fixation_s: "TTFF s", time_to_first_fixation_visible_s: "TTFF vis. s",
  first_fixation_duration_s: "first fix. s", visit_count: "visits", total_visit_duration_s: "visits s",
  dwell_s: "dwell s", time_to_first_gaze_s: "first gaze s", dwell_share_of_visible: "dwell/vis.",
};
const FILES = { samples: "_gaze_samples.csv", fixations: "_fixations.csv", aoi_metrics: "_aoi_metrics.csv", zip: "_gaze.zip" };
const ROW = 14;
const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
const LABEL = 110;

// app: { state, ui, run, setStatus, reset, showFrame, refreshSession, renderObjects } of app.js
export function createRecordingMode(app) {
  const { state, ui } = app;
  const rec = { session: null, info: null, points: new Map(), timeline: null, metrics: null, tolerancePx: null, playing: false };
  window.sam2kitRecording = rec; // for debugging and the browser tests
  const bar = $("recording-bar");
  const panel = $("recording-panel");
  const strip = $("aoi-timeline");
  const url = (path = "") => `/v1/recordings/${rec.session}${path}`;
  const active = () => rec.session !== null && state.session === rec.session;

  function show(visible) {
    bar.hidden = !visible;
    panel.hidden = !visible;
    if (!visible) { rec.session = null; rec.playing = false; }
  }

  async function open() {
    const path = $("recording-path").value.trim();
    if (!path) { app.setStatus("Type a recording folder, relative to the server's media root.", true); return; }
    const session = await app.run(() => api.request("POST", "/v1/recordings/open", { path }), `Opening ${path}…`);
    if (!session) return;
    Object.assign(rec, { info: session.recording, points: new Map(), timeline: null, metrics: null, tolerancePx: null });
    show(true); // before reset(), so the stage is fitted beside the recording bar
    rec.session = session.session_id;
    app.reset("video", session, path);
    renderMetrics();
    await loadGaze();
    await app.showFrame(0);
    const r = session.recording;
    $("recording-info").textContent = `${r.format} · ${r.num_samples} samples (${r.valid_samples} valid) · ` +
      `${r.num_fixations ?? "no"} fixations · ${r.duration_s.toFixed(1)} s`;
    app.setStatus(`${path}: ${session.num_frames} frames, ${r.num_samples} gaze samples. Click the AOIs, then run the gaze mapping.`);
  }

  async function loadGaze() {
    const data = await app.run(() => api.request("GET", url("/gaze")));
    if (!data) return;
    rec.points = new Map(data.frames.map((p) => [p.frame, p]));
    rec.tolerancePx = data.tolerance_px;
  }

  async function runMapping() {
    if (!active() || state.propagating) return;
    const body = { tolerance: $("tolerance").value.trim() || "0px" };
    const masks = $("aoi-masks").value.trim();
    if (masks) body.aoi_masks = masks;
    const job = await app.run(() => api.request("POST", url("/mapping"), body), "Starting the gaze mapping…");
    if (!job) return;
    state.propagating = true; // the Cancel button cancels the session's job, this one
    ui.cancel.disabled = false;
    let final = null;
    await app.run(() => api.events(url("/mapping/events"), (name, data) => {
      ui.progress.max = data.total || 1;
      ui.progress.value = data.done;
      ui.progressLabel.textContent = `${data.phase} ${data.done} / ${data.total}`;
      if (name === "end") final = data;
    }), "Gaze mapping…");
    state.propagating = false;
    ui.cancel.disabled = true;
    if (!final) return;
    ui.progressLabel.textContent = `${final.status} ${final.done} / ${final.total}`;
    state.masks = new Map();
    await syncObjects();
    if (final.status === "done") await loadResults();
    await app.showFrame(state.frame);
    const text = final.status === "done"
      ? `Gaze mapping done: ${plural(rec.metrics ? rec.metrics.rows.length : 0, "AOI")} in ${final.elapsed_s.toFixed(1)} s.`
      : `Gaze mapping ${final.status}${final.error ? `: ${final.error}` : ""}.`;
    app.setStatus(text, final.status === "failed");
  }

  // The server's objects (AOIs from a mask folder become objects) into the object list.
  async function syncObjects() {
    const session = await app.run(() => api.request("GET", url()));
    if (!session) return;
    for (const item of session.objects) {
      const known = state.objects.find((o) => o.id === item.obj_id);
      if (known) known.name = item.name;
      else state.objects.push({ id: item.obj_id, name: item.name, hidden: false });
    }
    app.renderObjects();
    await app.refreshSession();
  }

  async function loadResults() {
    await loadGaze();
    rec.timeline = await app.run(() => api.request("GET", url("/timeline")));
    rec.metrics = await app.run(() => api.request("GET", url("/metrics")));
    renderMetrics();
  }

  function nameOf(aoi, name) {
    if (name) return name;
    const obj = state.objects.find((o) => o.id === aoi);
    return obj ? obj.name : `AOI ${aoi}`;
  }

  function renderMetrics() {
    const table = $("metrics");
    const m = rec.metrics;
    for (const button of document.querySelectorAll("[data-gaze-export]")) button.disabled = !m;
    if (!m) {
      const cell = document.createElement("td");
      cell.className = "text muted";
      cell.textContent = "Run the gaze mapping to see the AOI metrics.";
      table.tHead.replaceChildren();
      table.tBodies[0].replaceChildren(document.createElement("tr"));
      table.tBodies[0].rows[0].append(cell);
    } else {
      const head = document.createElement("tr");
      for (const column of m.columns) {
        const th = document.createElement("th");
        th.textContent = SHORT[column] || column;
        th.title = column;
        if (column === "name") th.className = "text";
        head.append(th);
      }
      table.tHead.replaceChildren(head);
      table.tBodies[0].replaceChildren(...m.rows.map((row) => {
        const tr = document.createElement("tr");
        tr.dataset.aoi = row.aoi;
        for (const column of m.columns) {
          const td = document.createElement("td");
          const value = row[column];
          if (column === "aoi") {
            const swatch = document.createElement("span");
            swatch.className = "swatch";
            swatch.style.background = css(colorOf(value));
            td.append(swatch, String(value));
          } else if (column === "name") {
            td.className = "text";
            td.textContent = nameOf(row.aoi, value);
          } else td.textContent = value === null ? "–" : Number.isInteger(value) ? String(value) : value.toFixed(3);
          tr.append(td);
        }
        return tr;
      }));
    }
    window.dispatchEvent(new Event("resize")); // the bar changed height: refit the stage
  }

  // The tolerance circle's radius in pixels: the mapping's, else the field's ("20px", "1.5deg").
  function tolerance() {
    if (rec.tolerancePx !== null) return rec.tolerancePx;
    const match = /^\s*([0-9]*\.?[0-9]+)\s*(px|deg)?\s*$/i.exec($("tolerance").value);
    if (!match) return 0;
    const value = Number(match[1]);
    if ((match[2] || "px").toLowerCase() === "px") return value;
    return rec.info && rec.info.focal_px ? rec.info.focal_px * Math.tan((value * Math.PI) / 180) : 0;
  }

  function describe(point) {
    if (!point) return "no gaze on this frame";
    const where = point.x === null ? "no gaze" : `(${point.x.toFixed(1)}, ${point.y.toFixed(1)}) px`;
    const hits = point.aois === null ? "" : point.aois.length ? ` · on ${point.aois.map((a) => nameOf(a, "")).join(", ")}` : " · on no AOI";
    return `gaze ${where}${point.valid ? "" : ` · invalid (${point.reason})`}${hits}`;
  }

  // Called by app.js after it draws the masks: the gaze point of the frame, and the timeline.
  function draw(canvas) {
    if (!active()) return;
    drawStrip();
    const point = rec.points.get(state.frame);
    $("gaze-label").textContent = describe(point);
    if (!point || point.x === null || point.y === null) return;
    const context = canvas.getContext("2d");
    const unit = Math.max(canvas.width, canvas.height) / 100;
    const hit = point.aois && point.aois.length ? point.aois[0] : null;
    const color = !point.valid ? "rgba(190, 190, 190, 0.9)" : hit !== null ? css(colorOf(hit)) : "#ffd400";
    const radius = tolerance();
    context.save();
    context.lineWidth = Math.max(1, unit / 4);
    if (radius > 0) { // white dashes on a dark ring: visible on any mask colour
      context.beginPath();
      context.arc(point.x, point.y, radius, 0, 2 * Math.PI);
      context.strokeStyle = "rgba(0, 0, 0, 0.7)";
      context.stroke();
      context.setLineDash([unit, unit / 2]);
      context.strokeStyle = "#fff";
      context.stroke();
      context.setLineDash([]);
    }
    const size = Math.max(3, unit * 1.4);
    context.beginPath();
    context.arc(point.x, point.y, size, 0, 2 * Math.PI);
    context.fillStyle = point.valid ? color : "rgba(0, 0, 0, 0)";
    context.fill();
    context.strokeStyle = point.valid ? "#fff" : color;
    context.stroke();
    context.beginPath();
    context.arc(point.x, point.y, size + context.lineWidth, 0, 2 * Math.PI);
    context.strokeStyle = "#000";
    context.stroke();
    context.beginPath();
    context.moveTo(point.x - 2 * size, point.y); context.lineTo(point.x - size, point.y);
    context.moveTo(point.x + size, point.y); context.lineTo(point.x + 2 * size, point.y);
    context.moveTo(point.x, point.y - 2 * size); context.lineTo(point.x, point.y - size);
    context.moveTo(point.x, point.y + size); context.lineTo(point.x, point.y + 2 * size);
    context.strokeStyle = "#fff";
    context.stroke();
    context.restore();
  }

  function drawStrip() {
    const rows = rec.timeline ? rec.timeline.aois : [];
    const width = strip.clientWidth || 600;
    const height = (rows.length + 1) * ROW + 4;
    if (strip.width !== width) strip.width = width;
    if (strip.height !== height) { strip.height = height; strip.style.height = `${height}px`; }
    const context = strip.getContext("2d");
    context.clearRect(0, 0, width, height);
    const n = state.numFrames || 1;
    const step = (width - LABEL) / n;
    const span = (first, last, y, h) => context.fillRect(LABEL + first * step, y, Math.max(1, (last - first + 1) * step), h);
    context.font = "11px system-ui, sans-serif";
    context.textBaseline = "middle";
    context.fillStyle = "#9aa0a6";
    context.fillText("gaze valid", 4, 2 + ROW / 2);
    context.fillStyle = "#6d7480";
    if (rec.timeline) for (const [a, b] of rec.timeline.valid) span(a, b, 5, ROW - 6);
    else for (const [frame, point] of rec.points) if (point.valid) span(frame, frame, 5, ROW - 6);
    rows.forEach((row, index) => {
      const y = 2 + (index + 1) * ROW;
      const color = colorOf(row.aoi);
      context.fillStyle = css(color);
      context.fillText(nameOf(row.aoi, row.name).slice(0, 16), 4, y + ROW / 2);
      context.fillStyle = css(color, 0.3);
      for (const [a, b] of row.visible) span(a, b, y + 1, ROW - 2);
      context.fillStyle = css(color);
      for (const [a, b] of row.looked) span(a, b, y + 3, ROW - 6);
    });
    context.fillStyle = "#fff";
    context.fillRect(LABEL + state.frame * step + step / 2 - 1, 0, 2, height);
  }

  async function play() {
    if (!active()) return;
    if (rec.playing) { rec.playing = false; return; }
    rec.playing = true;
    $("play").textContent = "❚❚ Pause";
    const times = rec.info.frame_times_s;
    let frame = state.frame >= state.numFrames - 1 ? 0 : state.frame;
    while (rec.playing && active() && frame < state.numFrames) {
      const started = performance.now();
      await app.showFrame(frame);
      const wait = frame + 1 < times.length ? (times[frame + 1] - times[frame]) * 1000 : 33;
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, wait - (performance.now() - started))));
      frame += 1;
    }
    rec.playing = false;
    $("play").textContent = "▶ Play";
  }

  async function exportTable(table) {
    if (!active()) return;
    const data = await app.run(() => api.blob(url(`/export/${table}`)), `Exporting ${table}…`);
    if (!data) return;
    const stem = (rec.info.path.replace(/[\\/]+$/, "").split(/[\\/]/).pop() || "recording");
    const link = document.createElement("a");
    link.href = URL.createObjectURL(data);
    link.download = stem + FILES[table];
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
    app.setStatus(`Exported ${link.download}.`);
  }

  $("open-recording").addEventListener("click", open);
  $("recording-path").addEventListener("keydown", (event) => { if (event.key === "Enter") open(); });
  for (const id of ["open-image", "open-video"]) $(id).addEventListener("change", () => show(false));
  $("run-mapping").addEventListener("click", runMapping);
  $("play").addEventListener("click", play);
  $("tolerance").addEventListener("input", () => { rec.tolerancePx = null; if (active()) app.showFrame(state.frame); });
  strip.addEventListener("click", (event) => {
    const rect = strip.getBoundingClientRect();
    const frame = Math.floor(((event.clientX - rect.left - LABEL) * (state.numFrames || 1)) / (rect.width - LABEL));
    if (active() && frame >= 0) app.showFrame(frame);
  });
  for (const button of document.querySelectorAll("[data-gaze-export]")) button.addEventListener("click", () => exportTable(button.dataset.gazeExport));
  document.addEventListener("keydown", (event) => {
    if (event.key === " " && active() && !(event.target instanceof HTMLInputElement && event.target.type !== "range")) {
      event.preventDefault();
      play();
    }
  });
  return { draw };
}
