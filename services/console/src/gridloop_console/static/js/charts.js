// Small SVG charts drawn by hand: horizontal bars for rankings, lines for trends.
const SVG = "http://www.w3.org/2000/svg";
export const PALETTE = ["#2563eb", "#16a34a", "#f59e0b", "#e11d48", "#7c3aed", "#0891b2", "#64748b"];

function node(tag, attrs = {}, text) {
  const n = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) n.setAttribute(k, String(v));
  if (text !== undefined) n.textContent = text;
  return n;
}

// items: [{label, value, key}], values 0..max
export function barChart(items, { max = 100, width = 560, onClick, testid } = {}) {
  const row = 26;
  const labelW = 170;
  const height = Math.max(1, items.length) * row + 24;
  const svg = node("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart bar-chart", "data-testid": testid, role: "img" });
  const plot = width - labelW - 50;
  for (const tick of [0, 25, 50, 75, 100]) {
    const x = labelW + (plot * tick) / 100;
    svg.append(node("line", { x1: x, x2: x, y1: 0, y2: height - 18, class: "grid-line" }));
    svg.append(node("text", { x, y: height - 4, class: "axis", "text-anchor": "middle" }, String(Math.round((max * tick) / 100))));
  }
  items.forEach((item, i) => {
    const y = i * row + 4;
    const w = Math.max(0, Math.min(1, (item.value ?? 0) / max)) * plot;
    const g = node("g", { class: "bar", "data-key": item.key });
    g.append(node("text", { x: labelW - 8, y: y + 14, class: "label", "text-anchor": "end" }, item.label.length > 14 ? item.label.slice(0, 13) + "…" : item.label));
    g.append(node("rect", { x: labelW, y, width: w, height: row - 8, rx: 3, fill: PALETTE[i === 0 ? 1 : 0] }));
    g.append(node("text", { x: labelW + w + 6, y: y + 14, class: "value" }, item.value === null || item.value === undefined ? "—" : Number(item.value).toFixed(1)));
    if (onClick) {
      g.style.cursor = "pointer";
      g.addEventListener("click", () => onClick(item));
    }
    svg.append(g);
  });
  return svg;
}

// series: [{name, values: [number|null]}], labels: x labels
export function lineChart(series, labels, { width = 560, height = 220, max = 100, testid } = {}) {
  const left = 36;
  const bottom = 26;
  const right = 24;
  const top = 10;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const svg = node("svg", { viewBox: `0 0 ${width} ${height + 8 + Math.ceil(series.length / 4) * 14}`, class: "chart line-chart", "data-testid": testid, role: "img" });
  const x = (i) => left + (labels.length <= 1 ? plotW / 2 : (plotW * i) / (labels.length - 1));
  const y = (v) => top + plotH - (Math.max(0, Math.min(max, v)) / max) * plotH;
  for (const tick of [0, 25, 50, 75, 100]) {
    const v = (max * tick) / 100;
    svg.append(node("line", { x1: left, x2: width - right, y1: y(v), y2: y(v), class: "grid-line" }));
    svg.append(node("text", { x: left - 6, y: y(v) + 4, class: "axis", "text-anchor": "end" }, String(Math.round(v))));
  }
  labels.forEach((label, i) => svg.append(node("text", { x: x(i), y: height - 6, class: "axis", "text-anchor": "middle" }, label)));
  series.forEach((s, k) => {
    const colour = PALETTE[k % PALETTE.length];
    let d = "";
    s.values.forEach((v, i) => {
      if (v === null || v === undefined) return;
      d += `${d ? "L" : "M"}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
    });
    if (d) svg.append(node("path", { d, fill: "none", stroke: colour, "stroke-width": 2.2 }));
    s.values.forEach((v, i) => {
      if (v === null || v === undefined) return;
      const dot = node("circle", { cx: x(i), cy: y(v), r: 3.5, fill: colour });
      dot.append(node("title", {}, `${s.name} ${labels[i]}: ${Number(v).toFixed(1)}`));
      svg.append(dot);
    });
    const lx = left + (k % 4) * 135;
    const ly = height + 10 + Math.floor(k / 4) * 14;
    svg.append(node("rect", { x: lx, y: ly - 8, width: 10, height: 10, fill: colour, rx: 2 }));
    svg.append(node("text", { x: lx + 14, y: ly + 1, class: "legend-text" }, s.name.length > 14 ? s.name.slice(0, 13) + "…" : s.name));
  });
  return svg;
}
