// chunkframe's row window: a table of `view` rows of a dataset of any size, scrolled
// without ever holding it. The kernel keeps `buffer` (formatted rows from `buffer_start`,
// about three windows around the view); this side draws the rows in view from it at
// once, shows the rows it lacks as pending, and tells the kernel where the view went
// (`top`, `sn`), which reads only the rows around it through the chunk cache.

const fmt = (n) => Number(n).toLocaleString("en-US");
const KEYS = "↑↓ / j k row · PgUp PgDn page · Home End · wheel scroll · drag the bar";

// An element of the given tag and class.
const make = (tag, cls) => Object.assign(document.createElement(tag), { className: cls });

function render({ model, el }) {
  el.classList.add("cf-grid");
  el.tabIndex = 0; // focusable: keys move the current row
  el.setAttribute("data-lm-suppress-shortcuts", "true"); // JupyterLab leaves our keys to us
  el.setAttribute("role", "grid");

  const body = make("div", "cf-grid-body");
  const wrap = make("div", "cf-grid-wrap");
  const table = make("table", "cf-grid-table");
  const thead = table.createTHead();
  const tbody = table.createTBody();
  wrap.appendChild(table);
  const bar = make("div", "cf-grid-bar");
  bar.title = "drag to scroll through the whole dataset";
  const thumb = make("div", "cf-grid-thumb");
  bar.appendChild(thumb);
  body.append(wrap, bar);
  const status = make("div", "cf-grid-status");
  el.append(body, status);

  let top = model.get("top");
  let sn = model.get("sn");
  let rows = []; // the <tr> elements, reused
  let saving = false;

  const total = () => model.get("total");
  const view = () => Math.max(1, Math.min(model.get("view"), total()));

  function header() {
    thead.replaceChildren();
    const tr = thead.insertRow();
    for (const col of [{ name: "sn", dtype: "int64" }, ...model.get("columns")]) {
      const th = document.createElement("th");
      const name = document.createElement("div");
      name.className = "cf-grid-name";
      name.textContent = col.name;
      const dtype = document.createElement("div");
      dtype.className = "cf-grid-dtype";
      dtype.textContent = col.dtype;
      th.append(name, dtype);
      th.title = `${col.name}: ${col.dtype}`;
      tr.appendChild(th);
    }
    tbody.replaceChildren();
    rows = [];
  }

  function ensureRows() {
    const n = model.get("view");
    const width = model.get("columns").length + 1;
    while (rows.length < n) {
      const tr = tbody.insertRow();
      for (let j = 0; j < width; j++) tr.insertCell();
      tr.addEventListener("click", () => {
        const at = Number(tr.dataset.sn);
        if (!Number.isNaN(at)) move(at, top);
        el.focus({ preventScroll: true });
      });
      rows.push(tr);
    }
  }

  function draw() {
    ensureRows();
    const start = model.get("buffer_start");
    const buffer = model.get("buffer");
    const starts = new Set(model.get("boundaries"));
    const n = total();
    let pending = 0;
    rows.forEach((tr, i) => {
      const r = top + i;
      tr.hidden = r >= n;
      if (r >= n) return;
      const cells = buffer[r - start];
      tr.dataset.sn = String(r);
      tr.classList.toggle("cf-current", r === sn);
      tr.classList.toggle("cf-chunk-start", starts.has(r) && r > 0);
      tr.classList.toggle("cf-pending", cells === undefined);
      tr.setAttribute("aria-selected", r === sn ? "true" : "false");
      [...tr.cells].forEach((td, j) => {
        td.textContent = j === 0 ? fmt(r) : cells === undefined ? "…" : cells[j - 1];
      });
      if (cells === undefined) pending += 1;
    });
    const track = bar.clientHeight;
    const size = n > 0 ? Math.max(18, (track * view()) / n) : track;
    const span = Math.max(n - view(), 1);
    thumb.style.height = `${size}px`;
    thumb.style.top = `${((track - size) * top) / span}px`;
    const last = Math.min(top + view(), n) - 1;
    const error = model.get("error");
    status.classList.toggle("cf-grid-error", Boolean(error));
    status.textContent = error ? error : n === 0 ? "no rows" :
      `rows ${fmt(top)}–${fmt(last)} of ${fmt(n)} · row ${fmt(sn)}` +
      (pending ? " · reading…" : "") + ` · ${KEYS}`;
    el.dataset.pending = String(pending);
  }

  // Move the current row to `to` and the view's first row to `first` (both clamped, the
  // current row kept in view), draw at once, and tell the kernel.
  function move(to, first) {
    const n = total();
    if (n === 0) return;
    sn = Math.min(Math.max(Math.round(to), 0), n - 1);
    const v = view();
    top = Math.min(Math.max(Math.round(first), 0), Math.max(n - v, 0));
    if (sn < top) top = sn;
    if (sn >= top + v) top = sn - v + 1;
    draw();
    model.set("top", top);
    model.set("sn", sn);
    if (!saving) { // one message for a burst of key repeats or wheel events
      saving = true;
      setTimeout(() => { saving = false; model.save_changes(); }, 0);
    }
  }

  el.addEventListener("keydown", (event) => {
    const v = view();
    const steps = {
      ArrowDown: [1, 0], j: [1, 0], ArrowUp: [-1, 0], k: [-1, 0],
      PageDown: [v, v], " ": [v, v], PageUp: [-v, -v],
    };
    if (event.key in steps) {
      const [ds, dt] = steps[event.key];
      move(sn + ds, top + dt);
    } else if (event.key === "Home") {
      move(0, 0);
    } else if (event.key === "End") {
      move(total() - 1, total());
    } else {
      return;
    }
    event.preventDefault();
    event.stopPropagation();
  });

  body.addEventListener("wheel", (event) => {
    if (event.deltaY === 0) return;
    event.preventDefault();
    const rowsBy = event.deltaMode === 1 ? event.deltaY : event.deltaY / 33;
    const delta = Math.sign(rowsBy) * Math.max(1, Math.round(Math.abs(rowsBy)));
    move(sn + delta, top + delta);
  }, { passive: false });

  function drag(event) {
    const box = bar.getBoundingClientRect();
    const frac = Math.min(Math.max((event.clientY - box.top) / Math.max(box.height, 1), 0), 1);
    const first = Math.round(frac * Math.max(total() - view(), 0));
    move(first + (sn - top), first);
  }
  bar.addEventListener("pointerdown", (event) => {
    bar.setPointerCapture(event.pointerId);
    drag(event);
    el.focus({ preventScroll: true });
  });
  bar.addEventListener("pointermove", (event) => {
    if (bar.hasPointerCapture(event.pointerId)) drag(event);
  });

  model.on("change:columns", () => { header(); draw(); });
  model.on("change:view", draw);
  for (const name of ["buffer", "buffer_start", "boundaries", "total", "error"]) {
    model.on(`change:${name}`, draw);
  }
  model.on("change:sn", () => { sn = model.get("sn"); draw(); });
  model.on("change:top", () => { top = model.get("top"); draw(); });
  header();
  draw();
  requestAnimationFrame(draw); // the bar has its height once attached
}

export default { render };
