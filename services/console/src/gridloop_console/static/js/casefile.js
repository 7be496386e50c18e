// The case file (案卷): the case, its whole timeline with who and when, deadlines, evidence,
// the masked reporter, ratings; the dispatch tasks for the command centre.
import { api, session } from "./api.js";
import { channel, label, t } from "./i18n.js";
import { beforeAfter, gallery, links } from "./photos.js";
import { act, clear, duration, el, empty, field, select, statusBadge, when } from "./ui.js";

const DISPATCH_READERS = ["dispatcher", "shift-leader", "evaluator"];

function eventName(type) {
  // gridloop.case.<token>.v1 → <token>
  const parts = String(type || "").split(".");
  return parts.length >= 4 ? parts[parts.length - 2] : parts.pop();
}

// The supervisor who reported a case on patrol: their name, and their id beside it.
function reporterUser(c) {
  if (!c.reporter_user_id) return "—";
  return c.reporter_user_name ? `${c.reporter_user_name} (${c.reporter_user_id})` : c.reporter_user_id;
}

function who(actor) {
  if (!actor) return "—";
  if (actor.role === "system") return `${label("sys", actor.id)} · ${t("role.system")}`;
  const name = actor.name || actor.id || "";
  return [name, actor.role ? label("role", actor.role) : ""].filter(Boolean).join(" · ");
}

function row(title, value, testid) {
  return el("div", { class: "kv" }, el("span", { class: "k" }, title), el("span", { class: "v", "data-testid": testid }, value ?? "—"));
}

// 类案参考: the closed cases most like this one, with how they were solved and how long it took.
async function similarCases(app, c, card) {
  let found;
  try {
    found = await api.svc("intake", `/cases/${encodeURIComponent(c.case_id)}/similar`, { limit: 5 });
  } catch {
    card.remove(); // not for this reader (or intake busy): the case file stands without it
    return;
  }
  clear(
    card,
    el("h3", {}, t("case.similar")),
    found.length
      ? found.map((s) =>
          el(
            "div",
            { class: "similar", "data-testid": `similar-${s.case_id}` },
            el(
              "div",
              { class: "item-head" },
              el("a", { href: `#/case/${encodeURIComponent(s.case_id)}`, class: "case-id" }, s.case_id),
              el("span", { class: "tag", title: t("similar.score") }, `${Math.round(s.score * 100)}%`),
              el("span", { class: "muted right" }, `${Math.round(s.distance_m)} m`),
            ),
            el("div", { class: "item-title" }, `${s.category_code || "—"} ${s.category_code ? app.categoryName(s.category_code) : s.category_name || ""}`),
            s.description ? el("div", { class: "item-text" }, s.description) : null,
            row(t("similar.dept"), s.dept ? app.deptName(s.dept) : s.dept_name),
            row(t("similar.result"), s.result || s.status_notes),
            row(t("similar.took"), `${duration(s.took_s)}${s.on_time === false ? ` (${t("similar.late")})` : ""}`),
            row(t("ev.closed"), when(s.closed_at)),
          ),
        )
      : empty(t("case.similar_none")),
  );
}

export async function renderCase(screen, app, caseId) {
  const input = el("input", { type: "search", placeholder: t("case.search"), "data-testid": "case-search", value: caseId || "" });
  const form = el(
    "form",
    { class: "searchbar" },
    input,
    el("button", { type: "submit", class: "primary", "data-testid": "case-search-go" }, t("case.open")),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (input.value.trim()) app.go(`#/case/${encodeURIComponent(input.value.trim())}`);
  });
  const body = el("div", { class: "casefile" });
  screen.append(form, body);
  if (!caseId) {
    body.append(empty(t("case.none")));
    return;
  }

  async function load() {
    let c;
    try {
      c = await api.svc("intake", `/cases/${encodeURIComponent(caseId)}`);
    } catch (err) {
      clear(body, el("div", { class: "error" }, err.message));
      return;
    }
    let tasks = [];
    if (session.has(...DISPATCH_READERS) && c.dept) {
      try {
        tasks = (await api.svc("dispatch", `/cases/${encodeURIComponent(caseId)}`)).tasks || [];
      } catch {
        tasks = [];
      }
    }
    const closed = c.status === "closed";
    const mapHash = `#/map?case=${encodeURIComponent(c.case_id)}${c.status === "closed" || c.status === "rejected" ? `&status=${c.status}` : ""}`;
    const summary = el(
      "section",
      { class: "card summary", "data-testid": "case-summary" },
      el(
        "div",
        { class: "case-head" },
        el("h2", { "data-testid": "case-id" }, c.case_id),
        el("span", { "data-testid": "case-status", "data-status": c.status }, statusBadge(c.status, c.overdue)),
        c.location && c.location.lat ? el("a", { href: mapHash, class: "button secondary", "data-testid": "case-on-map" }, t("act.map")) : null,
      ),
      el(
        "div",
        { class: "kv-grid" },
        row(t("case.category"), `${c.category_code || "—"} ${app.categoryName(c.category_code)}`),
        row(t("case.description"), c.description),
        row(t("case.place"), [c.address, app.areaName(c.community_code), app.areaName(c.subdistrict_code), c.cell_code].filter((x) => x && x !== "—").join(" · ")),
        row(t("case.channel"), `${channel(c.channel)} / ${c.source}`, "case-channel"),
        row(t("case.reporter"), c.reporter ? `${c.reporter.name || ""} ${c.reporter.phone || ""}`.trim() || "—" : reporterUser(c), "case-reporter"),
        row(t("case.reported_at"), when(c.reported_at)),
        row(t("case.dept"), c.dept ? app.deptName(c.dept) : c.dept_name, "case-dept"),
        row(t("case.deadline"), when(c.deadline), "case-deadline"),
        row(t("case.overdue"), c.overdue || c.ever_overdue ? t("yes") : t("no")),
        row(t("case.reworks"), String(c.reworks ?? 0)),
        row(t("case.closed_at"), when(c.closed_at), "case-closed-at"),
        row(t("case.on_time"), c.on_time === null || c.on_time === undefined ? "—" : c.on_time ? t("yes") : t("no")),
        row(t("case.rating"), c.rating ? t(`rating.${c.rating.rating || c.rating}`) : "—", "case-rating"),
      ),
      links(c.attachments),
    );
    const timeline = el(
      "section",
      { class: "card" },
      el("h3", {}, t("case.timeline")),
      el(
        "ol",
        { class: "timeline", "data-testid": "case-timeline" },
        (c.timeline || []).map((line) => {
          const name = eventName(line.type);
          const d = line.data || {};
          const extras = [
            d.deadline ? `${t("case.deadline")}: ${when(d.deadline)}` : null,
            d.dept ? `${t("case.dept")}: ${app.deptName(d.dept)}` : null,
            d.reason ? `${t("q.reason")}: ${d.reason}` : null,
            d.result ? `${t("form.result")}: ${d.result}` : null,
            d.notes ? `${t("form.notes")}: ${d.notes}` : null,
            d.rating || d.level ? `${t("case.rating")}: ${t(`rating.${d.level || d.rating}`)}` : null,
          ].filter(Boolean);
          // What the line says beyond its event, which the head names in the reader's
          // language (intake's `note`; an older intake sends only `summary`), unless the
          // extras below already say it (a rule's line that quotes the reason).
          const said = "note" in line ? line.note : line.summary;
          const repeats = said && ([d.result, d.notes].includes(said) || (d.reason && said.includes(d.reason)));
          const note = said && !repeats ? said : null;
          return el(
            "li",
            { class: `tl tl-${name}`, "data-testid": `tl-${name}` },
            el("div", { class: "tl-dot" }),
            el(
              "div",
              { class: "tl-body" },
              el("div", { class: "tl-head" }, el("b", {}, label("ev", name)), line.status ? statusBadge(line.status) : null, el("span", { class: "muted right" }, when(line.occurred_at))),
              el("div", { class: "tl-who" }, `${t("case.who")}: ${who(line.actor)}`),
              note ? el("div", { class: "tl-summary" }, note) : null,
              extras.length ? el("div", { class: "tl-extra" }, extras.join(" · ")) : null,
              links([...(d.photos || []), ...(d.evidence || []), ...(name === "reported" ? [] : d.attachments || [])]),
              d.files && d.files.length && name !== "accepted" ? gallery(d.files, { testid: `tl-photo-${name}` }) : null,
            ),
          );
        }),
      ),
    );
    const side = el("div", { class: "case-side" });
    if (tasks.length) {
      side.append(
        el(
          "section",
          { class: "card" },
          el("h3", {}, t("case.tasks")),
          tasks.map((task) =>
            el(
              "div",
              { class: "task" },
              el("div", { class: "item-head" }, el("b", {}, app.deptName(task.dept)), el("span", { class: "tag" }, task.status), task.overdue ? el("span", { class: "badge overdue" }, t("status.overdue")) : null),
              row(t("ev.dispatched"), when(task.dispatched_at)),
              row(t("case.deadline"), when(task.deadline)),
              row(t("ev.signed"), when(task.signed_at)),
              row(t("ev.handled"), when(task.handled_at)),
            ),
          ),
        ),
      );
    }
    if (closed && !c.rating && session.has("operator", "shift-leader")) {
      const rating = select({ "data-testid": "rating-value" }, ["A", "B", "C", "D"].map((r) => [r, t(`rating.${r}`)]), "B");
      side.append(
        el(
          "section",
          { class: "card" },
          el("h3", {}, t("act.rate")),
          field(t("form.rating"), rating),
          el("button", { class: "primary", "data-testid": "rate-submit", onclick: (e) => act(e.target, () => api.cmd("intake", `/cases/${encodeURIComponent(c.case_id)}/rating`, { rating: rating.value }), load) }, t("act.submit")),
        ),
      );
    }
    const similar = el("section", { class: "card", "data-testid": "case-similar" }, el("h3", {}, t("case.similar")));
    side.append(similar);
    similarCases(app, c, similar);
    const photos = beforeAfter(c);
    clear(body, el("div", { class: "case-layout" }, el("div", { class: "case-main" }, summary, photos, timeline), side));
  }
  // Any event may be this case's (the debounce keeps only the last): reload, it is cheap. Heard
  // from before the first load, so an event that lands while it is on its way is not missed.
  app.onLive(() => load());
  await load();
}
