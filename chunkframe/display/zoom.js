// chunkframe's zoomable plot: the wheel zooms, a drag pans, a double click resets. The
// view is redrawn at once from the data at hand, then sent to the kernel, which re-reads
// only the chunks in view and sends the series again at one bucket per pixel.

const NS = "http://www.w3.org/2000/svg";
const COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
  "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#4c9ed9", "#f2a541"];
const HEIGHT = 300;
const PAD = { left: 58, right: 12, top: 10, bottom: 40 };
const SEC = 1000, MIN = 60 * SEC, HOUR = 60 * MIN, DAY = 24 * HOUR;
const STEPS = [1, 2, 5, 10, 15, 30].map((s) => s * SEC)
  .concat([1, 2, 5, 10, 15, 30].map((m) => m * MIN))
  .concat([1, 2, 3, 6, 12].map((h) => h * HOUR))
  .concat([1, 2, 7, 14, 30, 61, 91, 182, 365].map((d) => d * DAY));

function node(name, attrs, parent) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (parent) parent.appendChild(e);
  return e;
}

function niceStep(span, count) {
  const raw = span / Math.max(count, 1);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * mag >= raw) return m * mag;
  return 10 * mag;
}

const pad2 = (n) => String(n).padStart(2, "0");
function timeLabel(ms, step) {
  const d = new Date(ms);
  const date = `${d.getUTCFullYear()}-${pad2(d.getUTCMonth() + 1)}-${pad2(d.getUTCDate())}`;
  const hm = `${pad2(d.getUTCHours())}:${pad2(d.getUTCMinutes())}`;
  if (step >= DAY) return date;
  if (step >= MIN) return hm === "00:00" ? date : hm;
  return `${hm}:${pad2(d.getUTCSeconds())}`;
}

const stamp = (ms) => new Date(ms).toISOString().slice(0, 19).replace("T", " ");

// An element of the given tag and class.
const make = (tag, cls) => Object.assign(document.createElement(tag), { className: cls });

function render({ model, el }) {
  el.classList.add("cf-zoom");
  el.setAttribute("data-lm-suppress-shortcuts", "true");
  const title = make("div", "cf-zoom-title");
  const row = make("div", "cf-zoom-row");
  const box = make("div", "cf-zoom-box");
  const svg = node("svg", { class: "cf-zoom-svg", height: HEIGHT });
  box.appendChild(svg);
  const legend = make("div", "cf-zoom-legend");
  row.append(box, legend);
  const status = make("div", "cf-zoom-status");
  el.append(title, row, status);

  let view = model.get("view").slice();
  let sent = null;
  let width = 0;

  const plotWidth = () => Math.max(width - PAD.left - PAD.right, 10);

  function yRange(series) {
    let lo = Infinity, hi = -Infinity;
    for (const s of series) {
      s.x.forEach((x, i) => {
        if (x === null || x < view[0] || x > view[1]) return;
        if (s.low[i] !== null) lo = Math.min(lo, s.low[i]);
        if (s.high[i] !== null) hi = Math.max(hi, s.high[i]);
      });
    }
    if (!Number.isFinite(lo)) return [0, 1];
    if (hi === lo) return [lo - 1, hi + 1];
    const pad = (hi - lo) * 0.05;
    return [lo - pad, hi + pad];
  }

  function draw() {
    width = box.clientWidth || 600;
    svg.setAttribute("width", width);
    svg.setAttribute("viewBox", `0 0 ${width} ${HEIGHT}`);
    svg.replaceChildren();
    const series = model.get("series");
    const w = plotWidth(), h = HEIGHT - PAD.top - PAD.bottom;
    const [x0, x1] = view;
    const [y0, y1] = yRange(series);
    const px = (x) => PAD.left + ((x - x0) / (x1 - x0)) * w;
    const py = (y) => PAD.top + h - ((y - y0) / (y1 - y0)) * h;
    const defs = node("defs", {}, svg);
    const clip = node("clipPath", { id: `cf-clip-${model.model_id || "z"}` }, defs);
    node("rect", { x: PAD.left, y: PAD.top, width: w, height: h }, clip);
    const grid = node("g", { class: "cf-zoom-grid" }, svg);
    const axis = node("g", { class: "cf-zoom-axis" }, svg);
    const ystep = niceStep(y1 - y0, Math.max(2, Math.floor(h / 45)));
    for (let y = Math.ceil(y0 / ystep) * ystep; y <= y1; y += ystep) {
      node("line", { x1: PAD.left, x2: PAD.left + w, y1: py(y), y2: py(y) }, grid);
      node("text", { x: PAD.left - 4, y: py(y) + 3, "text-anchor": "end" }, axis)
        .textContent = Number(y.toPrecision(6)).toLocaleString("en-US");
    }
    const count = Math.max(2, Math.floor(w / 110));
    const time = model.get("time_axis");
    const xstep = time ? (STEPS.find((s) => (x1 - x0) / s <= count) || 365 * DAY)
      : Math.max(1, niceStep(x1 - x0, count));
    for (let x = Math.ceil(x0 / xstep) * xstep; x <= x1; x += xstep) {
      node("line", { x1: px(x), x2: px(x), y1: PAD.top, y2: PAD.top + h }, grid);
      node("text", { x: px(x), y: PAD.top + h + 14, "text-anchor": "middle" }, axis)
        .textContent = time ? timeLabel(x, xstep) : Math.round(x).toLocaleString("en-US");
    }
    node("rect", { class: "cf-zoom-frame", x: PAD.left, y: PAD.top, width: w, height: h }, svg);
    node("text", { x: PAD.left + w / 2, y: HEIGHT - 4, "text-anchor": "middle",
      class: "cf-zoom-label" }, svg).textContent = model.get("xlabel") +
      (time ? `: ${stamp(x0)} – ${stamp(x1)}` : "");
    node("text", { x: 12, y: PAD.top + h / 2, "text-anchor": "middle", class: "cf-zoom-label",
      transform: `rotate(-90 12 ${PAD.top + h / 2})` }, svg).textContent = model.get("ylabel");
    const data = node("g", { "clip-path": `url(#cf-clip-${model.model_id || "z"})` }, svg);
    legend.replaceChildren();
    series.forEach((s, k) => {
      const colour = COLOURS[k % COLOURS.length];
      const pts = [];
      s.x.forEach((x, i) => { if (x !== null && s.mean[i] !== null) pts.push(i); });
      if (!s.raw && pts.length) {
        const upper = pts.map((i) => `${px(s.x[i]).toFixed(1)},${py(s.high[i]).toFixed(1)}`);
        const lower = pts.slice().reverse()
          .map((i) => `${px(s.x[i]).toFixed(1)},${py(s.low[i]).toFixed(1)}`);
        node("polygon", { class: "cf-zoom-band", points: upper.concat(lower).join(" "),
          fill: colour, stroke: colour }, data);
      }
      node("polyline", { class: "cf-zoom-line", stroke: colour, points: pts
        .map((i) => `${px(s.x[i]).toFixed(1)},${py(s.mean[i]).toFixed(1)}`).join(" ") }, data);
      if (s.raw && pts.length <= w / 4) {
        for (const i of pts) {
          node("circle", { cx: px(s.x[i]), cy: py(s.mean[i]), r: 2, fill: colour }, data);
        }
      }
      const item = document.createElement("div");
      item.className = "cf-zoom-item";
      const swatch = document.createElement("span");
      swatch.className = "cf-zoom-swatch";
      swatch.style.background = colour;
      item.append(swatch, document.createTextNode(s.label + (s.raw ? "" : " (mean, min–max)")));
      legend.appendChild(item);
    });
    title.textContent = model.get("title");
    status.textContent = model.get("status") +
      " · wheel: zoom · drag: pan · double click: all";
  }

  let timer = null;
  function send() {
    clearTimeout(timer);
    timer = setTimeout(() => {
      sent = view.slice();
      el.dataset.waiting = "true";
      model.set("view", sent);
      model.save_changes();
    }, 80);
  }

  function setView(a, b) {
    const [f0, f1] = model.get("full");
    const min = model.get("time_axis") ? 10 * SEC : 10;
    let span = Math.min(Math.max(b - a, min), f1 - f0);
    a = Math.min(Math.max(a, f0), f1 - span);
    view = [a, a + span];
    draw();
    send();
  }

  box.addEventListener("wheel", (event) => {
    event.preventDefault();
    const r = svg.getBoundingClientRect();
    const frac = Math.min(Math.max((event.clientX - r.left - PAD.left) / plotWidth(), 0), 1);
    const at = view[0] + frac * (view[1] - view[0]);
    const f = Math.pow(1.0015, event.deltaMode === 1 ? event.deltaY * 33 : event.deltaY);
    setView(at - (at - view[0]) * f, at + (view[1] - at) * f);
  }, { passive: false });
  let drag = null;
  box.addEventListener("pointerdown", (event) => {
    box.setPointerCapture(event.pointerId);
    drag = { x: event.clientX, view: view.slice() };
  });
  box.addEventListener("pointermove", (event) => {
    if (!drag) return;
    const dx = ((event.clientX - drag.x) / plotWidth()) * (drag.view[1] - drag.view[0]);
    setView(drag.view[0] - dx, drag.view[1] - dx);
  });
  box.addEventListener("pointerup", () => { drag = null; });
  box.addEventListener("dblclick", () => setView(...model.get("full")));

  model.on("change:series", () => { el.dataset.waiting = "false"; draw(); });
  model.on("change:view", () => {
    const v = model.get("view");
    if (!sent || v[0] !== sent[0] || v[1] !== sent[1]) { view = v.slice(); draw(); }
  });
  for (const name of ["status", "title", "xlabel", "ylabel"]) model.on(`change:${name}`, draw);
  const resize = new ResizeObserver(() => {
    const before = width;
    draw();
    const bins = Math.round(plotWidth());
    if (Math.abs(width - before) > 20 && model.get("width") !== bins) {
      model.set("width", bins);
      model.save_changes();
    }
  });
  resize.observe(box);
  draw();
  return () => resize.disconnect();
}

export default { render };
