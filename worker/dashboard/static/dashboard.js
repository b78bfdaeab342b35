// rdqc dashboard: keeps the server-rendered pages live. Every value from the server is put in
// the page as text (textContent, attributes), never as HTML, so ids cannot inject markup.
"use strict";

const HEALTH_EVERY_MS = 5000;
const OVERVIEW_EVERY_MS = 5000;
const CHART_POINTS = 600;
const GALLERY_SIZE = 50;

function el(tag, attrs = {}, text = null) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  if (text !== null) node.textContent = text;
  return node;
}

// --- the banner: shown while a backend (or the dashboard itself) does not answer -------------
async function checkHealth() {
  const banner = document.getElementById("banner");
  let message = null;
  try {
    const response = await fetch("/api/health", { cache: "no-store" });
    const health = await response.json();
    const down = Object.entries(health.components || {}).filter(([, c]) => !c.ok);
    const names = { scores: "Redis unreachable", heatmaps: "storage unreachable", models: "model store unreachable" };
    if (down.length) message = down.map(([name, c]) => `${names[name] || name}: ${c.error}`).join(" · ");
  } catch (error) {
    message = "dashboard unreachable; retrying";
  }
  banner.hidden = message === null;
  banner.textContent = message || "";
  document.body.dataset.healthy = message === null ? "yes" : "no";
}

// --- overview ----------------------------------------------------------------------------------
function cameraRow(cam) {
  const row = el("tr", { class: cam.latest.is_anomaly ? "flagged" : "" });
  const score = el("td");
  score.append(el("span", { class: "score" }, cam.latest.score.toFixed(3)), " ");
  score.append(el("meter", { min: 0, max: 1, low: 0.5, high: 0.5, optimum: 0, value: cam.latest.score }));
  const stale = el("td");
  if (cam.stale) stale.append(el("span", { class: "stale" }, "stale"));
  row.append(
    el("td", {}, cam.camera_id),
    score,
    el("td", {}, cam.flag_rate === null ? "—" : `${(cam.flag_rate * 100).toFixed(1)} %`),
    el("td", {}, cam.frames_per_s.toFixed(2)),
    el("td", {}, `${cam.last_frame_age_s.toFixed(0)} s ago`),
    stale,
  );
  return row;
}

function lineSection(line) {
  const section = el("section", { class: "line", "data-line": line.product_line });
  const title = el("h2");
  title.append(el("a", { href: `/lines/${encodeURIComponent(line.product_line)}` }, line.product_line));
  title.append(el("span", { class: "version" }, `model ${line.current_version || "—"}`));
  section.append(title);
  if (!line.cameras.length) {
    section.append(el("p", { class: "muted" }, "no frames scored yet"));
    return section;
  }
  const table = el("table");
  const head = el("tr");
  for (const name of ["camera", "live score", "flag rate", "frames/s", "last frame", ""]) head.append(el("th", {}, name));
  const body = el("tbody");
  for (const cam of line.cameras) body.append(cameraRow(cam));
  table.append(el("thead"), body);
  table.firstChild.append(head);
  section.append(table);
  return section;
}

async function refreshOverview() {
  try {
    const response = await fetch("/api/overview", { cache: "no-store" });
    if (!response.ok) return;
    const overview = await response.json();
    const root = document.getElementById("overview");
    root.replaceChildren(...overview.lines.map(lineSection));
  } catch (error) {
    // The banner says what is down; the next round tries again.
  }
}

// --- a line: live charts and the flagged gallery -----------------------------------------------
class ScoreChart {
  constructor(container, cameraId) {
    this.points = [];
    container.append(el("div", { class: "chart-title" }, cameraId));
    this.canvas = el("canvas", { class: "chart", width: 900, height: 160, "data-camera": cameraId });
    container.append(this.canvas);
  }

  add(score) {
    this.points.push(score);
    if (this.points.length > CHART_POINTS) this.points.splice(0, this.points.length - CHART_POINTS);
  }

  draw(threshold) {
    const ctx = this.canvas.getContext("2d");
    const { width, height } = this.canvas;
    const pad = 6;
    ctx.clearRect(0, 0, width, height);
    const y = (v) => height - pad - Math.min(1, Math.max(0, v)) * (height - 2 * pad);
    ctx.strokeStyle = "#c62828";
    ctx.setLineDash([6, 4]);
    ctx.beginPath();
    ctx.moveTo(0, y(threshold));
    ctx.lineTo(width, y(threshold));
    ctx.stroke();
    ctx.setLineDash([]);
    if (!this.points.length) return;
    const first = this.points[0].captured_at;
    const span = Math.max(1, this.points[this.points.length - 1].captured_at - first);
    const x = (p) => pad + ((p.captured_at - first) / span) * (width - 2 * pad);
    ctx.strokeStyle = "#1f5fbf";
    ctx.beginPath();
    this.points.forEach((p, i) => (i ? ctx.lineTo(x(p), y(p.score)) : ctx.moveTo(x(p), y(p.score))));
    ctx.stroke();
    ctx.fillStyle = "#c62828";
    for (const p of this.points.filter((q) => q.is_anomaly)) ctx.fillRect(x(p) - 2, y(p.score) - 2, 4, 4);
  }
}

function galleryItem(frame) {
  const item = el("li", { "data-key": `${frame.camera_id}:${frame.frame_id}` });
  const link = el("a", { href: frame.frame_url });
  if (frame.thumbnail_url) {
    link.append(el("img", { src: frame.thumbnail_url, alt: `heatmap of ${frame.frame_id}`, width: 240 }));
  }
  link.append(el("span", { class: "caption" }, `${frame.camera_id} · ${frame.frame_id} · ${frame.score.toFixed(3)}`));
  item.append(link);
  return item;
}

function startLine(line) {
  const data = JSON.parse(document.getElementById("line-data").textContent) || { scores: [], threshold_score: 0.5 };
  const threshold = data.threshold_score ?? 0.5;
  const container = document.getElementById("charts");
  const gallery = document.getElementById("gallery");
  const charts = new Map();
  let received = 0;
  const chartFor = (cameraId) => {
    if (!charts.has(cameraId)) charts.set(cameraId, new ScoreChart(container, cameraId));
    return charts.get(cameraId);
  };
  for (const score of data.scores || []) chartFor(score.camera_id).add(score);
  for (const chart of charts.values()) chart.draw(threshold);

  const events = new EventSource(`/api/lines/${encodeURIComponent(line)}/events`);
  events.addEventListener("scores", (event) => {
    const scores = JSON.parse(event.data);
    const touched = new Set();
    for (const score of scores) {
      chartFor(score.camera_id).add(score);
      touched.add(score.camera_id);
      if (score.is_anomaly && !gallery.querySelector(`li[data-key="${CSS.escape(`${score.camera_id}:${score.frame_id}`)}"]`)) {
        gallery.prepend(galleryItem(score));
      }
      document.getElementById("current-version").textContent = score.model_version;
    }
    while (gallery.children.length > GALLERY_SIZE) gallery.lastElementChild.remove();
    for (const cameraId of touched) charts.get(cameraId).draw(threshold);
    received += scores.length;
    container.dataset.points = String(received);
  });
  events.addEventListener("unavailable", () => checkHealth());
  events.onerror = () => checkHealth(); // EventSource reconnects by itself
}

document.addEventListener("DOMContentLoaded", () => {
  checkHealth();
  setInterval(checkHealth, HEALTH_EVERY_MS);
  const page = document.body.dataset.page;
  if (page === "overview") setInterval(refreshOverview, OVERVIEW_EVERY_MS);
  if (page === "line") startLine(document.body.dataset.line);
});
