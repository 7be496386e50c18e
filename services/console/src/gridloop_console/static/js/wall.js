// The command centre's wall screen (大屏): the day's flow by channel, open cases over the
// cells, the overdue list, the month's department ranking and the loop's median times, kept
// live by the bus (the console's event stream) — nothing to click. It reads the services
// through the console with the signed-in user's token (the console's session, or
// `#token=<jwt>` for a kiosk), in the console's language (or `#lang=en` / `#lang=zh`).
import { api, follow, session } from "./api.js";
import { channel, label, lang, named, setLang, t, tf } from "./i18n.js";

const TZ = "Asia/Shanghai";
const CHANNELS = ["patrol", "hotline", "video", "web"];
const FLOW = ["reported", "accepted", "dispatched", "closed", "overdue"];
const STEPS = ["accept", "dispatch", "sign", "handle", "verify"];
const HEAT = ["#13203f", "#1d4ed8", "#0ea5e9", "#facc15", "#f97316", "#ef4444"];
const SVG = "http://www.w3.org/2000/svg";

const $ = (id) => document.getElementById(id);
const names = { departments: new Map(), categories: new Map() };
let geo = null;

// A ranked department by the city's name in the reader's language (scoring gives the Chinese).
function deptName(row) {
  const given = row.subject_name || row.subject_code;
  return lang === "en" ? named(names.departments.get(row.subject_code)) || given : given;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null) continue;
    if (k === "class") node.className = v;
    else node.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c !== undefined && c !== null) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

// Beijing's calendar day and wall-clock time.
function today() {
  return new Date().toLocaleDateString("en-CA", { timeZone: TZ });
}

function tick() {
  $("wall-clock").textContent = new Date().toLocaleTimeString("zh-CN", { timeZone: TZ, hour12: false });
  $("wall-day").textContent = today();
}

function hoursText(h) {
  if (h === null || h === undefined) return "—";
  if (h * 60 < 1) return "<1";
  if (h < 1) return `${Math.round(h * 60)}`;
  return h.toFixed(1);
}

// How long past its deadline: minutes under an hour, else hours.
function lateText(hours) {
  if (hours < 1) return tf("wall.late_min", { m: Math.max(1, Math.round(hours * 60)) });
  return tf("wall.late", { h: hours.toFixed(1) });
}

async function get(service, path) {
  try {
    return await api.svc(service, path);
  } catch {
    return null; // a panel the user's role does not read, or a service away: shown as "—"
  }
}

// -- panels -----------------------------------------------------------------------------
async function counts() {
  const body = await get("scoring", "/measures?subject_kind=channel&period=day");
  const rows = new Map((body ? body.rows : []).map((r) => [r.subject_code, r.measures]));
  const total = Object.fromEntries(FLOW.map((m) => [m, 0]));
  const lines = CHANNELS.map((code) => {
    const m = rows.get(code) || {};
    return el(
      "tr",
      {},
      el("td", {}, channel(code)),
      FLOW.map((f) => {
        const n = Number(m[f] || 0);
        total[f] += n;
        return el(
          "td",
          { "data-testid": `wall-count-${code}-${f}`, class: f === "overdue" && n ? "late" : null },
          n,
        );
      }),
    );
  });
  lines.push(
    el(
      "tr",
      { class: "total" },
      el("td", {}, t("wall.total")),
      FLOW.map((f) => el("td", { "data-testid": `wall-total-${f}` }, total[f])),
    ),
  );
  $("wall-counts-body").replaceChildren(...lines);
}

async function heat() {
  if (!geo) geo = await api.get("/api/geo/cells").catch(() => null);
  const open = await get("intake", "/stats/open-by-cell");
  const box = $("wall-heat");
  if (!geo || !open) {
    box.replaceChildren(el("div", { class: "empty" }, "—"));
    return;
  }
  $("wall-open").textContent = tf("wall.open", { open: open.open, overdue: open.overdue });
  let [minx, miny, maxx, maxy] = [Infinity, Infinity, -Infinity, -Infinity];
  for (const f of geo.features) {
    for (const [x, y] of f.geometry.coordinates[0]) {
      minx = Math.min(minx, x);
      maxx = Math.max(maxx, x);
      miny = Math.min(miny, y);
      maxy = Math.max(maxy, y);
    }
  }
  // equirectangular at the district's latitude: fine at the scale of a district
  const k = Math.cos(((miny + maxy) / 2) * (Math.PI / 180));
  const w = (maxx - minx) * k;
  const h = maxy - miny;
  const root = svg("svg", { viewBox: `0 0 ${w} ${h}`, preserveAspectRatio: "xMidYMid meet" });
  const most = Math.max(1, ...Object.values(open.cells).map((c) => c.open));
  for (const f of geo.features) {
    const code = f.properties.code;
    const c = open.cells[code] || { open: 0, overdue: 0 };
    // 1 case: the first colour, the busiest cell: the last, the others in between
    const share = most > 1 ? (c.open - 1) / (most - 1) : 0;
    const level = c.open ? 1 + Math.round(share * (HEAT.length - 2)) : 0;
    const d = f.geometry.coordinates[0]
      .map(([x, y], i) => `${i ? "L" : "M"}${((x - minx) * k).toFixed(6)},${(maxy - y).toFixed(6)}`)
      .join("") + "Z";
    root.append(
      svg("path", {
        d,
        fill: HEAT[level],
        stroke: c.overdue ? "#ef4444" : "#020617",
        "stroke-width": c.overdue ? w / 250 : w / 1200,
        "data-cell": code,
        "data-open": c.open,
      }),
    );
  }
  box.replaceChildren(root);
  const legend = [
    el("span", {}, el("i", { style: `background:${HEAT[0]}` }), t("wall.none")),
    el("span", {}, el("i", { style: `background:${HEAT[1]}` }), t("wall.one_case")),
  ];
  if (most > 1) {
    legend.push(el("span", {}, el("i", { style: `background:${HEAT[HEAT.length - 1]}` }), tf("wall.cases", { n: most })));
  }
  legend.push(el("span", {}, el("i", { style: "background:transparent;border:3px solid #ef4444" }), t("wall.with_overdue")));
  $("wall-legend").replaceChildren(...legend);
}

async function overdue() {
  const rows = await get("dispatch", "/board?view=late&limit=12");
  const list = $("wall-overdue");
  if (!rows || !rows.length) {
    $("wall-overdue-n").textContent = rows ? tf("wall.cases", { n: 0 }) : "";
    list.replaceChildren(el("li", { class: "empty" }, rows ? t("wall.no_overdue") : "—"));
    return;
  }
  $("wall-overdue-n").textContent = rows.length === 1 ? t("wall.one_case") : tf("wall.cases", { n: rows.length });
  const now = Date.now();
  list.replaceChildren(
    ...rows.map((r) => {
      const late = Math.max(0, (now - new Date(r.deadline).getTime()) / 3600000);
      const category = named(names.categories.get(r.category_code)) || r.category_code || "";
      return el(
        "li",
        { "data-case": r.case_id },
        el("span", { class: "who" }, named(names.departments.get(r.dept)) || r.dept),
        el("span", { class: "what" }, `${category} · ${r.case_id}`),
        el(
          "span",
          { class: "late" },
          r.escalation_level ? `${tf("wall.escalated", { n: r.escalation_level })} ` : "",
          lateText(late),
        ),
      );
    }),
  );
}

async function ranking() {
  const body = await get("scoring", "/rankings?rule_set=department&period=month");
  const list = $("wall-ranking");
  const rows = body ? body.rows.slice(0, 8) : [];
  if (!rows.length) {
    list.replaceChildren(el("li", { class: "empty" }, body ? t("wall.no_ranking") : "—"));
    return;
  }
  list.replaceChildren(
    ...rows.map((r) =>
      el(
        "li",
        { "data-dept": r.subject_code },
        el("span", { class: "n" }, r.rank),
        el("span", { class: "name" }, deptName(r)),
        el("span", { class: "score" }, r.score.toFixed(1)),
        el("span", { class: "grade" }, label("grade", r.grade)),
      ),
    ),
  );
}

async function steps() {
  const body = await get("scoring", "/steps?period=day");
  const by = new Map((body ? body.steps : []).map((s) => [s.step, s]));
  $("wall-steps").replaceChildren(
    ...STEPS.map((code) => {
      const s = by.get(code) || {};
      const m = s.median;
      const minutes = m !== null && m !== undefined && m < 1;
      return el(
        "div",
        { class: "step", "data-testid": `wall-step-${code}` },
        el("div", { class: "label" }, tf(s.count === 1 ? "wall.step_count_one" : "wall.step_count", { label: t(`wall.step.${code}`), n: s.count || 0 })),
        el("div", { class: "value" }, hoursText(m)),
        el("div", { class: "unit" }, t(minutes ? "wall.minutes" : "wall.hours")),
      );
    }),
  );
}

// -- refreshing -------------------------------------------------------------------------
let pending = null;
let running = false;
let again = false;

async function refresh() {
  if (running) {
    again = true;
    return;
  }
  running = true;
  try {
    await Promise.all([counts(), heat(), overdue(), ranking(), steps()]);
    document.body.dataset.refreshed = String(Date.now());
  } finally {
    running = false;
    if (again) {
      again = false;
      soon();
    }
  }
}

// Events come in bursts (one report is several events): one refresh a second at most.
function soon() {
  clearTimeout(pending);
  pending = setTimeout(refresh, 800);
}

async function signIn(hash) {
  const token = hash.get("token");
  if (token) {
    session.token = token;
    const me = await api.get("/api/me");
    session.save(session.token, me);
    history.replaceState(null, "", location.pathname);
  }
  return session.load();
}

// The page's own words in the reader's language: each element marked `data-i18n`.
function translate() {
  document.documentElement.lang = lang === "en" ? "en" : "zh-CN";
  document.title = t("wall.page");
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const node of document.querySelectorAll("[data-i18n-label]")) {
    node.setAttribute("aria-label", t(node.dataset.i18nLabel));
  }
}

async function start() {
  const hash = new URLSearchParams(location.hash.slice(1));
  if (hash.has("lang")) setLang(hash.get("lang"));
  translate();
  tick();
  setInterval(tick, 1000);
  if (!(await signIn(hash).catch(() => false))) {
    $("wall-signin").classList.remove("hidden");
    return;
  }
  const [config, city] = await Promise.all([api.get("/api/config"), api.get("/api/city")]);
  $("wall-district").textContent = named(config.district);
  names.departments = new Map(city.departments.map((d) => [d.code, d]));
  names.categories = new Map(city.categories.map((c) => [c.code, c]));
  await refresh();
  follow(soon, (on) => {
    const live = $("wall-live");
    live.className = `wall-live ${on ? "on" : "off"}`;
    live.textContent = t(on ? "wall.live" : "wall.offline");
    if (on) soon(); // caught up after a reconnect
  });
  setInterval(refresh, 60000); // the day rolls over, overdue hours grow
}

start();
