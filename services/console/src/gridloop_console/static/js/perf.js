// Performance (考核评价): rankings of a rule set per period with a bar chart and a trend, the
// measures of departments, areas and people, drill-down to the cases, CSV export.
import { api, download, query, session } from "./api.js";
import { barChart, lineChart } from "./charts.js";
import { channel, label, lang, named, t, tf } from "./i18n.js";
import { clear, el, empty, field, select, today } from "./ui.js";

const PERIODS = ["day", "week", "month", "quarter", "year"];
const LEVELS = ["subdistrict", "community", "cell", "district"];

function shift(date, period, steps) {
  const d = new Date(`${date}T12:00:00Z`);
  if (period === "day") d.setUTCDate(d.getUTCDate() - steps);
  else if (period === "week") d.setUTCDate(d.getUTCDate() - 7 * steps);
  else if (period === "month") d.setUTCMonth(d.getUTCMonth() - steps);
  else if (period === "quarter") d.setUTCMonth(d.getUTCMonth() - 3 * steps);
  else d.setUTCFullYear(d.getUTCFullYear() - steps);
  return d.toISOString().slice(0, 10);
}

function shortLabel(date, period) {
  if (period === "year") return date.slice(0, 4);
  if (period === "month" || period === "quarter") return date.slice(0, 7);
  return date.slice(5);
}

function percent(value) {
  const share = value * 100;
  return `${Number.isInteger(share) ? share : share.toFixed(1)}%`;
}

function fmt(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "number") return Number.isInteger(value) ? String(value) : value.toFixed(3);
  return String(value);
}

export async function renderPerformance(screen, app) {
  const [ruleSets, catalogue] = await Promise.all([api.svc("scoring", "/rule-sets"), api.svc("scoring", "/catalogue")]);
  const sets = ruleSets.rule_sets || [];
  const labels = {};
  const rates = new Set();
  for (const kind of Object.keys(catalogue)) {
    // the catalogue's label in the reader's language (Chinese, or label_en)
    for (const m of [...catalogue[kind].counted, ...catalogue[kind].rates]) labels[m.name] = (lang === "en" && m.label_en) || m.label;
    for (const m of catalogue[kind].rates) rates.add(m.name);
  }
  // a subject by the city's name in the reader's language (scoring names it in Chinese)
  const subjectName = (kind, r) => {
    const given = r.subject_name || r.subject_code;
    if (lang !== "en") return given;
    if (kind === "department") return named(app.departments.get(r.subject_code)) || given;
    if (kind === "category") return named(app.categories.get(r.subject_code)) || given;
    if (kind === "channel") return channel(r.subject_code);
    return given;
  };
  const rankedKind = () => (sets.find((s) => s.code === state.rule_set) || {}).subject;
  // a rate (0–1 from scoring) as a percentage, anything else as it is
  const show = (measure, value) => (rates.has(measure) && typeof value === "number" ? percent(value) : fmt(value));
  const state = { rule_set: (sets.find((s) => s.subject === "department") || sets[0] || {}).code, period: "day", date: today(), level: "", kind: "department" };

  const setSel = select({ "data-testid": "perf-rule-set" }, sets.map((s) => [s.code, named(s)]), state.rule_set);
  const periodSel = select({ "data-testid": "perf-period" }, PERIODS.map((p) => [p, t(`period.${p}`)]), state.period);
  const dateIn = el("input", { type: "date", value: state.date, "data-testid": "perf-date" });
  const levelSel = select({ "data-testid": "perf-level" }, [["", "—"], ...LEVELS.map((l) => [l, t(`level.${l}`)])], state.level);
  const kindSel = select({ "data-testid": "perf-kind" }, ["department", "area", "person"].map((k) => [k, t(`kind.${k}`)]), state.kind);
  const exportBtn = el("button", { class: "secondary", "data-testid": "perf-export" }, t("act.export"));
  const exportMeasures = el("button", { class: "secondary", "data-testid": "perf-export-measures" }, t("act.export"));

  const rankingBox = el("div", { class: "ranking", "data-testid": "perf-ranking" });
  const chartBox = el("div", { class: "chart-box" });
  const trendBox = el("div", { class: "chart-box", "data-testid": "perf-trend" });
  const measuresBox = el("div", { class: "measures", "data-testid": "perf-measures" });
  const drillBox = el("div", { class: "drill", "data-testid": "perf-drilldown" });

  screen.append(
    el(
      "div",
      { class: "toolbar card" },
      field(t("perf.rule_set"), setSel),
      field(t("perf.period"), periodSel),
      field(t("perf.date"), dateIn),
      field(t("perf.level"), levelSel),
      exportBtn,
    ),
    el(
      "div",
      { class: "perf-grid" },
      el("section", { class: "card" }, el("h3", {}, t("perf.ranking")), chartBox, rankingBox),
      el("section", { class: "card" }, el("h3", {}, t("perf.trend")), trendBox),
    ),
    el(
      "section",
      { class: "card" },
      el("div", { class: "card-head" }, el("h3", {}, t("perf.measures")), field(t("perf.subject_kind"), kindSel), exportMeasures),
      measuresBox,
      drillBox,
    ),
  );

  // 通报: the bulletins scoring published at the ends of months and quarters (evaluators, admins)
  const bulletinsBox = el("div", { "data-testid": "perf-bulletins" });
  if (session.has("evaluator")) {
    screen.append(el("section", { class: "card" }, el("h3", {}, t("perf.bulletins")), bulletinsBox));
  }

  async function bulletins() {
    if (!session.has("evaluator")) return;
    const data = await api.svc("scoring", "/bulletins");
    const rows = data.rows || [];
    clear(
      bulletinsBox,
      rows.length
        ? el(
            "table",
            { class: "grid-table" },
            el("thead", {}, el("tr", {}, [t("perf.bulletin"), t("perf.period"), t("perf.published_at"), ""].map((h) => el("th", {}, h)))),
            el(
              "tbody",
              {},
              rows.map((r) => {
                const start = r.links.data_json.split("/").pop();
                const page = el("a", { href: `/api/scoring${r.links.html}`, target: "_blank", rel: "noopener", "data-testid": `bulletin-html-${r.period_kind}-${start}` }, "HTML");
                page.addEventListener("click", (ev) => {
                  // the page needs the session's token: fetched, then shown from a blob
                  ev.preventDefault();
                  api.raw(`/api/scoring${r.links.html}`).then(async (res) => window.open(URL.createObjectURL(await res.blob()), "_blank"));
                });
                const csv = el("button", { class: "secondary", "data-testid": `bulletin-csv-${r.period_kind}-${start}` }, "CSV");
                csv.addEventListener("click", () => download(`/api/scoring${r.links.csv}`, `bulletin-${r.period_kind}-${start}.csv`));
                return el(
                  "tr",
                  { "data-testid": `bulletin-${r.period_kind}-${start}` },
                  el("td", {}, r.title),
                  el("td", {}, t(`period.${r.period_kind}`)),
                  el("td", {}, String(r.published_at).slice(0, 16).replace("T", " ")),
                  el("td", {}, page, " ", csv),
                );
              }),
            ),
          )
        : empty(t("perf.no_bulletins")),
    );
  }

  const params = () => ({ period: state.period, date: state.date, level: state.level || undefined });

  async function ranking() {
    const data = await api.svc("scoring", "/rankings", { rule_set: state.rule_set, ...params() });
    const kind = rankedKind();
    const rows = (data.rows || []).map((r) => ({ ...r, name: subjectName(kind, r) }));
    clear(chartBox, rows.length ? barChart(rows.slice(0, 12).map((r) => ({ label: r.name, value: r.score, key: r.subject_code })), { testid: "perf-bars" }) : null);
    clear(
      rankingBox,
      rows.length
        ? el(
            "table",
            { class: "grid-table" },
            el("thead", {}, el("tr", {}, [t("perf.rank"), t("perf.subject"), t("perf.score"), t("perf.grade"), ...(rows[0].terms || []).map((term) => tf("perf.term_points", { label: labels[term.measure] || term.measure }))].map((h) => el("th", {}, h)))),
            el(
              "tbody",
              {},
              rows.map((r) =>
                el(
                  "tr",
                  { "data-testid": `rank-row-${r.subject_code}` },
                  el("td", { class: "num" }, String(r.rank)),
                  el("td", { class: "name" }, r.name),
                  el("td", { class: "num strong", "data-testid": `score-${r.subject_code}` }, fmt(r.score)),
                  el("td", {}, el("span", { class: `grade grade-${r.grade}` }, r.grade ? label("grade", r.grade) : "—")),
                  (r.terms || []).map((term) => el("td", { class: "num", title: `${labels[term.measure] || term.measure}: ${show(term.measure, term.value)}` }, fmt(term.points))),
                ),
              ),
            ),
          )
        : empty(t("perf.none")),
    );
    return rows;
  }

  async function trend(rows) {
    const top = rows.slice(0, 5).map((r) => [r.subject_code, r.name]);
    if (!top.length) {
      clear(trendBox, empty(t("perf.none")));
      return;
    }
    const dates = [6, 5, 4, 3, 2, 1, 0].map((i) => shift(state.date, state.period, i));
    const answers = await Promise.all(dates.map((d) => api.svc("scoring", "/rankings", { rule_set: state.rule_set, period: state.period, date: d, level: state.level || undefined })));
    const series = top.map(([code, name]) => ({
      name,
      values: answers.map((a) => {
        const found = (a.rows || []).find((r) => r.subject_code === code);
        return found ? found.score : null;
      }),
    }));
    clear(trendBox, lineChart(series, dates.map((d) => shortLabel(d, state.period)), { testid: "perf-lines" }));
  }

  async function measures() {
    const data = await api.svc("scoring", "/measures", { subject_kind: state.kind, ...params() });
    const rows = (data.rows || []).map((r) => ({ ...r, name: subjectName(state.kind, r) }));
    const names = [...new Set(rows.flatMap((r) => Object.keys(r.measures)))];
    clear(drillBox);
    clear(
      measuresBox,
      rows.length
        ? el(
            "div",
            { class: "table-scroll" },
            el(
              "table",
              { class: "grid-table compact" },
              el("thead", {}, el("tr", {}, [t("perf.subject"), ...names.map((n) => labels[n] || n)].map((h) => el("th", {}, h)))),
              el(
                "tbody",
                {},
                rows.map((r) =>
                  el(
                    "tr",
                    { "data-testid": `measure-row-${r.subject_code}` },
                    el("td", { class: "name" }, r.name),
                    names.map((n) =>
                      el(
                        "td",
                        {
                          class: "num link",
                          "data-testid": `measure-${r.subject_code}-${n}`,
                          onclick: () => drill(r.subject_code, r.name, n),
                        },
                        show(n, r.measures[n]),
                      ),
                    ),
                  ),
                ),
              ),
            ),
          )
        : empty(t("perf.none")),
    );
  }

  async function drill(subject, name, measure) {
    const data = await api.svc("scoring", "/drilldown", { subject_kind: state.kind, subject, measure, ...params() });
    const parts = data.parts || [];
    clear(
      drillBox,
      el("h4", {}, `${t("perf.drilldown")}: ${name} · ${labels[measure] || measure}`),
      parts.map((part) =>
        el(
          "div",
          { class: "drill-part" },
          el("div", { class: "muted" }, `${labels[part.measure] || part.measure} (${part.items.length})`),
          el(
            "div",
            { class: "drill-items" },
            part.items.map((i) => el("a", { href: `#/case/${encodeURIComponent(i.case_id)}`, class: "chip", "data-testid": `drill-${i.case_id}` }, i.case_id)),
          ),
        ),
      ),
    );
  }

  async function refresh() {
    const rows = await ranking();
    await Promise.all([trend(rows), measures(), bulletins()]);
  }

  const changed = () => {
    state.rule_set = setSel.value;
    state.period = periodSel.value;
    state.date = dateIn.value || today();
    state.level = levelSel.value;
    state.kind = kindSel.value;
    refresh();
  };
  for (const s of [setSel, periodSel, dateIn, levelSel, kindSel]) s.addEventListener("change", changed);
  exportBtn.addEventListener("click", () => download(`/api/scoring/rankings.csv${query({ rule_set: state.rule_set, ...params() })}`, "ranking.csv"));
  exportMeasures.addEventListener("click", () => download(`/api/scoring/measures.csv${query({ subject_kind: state.kind, ...params() })}`, "measures.csv"));
  app.onLive(() => refresh());
  await refresh();
}
