// The map: the district's cells drawn as SVG (no tiles needed, works offline), case markers
// coloured by status with overdue ringed, pan and zoom, and optional tiles underneath.
import { api } from "./api.js";
import { named, t } from "./i18n.js";
import { clear, el, empty, select, statusBadge, when } from "./ui.js";

const SVG = "http://www.w3.org/2000/svg";
const Z = 17; // world pixel units at this Web Mercator zoom level
const TILE = 256;

export const STATUS_COLOURS = {
  received: "#94a3b8",
  pending_confirmation: "#a855f7",
  pending_acceptance: "#f59e0b",
  accepted: "#0ea5e9",
  manual_dispatch: "#f97316",
  dispatched: "#3b82f6",
  signed: "#6366f1",
  in_progress: "#2563eb",
  handled: "#14b8a6",
  verifying: "#06b6d4",
  reworking: "#e11d48",
  recalled: "#f97316",
  closed: "#16a34a",
  rejected: "#64748b",
  merged: "#64748b",
  open: "#f59e0b", // Open311's two states, on the public page
};

// The six classes of parts (CJ/T 214): 公用设施, 道路交通, 市容环境, 园林绿化, 房屋土地, 其他设施.
export const PART_CLASS_COLOURS = {
  P01: "#1d4ed8",
  P02: "#d97706",
  P03: "#9333ea",
  P04: "#15803d",
  P05: "#b91c1c",
  P06: "#475569",
};
const PART_LIMIT = 800; // parts drawn one by one in a view; more come as clusters
const PART_GRID = 12; // clusters across and down

const SUBDISTRICT_TINTS = ["#e8f1fb", "#eaf6ee", "#fdf3e4", "#f3ecfa", "#e6f6f6", "#fbecee", "#eef0f7", "#f4f6e6"];

function project(lon, lat) {
  const scale = TILE * 2 ** Z;
  const x = ((lon + 180) / 360) * scale;
  const s = Math.sin((lat * Math.PI) / 180);
  const y = (0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI)) * scale;
  return [x, y];
}

function unproject(x, y) {
  const scale = TILE * 2 ** Z;
  const lon = (x / scale) * 360 - 180;
  const n = Math.PI - (2 * Math.PI * y) / scale;
  const lat = (180 / Math.PI) * Math.atan(0.5 * (Math.exp(n) - Math.exp(-n)));
  return [lon, lat];
}

function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) node.setAttribute(k, String(v));
  return node;
}

const cellsCache = new Map();
async function cells(url) {
  if (!cellsCache.has(url)) cellsCache.set(url, api.get(url));
  return cellsCache.get(url);
}

// A pan-and-zoom map in `container`. `onCell(props, lonlat)` is called on a click on a cell.
// `cellsUrl`: where the cells come from (the public page reads them without a login).
export async function createMap(container, app, { onCell, cellsUrl = "/api/geo/cells" } = {}) {
  const geo = await cells(cellsUrl);
  const [minLon, minLat, maxLon, maxLat] = geo.bbox;
  const [ox, oy] = project(minLon, maxLat);
  const [ex, ey] = project(maxLon, minLat);
  const local = (lon, lat) => {
    const [x, y] = project(lon, lat);
    return [x - ox, y - oy];
  };
  const pad = 80;
  const home = [-pad, -pad, ex - ox + 2 * pad, ey - oy + 2 * pad];
  let view = [...home];

  const root = svg("svg", { class: "map-svg", "data-testid": "map-svg", preserveAspectRatio: "xMidYMid meet" });
  const tiles = svg("g", { class: "tiles" });
  const grid = svg("g", { class: "cells" });
  const partsLayer = svg("g", { class: "parts", "data-testid": "parts-layer" });
  const pins = svg("g", { class: "markers" });
  const pick = svg("g", { class: "pick" });
  // parts above the case markers: a part's dot is smaller than a case's marker, so both stay
  // clickable where a case was reported at a part (the case's ring shows around the dot)
  root.append(tiles, grid, pins, partsLayer, pick);

  const tints = new Map();
  for (const f of geo.features) {
    const p = f.properties;
    if (!tints.has(p.subdistrict_code)) tints.set(p.subdistrict_code, SUBDISTRICT_TINTS[tints.size % SUBDISTRICT_TINTS.length]);
    const rings = f.geometry.type === "Polygon" ? [f.geometry.coordinates] : f.geometry.coordinates;
    let d = "";
    for (const poly of rings)
      for (const ring of poly) {
        d += ring.map(([lon, lat], i) => `${i ? "L" : "M"}${local(lon, lat).map((v) => v.toFixed(1)).join(",")}`).join("") + "Z";
      }
    const path = svg("path", { d, fill: tints.get(p.subdistrict_code), class: "cell", "data-cell": p.code });
    const title = svg("title");
    title.textContent = `${p.name} · ${p.community_name || ""} · ${p.subdistrict_name || ""}`;
    path.append(title);
    grid.append(path);
  }

  const frame = el("div", { class: "map-frame" }, root);
  const controls = el(
    "div",
    { class: "map-controls" },
    el("button", { title: "+", onclick: () => zoom(0.6) }, "+"),
    el("button", { title: "−", onclick: () => zoom(1 / 0.6) }, "−"),
    el("button", { title: t("map.reset"), onclick: () => setView(home) }, "⌂"),
  );
  frame.append(controls);
  if (app.config.tile_attribution) frame.append(el("div", { class: "attribution" }, app.config.tile_attribution));
  container.append(frame);

  let markerRadius = 6;
  function setView(v) {
    view = v;
    root.setAttribute("viewBox", view.map((n) => n.toFixed(2)).join(" "));
    const width = root.clientWidth || 800;
    const unitsPerPx = Math.max(view[2] / width, view[3] / (root.clientHeight || 600));
    markerRadius = 7 * unitsPerPx;
    for (const c of pins.querySelectorAll("circle.marker")) c.setAttribute("r", markerRadius.toFixed(2));
    for (const c of pins.querySelectorAll("circle.halo")) c.setAttribute("r", (markerRadius * 1.9).toFixed(2));
    for (const p of grid.querySelectorAll("path")) p.setAttribute("stroke-width", (0.8 * unitsPerPx).toFixed(2));
    for (const c of partsLayer.querySelectorAll("circle.part")) c.setAttribute("r", (markerRadius * 0.6).toFixed(2));
    drawTiles(unitsPerPx);
    loadParts();
  }

  // The parts layer: the parts in the current view from intake's registry (/parts/box), one
  // by one when few enough, else clusters (a click zooms in); a click on a part tells `onPart`.
  const partsState = { on: false, onPart: null, onCount: null, seq: 0, timer: null };
  function viewBox() {
    const [vx, vy, vw, vh] = view;
    const width = root.clientWidth || 800;
    const height = root.clientHeight || 600;
    // preserveAspectRatio "meet": the screen shows more than the viewBox along one axis
    const k = Math.max(vw / width, vh / height);
    const cx = vx + vw / 2;
    const cy = vy + vh / 2;
    const [west, north] = unproject(cx - (width * k) / 2 + ox, cy - (height * k) / 2 + oy);
    const [east, south] = unproject(cx + (width * k) / 2 + ox, cy + (height * k) / 2 + oy);
    return {
      west: Math.max(west, minLon),
      south: Math.max(south, minLat),
      east: Math.min(east, maxLon),
      north: Math.min(north, maxLat),
    };
  }
  function loadParts() {
    if (!partsState.on) return;
    clearTimeout(partsState.timer);
    partsState.timer = setTimeout(async () => {
      const box = viewBox();
      const seq = ++partsState.seq;
      if (box.west >= box.east || box.south >= box.north) {
        drawParts({ total: 0, parts: [], clusters: [] });
        return;
      }
      const q = { ...box, limit: PART_LIMIT, grid: PART_GRID };
      let found;
      try {
        found = await api.svc("intake", "/parts/box", q);
      } catch (err) {
        if (seq === partsState.seq && partsState.onCount) partsState.onCount(null, err);
        return;
      }
      if (seq !== partsState.seq || !partsState.on) return; // a newer view asked since
      drawParts(found);
    }, 200);
  }
  function drawParts(found) {
    partsLayer.replaceChildren();
    partsLayer.dataset.total = String(found.total);
    partsLayer.dataset.mode = found.clusters.length ? "clusters" : "parts";
    for (const p of found.parts) {
      const [x, y] = local(p.lon, p.lat);
      const dot = svg("circle", {
        cx: x,
        cy: y,
        r: markerRadius * 0.6,
        fill: PART_CLASS_COLOURS[p.major_code] || "#334155",
        class: "part",
        "data-testid": `part-${p.code}`,
        "data-class": p.major_code,
      });
      const title = svg("title");
      title.textContent = `${p.code} · ${app.categoryName(p.category_code)}`;
      dot.append(title);
      dot.addEventListener("click", (evt) => {
        evt.stopPropagation();
        for (const c of partsLayer.querySelectorAll(".part.picked")) c.classList.remove("picked");
        dot.classList.add("picked");
        if (partsState.onPart) partsState.onPart(p.code);
      });
      partsLayer.append(dot);
    }
    const biggest = Math.max(1, ...found.clusters.map((c) => c.count));
    for (const c of found.clusters) {
      const [x, y] = local(c.lon, c.lat);
      const major = Object.entries(c.majors).sort((a, b) => b[1] - a[1])[0][0];
      const r = markerRadius * (1.2 + 2.2 * Math.sqrt(c.count / biggest));
      const g = svg("g", { class: "part-cluster", "data-testid": "part-cluster", "data-count": c.count });
      g.append(svg("circle", { cx: x, cy: y, r, fill: PART_CLASS_COLOURS[major] || "#334155" }));
      const label = svg("text", { x, y, "font-size": (r * 0.8).toFixed(2), "text-anchor": "middle", "dominant-baseline": "central" });
      label.textContent = c.count >= 1000 ? `${(c.count / 1000).toFixed(1)}k` : String(c.count);
      const title = svg("title");
      title.textContent = `${t("map.parts")}: ${c.count}`;
      g.append(label, title);
      g.addEventListener("click", (evt) => {
        evt.stopPropagation();
        focus(c.lon, c.lat, Math.max(view[2] / 3, 300));
      });
      partsLayer.append(g);
    }
    if (partsState.onCount) partsState.onCount(found);
  }
  function showParts(on, { onPart, onCount } = {}) {
    partsState.on = on;
    if (onPart) partsState.onPart = onPart;
    if (onCount) partsState.onCount = onCount;
    partsState.seq++;
    partsLayer.replaceChildren();
    delete partsLayer.dataset.total;
    if (on) loadParts();
  }

  let tileTimer = null;
  function drawTiles(unitsPerPx) {
    const template = app.config.tile_url;
    if (!template) return;
    clearTimeout(tileTimer);
    tileTimer = setTimeout(() => {
      const z = Math.max(0, Math.min(19, Math.round(Z - Math.log2(unitsPerPx))));
      const size = TILE * 2 ** (Z - z);
      const [vx, vy, vw, vh] = view;
      const x0 = Math.floor((ox + vx) / size);
      const x1 = Math.floor((ox + vx + vw) / size);
      const y0 = Math.floor((oy + vy) / size);
      const y1 = Math.floor((oy + vy + vh) / size);
      tiles.replaceChildren();
      if ((x1 - x0 + 1) * (y1 - y0 + 1) > 400) return;
      for (let x = x0; x <= x1; x++)
        for (let y = y0; y <= y1; y++) {
          const href = template.replace("{z}", z).replace("{x}", x).replace("{y}", y);
          tiles.append(svg("image", { href, x: x * size - ox, y: y * size - oy, width: size, height: size }));
        }
    }, 120);
  }

  function zoom(factor, cx, cy) {
    const [vx, vy, vw, vh] = view;
    const px = cx ?? vx + vw / 2;
    const py = cy ?? vy + vh / 2;
    const nw = Math.min(Math.max(vw * factor, 60), home[2] * 4);
    const f = nw / vw;
    setView([px - (px - vx) * f, py - (py - vy) * f, vw * f, vh * f]);
  }

  function toLocal(evt) {
    const pt = root.createSVGPoint();
    pt.x = evt.clientX;
    pt.y = evt.clientY;
    const m = root.getScreenCTM();
    return m ? pt.matrixTransform(m.inverse()) : { x: 0, y: 0 };
  }

  root.addEventListener(
    "wheel",
    (evt) => {
      evt.preventDefault();
      const p = toLocal(evt);
      zoom(evt.deltaY > 0 ? 1.2 : 1 / 1.2, p.x, p.y);
    },
    { passive: false },
  );
  let drag = null;
  root.addEventListener("pointerdown", (evt) => {
    if (evt.button !== 0) return;
    drag = { x: evt.clientX, y: evt.clientY, view: [...view], moved: false };
  });
  window.addEventListener("pointermove", (evt) => {
    if (!drag || !root.isConnected) return;
    const dx = evt.clientX - drag.x;
    const dy = evt.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
    if (!drag.moved) return;
    const k = view[2] / (root.clientWidth || 800);
    setView([drag.view[0] - dx * k, drag.view[1] - dy * k, view[2], view[3]]);
  });
  window.addEventListener("pointerup", () => {
    setTimeout(() => (drag = null), 0);
  });
  root.addEventListener("click", (evt) => {
    if (drag && drag.moved) return;
    const target = evt.target;
    if (target.classList && target.classList.contains("cell") && onCell) {
      const p = toLocal(evt);
      const [lon, lat] = unproject(p.x + ox, p.y + oy);
      const feature = geo.features.find((f) => f.properties.code === target.dataset.cell);
      for (const c of grid.querySelectorAll(".cell.picked")) c.classList.remove("picked");
      target.classList.add("picked");
      pick.replaceChildren(svg("circle", { cx: p.x, cy: p.y, r: markerRadius, class: "pick-dot" }));
      onCell(feature ? feature.properties : null, [lon, lat]);
    }
  });

  function setMarkers(cases, onClick) {
    pins.replaceChildren();
    for (const c of cases) {
      if (!c.location || c.location.lat === null || c.location.lat === undefined) continue;
      const [x, y] = local(c.location.lon, c.location.lat);
      const g = svg("g", { class: "pin", "data-testid": `marker-${c.case_id}`, "data-status": c.status, "data-overdue": c.overdue ? "true" : "false" });
      if (c.overdue) g.append(svg("circle", { cx: x, cy: y, r: markerRadius * 1.9, class: "halo" }));
      g.append(svg("circle", { cx: x, cy: y, r: markerRadius, fill: STATUS_COLOURS[c.status] || "#334155", class: "marker" }));
      const title = svg("title");
      title.textContent = `${c.case_id} · ${t(`status.${c.status}`)} · ${app.categoryName(c.category_code)}`;
      g.append(title);
      g.addEventListener("click", (evt) => {
        evt.stopPropagation();
        onClick(c);
      });
      pins.append(g);
    }
  }

  let focused = false; // a focus asked before the first frame wins over the home view
  function focus(lon, lat, width = 1600) {
    focused = true;
    const [x, y] = local(lon, lat);
    const aspect = view[3] / view[2];
    setView([x - width / 2, y - (width * aspect) / 2, width, width * aspect]);
  }

  requestAnimationFrame(() => {
    if (focused) setView(view);
    else setView(home);
  });
  return { setMarkers, focus, setView, home, showParts };
}

const OPEN_STATUSES = [
  "pending_confirmation",
  "pending_acceptance",
  "accepted",
  "manual_dispatch",
  "dispatched",
  "signed",
  "in_progress",
  "handled",
  "verifying",
  "reworking",
];

// The Map tab: filters, the map with the cases, a list beside it; live refresh.
export async function renderMap(screen, app) {
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const focusCase = params.get("case");
  const focusPart = params.get("part");
  const state = {
    category: params.get("category") || "",
    dept: params.get("dept") || "",
    status: params.get("status") || "",
    overdue: params.get("overdue") || "",
  };
  const side = el("aside", { class: "panel side" });
  const stage = el("section", { class: "map-stage" });
  screen.append(el("div", { class: "map-layout" }, side, stage));
  const map = await createMap(stage, app);

  const categories = [["", t("filter.all")], ...app.city.categories.map((c) => [c.code, `${c.code} ${app.categoryName(c.code)}`])];
  const depts = [["", t("filter.all")], ...app.city.departments.map((d) => [d.code, named(d)])];
  const statuses = [["", t("filter.open")], ...[...OPEN_STATUSES, "closed", "rejected"].map((s) => [s, t(`status.${s}`)])];
  const catSel = select({ "data-testid": "filter-category" }, categories, state.category);
  const deptSel = select({ "data-testid": "filter-dept" }, depts, state.dept);
  const statSel = select({ "data-testid": "filter-status" }, statuses, state.status);
  const overdueBox = el("input", { type: "checkbox", "data-testid": "filter-overdue", checked: state.overdue === "true" ? true : undefined });
  const count = el("div", { class: "count", "data-testid": "map-count" });
  // the parts layer (部件): on or off, remembered across visits
  const partsOn = localStorage.getItem("gridloop.partsLayer") === "on";
  const partsBox = el("input", { type: "checkbox", "data-testid": "layer-parts", checked: partsOn ? true : undefined });
  const partsCount = el("span", { class: "muted", "data-testid": "parts-count" });
  const partPanel = el("div", { class: "part-panel", "data-testid": "part-panel", hidden: true });
  const partLegend = el(
    "div",
    { class: "legend", "data-testid": "parts-legend", hidden: partsOn ? undefined : true },
    el("div", { class: "legend-title" }, t("map.parts")),
    (app.city.majors || [])
      .filter((m) => m.code.startsWith("P"))
      .map((m) => el("span", { class: "legend-item" }, el("i", { style: `background:${PART_CLASS_COLOURS[m.code] || "#334155"}` }), named(m))),
  );
  async function showPart(code) {
    partPanel.hidden = false;
    clear(partPanel, el("div", { class: "muted" }, "…"));
    let found;
    try {
      found = await api.svc("intake", `/parts/${encodeURIComponent(code)}/cases`, { limit: 20 });
    } catch (err) {
      clear(partPanel, el("div", { class: "error" }, String(err.message || err)));
      return;
    }
    const part = found.part;
    const row = (label, value, testid) => el("div", { class: "kv" }, el("span", { class: "muted" }, label), el("b", { "data-testid": testid }, value));
    clear(
      partPanel,
      el("h4", {}, t("part.title")),
      row(t("part.code"), part.code, "part-code"),
      row(t("part.type"), `${part.category_code} ${app.categoryName(part.category_code)}`, "part-type"),
      row(t("part.owner"), part.owner_dept ? app.deptName(part.owner_dept) : part.owner_name, "part-owner"),
      row(t("part.state"), t(`part.state.${found.state}`), "part-state"),
      row(t("map.cell"), part.cell_code, "part-cell"),
      el("div", { class: "legend-title" }, `${t("part.history")} (${found.total})`),
      el(
        "div",
        { class: "case-list", "data-testid": "part-history" },
        found.cases.length
          ? found.cases.map((c) =>
              el(
                "button",
                { class: "case-row", "data-testid": `part-case-${c.case_id}`, onclick: () => app.go(`#/case/${encodeURIComponent(c.case_id)}`) },
                el("div", { class: "row-top" }, el("b", {}, c.case_id), statusBadge(c.status, c.overdue)),
                el("div", { class: "row-sub muted" }, when(c.reported_at)),
              ),
            )
          : empty(t("part.noCases")),
      ),
    );
  }
  const onCount = (found, err) => {
    if (err || !found) partsCount.textContent = t("part.unavailable");
    else partsCount.textContent = `${found.total}${found.clusters.length ? ` · ${t("part.zoomIn")}` : ""}`;
  };
  const layerOptions = { onPart: showPart, onCount };
  partsBox.addEventListener("change", () => {
    localStorage.setItem("gridloop.partsLayer", partsBox.checked ? "on" : "off");
    partLegend.hidden = !partsBox.checked;
    if (!partsBox.checked) {
      partsCount.textContent = "";
      partPanel.hidden = true;
    }
    map.showParts(partsBox.checked, layerOptions);
  });
  const list = el("div", { class: "case-list", "data-testid": "map-list" });
  const legend = el(
    "div",
    { class: "legend" },
    el("div", { class: "legend-title" }, t("map.legend")),
    [...OPEN_STATUSES, "closed"].map((s) =>
      el("span", { class: "legend-item" }, el("i", { style: `background:${STATUS_COLOURS[s]}` }), t(`status.${s}`)),
    ),
    el("span", { class: "legend-item" }, el("i", { class: "ring" }), t("status.overdue")),
  );
  const apply = () => {
    state.category = catSel.value;
    state.dept = deptSel.value;
    state.status = statSel.value;
    state.overdue = overdueBox.checked ? "true" : "";
    load();
  };
  for (const s of [catSel, deptSel, statSel, overdueBox]) s.addEventListener("change", apply);
  side.append(
    el("h3", {}, t("map.cases")),
    el(
      "div",
      { class: "filters" },
      el("label", { class: "field" }, el("span", {}, t("filter.category")), catSel),
      el("label", { class: "field" }, el("span", {}, t("filter.dept")), deptSel),
      el("label", { class: "field" }, el("span", {}, t("filter.status")), statSel),
      el("label", { class: "check" }, overdueBox, t("status.overdue")),
      el("label", { class: "check" }, partsBox, t("map.partsLayer"), " ", partsCount),
    ),
    partPanel,
    count,
    list,
    legend,
    partLegend,
  );
  if (partsOn) map.showParts(true, layerOptions);
  if (focusPart) {
    try {
      const part = await api.svc("intake", `/parts/${encodeURIComponent(focusPart)}`);
      map.focus(part.lon, part.lat, 400);
    } catch {
      // an unknown part: the map stays where it is
    }
  }

  async function load() {
    const q = { limit: 500, category: state.category, dept: state.dept };
    if (state.status) q.status = state.status;
    else q.open = true;
    if (state.overdue) q.overdue = true;
    const found = await api.svc("intake", "/cases", q);
    count.textContent = `${t("map.cases")}: ${found.total}`;
    const open = (c) => app.go(`#/case/${encodeURIComponent(c.case_id)}`);
    map.setMarkers(found.cases, open);
    clear(
      list,
      found.cases.length
        ? found.cases.slice(0, 200).map((c) =>
            el(
              "button",
              { class: "case-row", "data-testid": `map-case-${c.case_id}`, onclick: () => open(c) },
              el("div", { class: "row-top" }, el("b", {}, c.case_id), statusBadge(c.status, c.overdue)),
              el("div", { class: "row-sub" }, `${app.categoryName(c.category_code)} · ${c.dept ? app.deptName(c.dept) : app.areaName(c.community_code)}`),
              el("div", { class: "row-sub muted" }, when(c.reported_at)),
            ),
          )
        : empty(t("map.none")),
    );
    if (focusCase) {
      const c = found.cases.find((x) => x.case_id === focusCase);
      if (c && c.location) map.focus(c.location.lon, c.location.lat);
    }
  }
  app.onLive(() => load());
  await load();
}
