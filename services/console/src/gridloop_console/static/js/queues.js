// Work queues by role: the operators' acceptance queue, the dispatchers' board, a department's
// inbox, a supervisor's tasks, the shift leader's approvals; each refreshes on live events.
import { api, session } from "./api.js";
import { channel, label, lang, named, t } from "./i18n.js";
import { act, clear, duration, el, empty, field, select, statusBadge, when } from "./ui.js";

function section(id, title) {
  const count = el("span", { class: "count-badge", "data-testid": `count-${id}` }, "…");
  const body = el("div", { class: "queue-body" });
  const card = el("section", { class: "card queue", "data-testid": `queue-${id}` }, el("h3", {}, title, count), body);
  return { card, body, count };
}

function caseLink(app, caseId) {
  return el("a", { href: `#/case/${encodeURIComponent(caseId)}`, class: "case-id", "data-testid": `open-${caseId}` }, caseId);
}

function place(app, c) {
  const bits = [c.address, app.areaName(c.community_code), app.areaName(c.subdistrict_code)].filter((x) => x && x !== "—");
  return bits.join(" · ") || c.cell_code || "—";
}

function evidence(list) {
  if (!list || !list.length) return null;
  return el(
    "div",
    { class: "evidence" },
    list.map((a, i) => el("a", { href: a.url || a, target: "_blank", rel: "noopener" }, `▣ ${label("att", a.kind || "photo")} ${i + 1}`)),
  );
}

function urlOk(value) {
  try {
    const u = new URL(value);
    return u.protocol === "http:" || u.protocol === "https:";
  } catch {
    return false;
  }
}

// -- operators: 立案 -------------------------------------------------------------------------
async function operatorQueue(app, sec) {
  const found = await api.svc("intake", "/queue", { limit: 100 });
  sec.count.textContent = found.total;
  const reasons = app.city.reject_reasons.map((r) => [r.code, r[lang] || r.zh]);
  clear(
    sec.body,
    found.cases.length
      ? found.cases.map((c, index) => {
          const id = c.case_id;
          const dupBox = el("div", { class: "dups", "data-testid": `dups-${id}` });
          const similarBox = el("div", { class: "dups", "data-testid": `similar-${id}` });
          const needsCategory = !c.category_code;
          const catSel = needsCategory
            ? select(
                { "data-testid": `accept-category-${id}` },
                app.city.categories.map((k) => [k.code, `${k.code} ${app.categoryName(k.code)}`]),
              )
            : null;
          const rejectForm = el("div", { class: "inline-form hidden" });
          const reasonSel = select({ "data-testid": `reject-reason-${id}` }, reasons, "insufficient-information");
          const reasonText = el("input", { type: "text", "data-testid": `reject-text-${id}`, placeholder: t("form.reason") });
          rejectForm.append(
            field(t("form.reason_code"), reasonSel),
            field(t("form.reason"), reasonText),
            el(
              "button",
              {
                class: "danger",
                "data-testid": `reject-confirm-${id}`,
                onclick: (e) =>
                  act(e.target, () => api.cmd("intake", `/cases/${id}/reject`, { reason_code: reasonSel.value, reason: reasonText.value || null }), () => operatorQueue(app, sec)),
              },
              t("act.confirm"),
            ),
          );
          const item = el(
            "article",
            { class: "item", "data-testid": `item-${id}` },
            el("div", { class: "item-head" }, caseLink(app, id), statusBadge(c.status, c.overdue), c.queue_reason ? el("span", { class: "tag", title: c.queue_reason, "data-testid": `queue-reason-${id}` }, label("qr", c.queue_reason)) : null, el("span", { class: "muted right" }, when(c.reported_at))),
            el("div", { class: "item-title" }, needsCategory ? "—" : `${c.category_code} ${app.categoryName(c.category_code)}`),
            el("div", { class: "item-text" }, c.description),
            el("div", { class: "item-meta" }, `${t("case.place")}: ${place(app, c)} · ${t("case.channel")}: ${channel(c.channel)} / ${c.source}`, c.reporter ? ` · ${t("case.reporter")}: ${c.reporter.name || ""} ${c.reporter.phone || ""}` : ""),
            evidence(c.attachments),
            dupBox,
            similarBox,
            el(
              "div",
              { class: "actions" },
              catSel ? field(t("form.category"), catSel) : null,
              el(
                "button",
                {
                  class: "primary",
                  "data-testid": `accept-${id}`,
                  onclick: (e) => act(e.target, () => api.cmd("intake", `/cases/${id}/accept`, catSel ? { category_code: catSel.value } : {}), () => operatorQueue(app, sec)),
                },
                t("act.accept"),
              ),
              el("button", { class: "secondary", "data-testid": `reject-${id}`, onclick: () => rejectForm.classList.toggle("hidden") }, t("act.reject")),
            ),
            rejectForm,
          );
          if (c.category_code && c.cell_code) duplicates(app, c, dupBox);
          if (index < SIMILAR_HINTS) similarHint(app, c, similarBox);
          return item;
        })
      : empty(t("q.empty")),
  );
}

// 重复上报: open cases of the same category in the same cell.
async function duplicates(app, c, box) {
  const found = await api.svc("intake", "/cases", { category: c.category_code, cell: c.cell_code, open: true, limit: 6 });
  const others = found.cases.filter((x) => x.case_id !== c.case_id);
  if (!others.length) return;
  clear(box, el("span", { class: "dups-title" }, `${t("q.duplicates")}: `), others.map((x) => el("span", { class: "dup" }, caseLink(app, x.case_id), " ", statusBadge(x.status, x.overdue))));
}

// 类案参考: the closed case most like this one — who solved it, how, and in how long. The
// queue redraws on every live event: a case's hint is kept a minute, and only the oldest
// waiting cases (the ones being worked) ask for one.
const SIMILAR_HINTS = 20;
const SIMILAR_KEEP_MS = 60_000;
const similarKept = new Map();

async function similarHint(app, c, box) {
  const kept = similarKept.get(c.case_id);
  let found = kept && Date.now() - kept.at < SIMILAR_KEEP_MS ? kept.found : null;
  if (!found) {
    try {
      found = await api.svc("intake", `/cases/${encodeURIComponent(c.case_id)}/similar`, { limit: 1 });
    } catch {
      return;
    }
    if (similarKept.size > 500) similarKept.clear();
    similarKept.set(c.case_id, { at: Date.now(), found });
  }
  if (!found.length) return;
  const s = found[0];
  const how = [s.dept ? app.deptName(s.dept) : s.dept_name, s.result || s.status_notes, `${t("similar.took")} ${duration(s.took_s)}`].filter(Boolean).join(" · ");
  clear(box, el("span", { class: "dups-title" }, `${t("q.similar")}: `), caseLink(app, s.case_id), " ", el("span", { class: "muted" }, how));
}

// -- dispatchers --------------------------------------------------------------------------
async function manualQueue(app, sec) {
  const rows = await api.svc("dispatch", "/queue", { limit: 200 });
  sec.count.textContent = rows.length;
  clear(
    sec.body,
    rows.length
      ? rows.map((c) => {
          const id = c.case_id;
          const suggested = c.suggestions || [];
          const options = [...suggested.map((d) => [d, `★ ${app.deptName(d)}`]), ...app.city.departments.filter((d) => !suggested.includes(d.code)).map((d) => [d.code, named(d)])];
          const deptSel = select({ "data-testid": `dispatch-dept-${id}` }, options, suggested[0]);
          return el(
            "article",
            { class: "item", "data-testid": `item-${id}` },
            el("div", { class: "item-head" }, caseLink(app, id), el("span", { class: "tag" }, c.queue_reason || "manual"), el("span", { class: "muted right" }, when(c.queued_at))),
            el("div", { class: "item-title" }, `${c.category_code || "—"} ${app.categoryName(c.category_code)}`),
            el("div", { class: "item-text" }, c.description),
            el("div", { class: "item-meta" }, `${t("case.place")}: ${place(app, c)}`, c.returned_by && c.returned_by.length ? ` · ${t("act.return")}: ${c.returned_by.map((d) => app.deptName(d)).join("、")}` : ""),
            el(
              "div",
              { class: "actions" },
              field(t("q.suggested"), deptSel),
              el("button", { class: "primary", "data-testid": `dispatch-${id}`, onclick: (e) => act(e.target, () => api.cmd("dispatch", `/cases/${id}/dispatch`, { dept: deptSel.value }), () => manualQueue(app, sec)) }, t("act.dispatch")),
            ),
          );
        })
      : empty(t("q.empty")),
  );
}

async function board(app, sec) {
  const rows = await api.svc("dispatch", "/board", { view: "late", limit: 200 });
  sec.count.textContent = rows.length;
  clear(
    sec.body,
    rows.length
      ? el(
          "table",
          { class: "grid-table" },
          el("thead", {}, el("tr", {}, [t("tab.case"), t("case.category"), t("case.dept"), t("case.deadline"), t("q.escalation"), t("filter.status"), ""].map((h) => el("th", {}, h)))),
          el(
            "tbody",
            {},
            rows.map((r) =>
              el(
                "tr",
                { "data-testid": `board-${r.case_id}` },
                el("td", {}, caseLink(app, r.case_id)),
                el("td", {}, app.categoryName(r.category_code)),
                el("td", {}, app.deptName(r.dept)),
                el("td", {}, when(r.deadline)),
                el("td", {}, r.escalation_level ? `L${r.escalation_level}` : "—"),
                el("td", {}, r.overdue ? el("span", { class: "badge overdue" }, t("status.overdue")) : r.sign_in_overdue ? el("span", { class: "badge overdue" }, t("q.stage.to_sign")) : "—", r.supervised ? el("span", { class: "tag" }, t("ev.supervised")) : null),
                el("td", {}, chase(app, r.case_id, () => board(app, sec))),
              ),
            ),
          ),
        )
      : empty(t("q.empty")),
  );
}

async function extensions(app, sec) {
  const rows = await api.svc("dispatch", "/extensions", { status: "pending" });
  sec.count.textContent = rows.length;
  clear(
    sec.body,
    rows.length
      ? rows.map((x) => {
          const rid = x.request_id;
          const why = el("input", { type: "text", placeholder: t("form.reason"), "data-testid": `refuse-reason-${rid}` });
          const done = () => extensions(app, sec);
          return el(
            "article",
            { class: "item", "data-testid": `item-${x.case_id}` },
            el("div", { class: "item-head" }, caseLink(app, x.case_id), el("span", { class: "tag" }, app.deptName(x.dept)), el("span", { class: "muted right" }, when(x.requested_at))),
            el("div", { class: "item-text" }, x.reason),
            el("div", { class: "item-meta" }, `${t("case.deadline")}: ${when(x.current_deadline)} → ${t("q.proposed")}: ${when(x.proposed_deadline)}`),
            el(
              "div",
              { class: "actions" },
              el("button", { class: "primary", "data-testid": `grant-${rid}`, onclick: (e) => act(e.target, () => api.cmd("dispatch", `/extensions/${rid}/decision`, { granted: true }), done) }, t("act.grant")),
              why,
              el("button", { class: "secondary", "data-testid": `refuse-${rid}`, onclick: (e) => act(e.target, () => api.cmd("dispatch", `/extensions/${rid}/decision`, { granted: false, reason: why.value || "不符合延期条件" }), done) }, t("act.refuse")),
            ),
          );
        })
      : empty(t("q.empty")),
  );
}

// -- a department's inbox -------------------------------------------------------------------
async function inbox(app, sec, dept) {
  const found = await api.svc("handling", `/departments/${dept}/cases`, { limit: 100 });
  sec.count.textContent = found.total;
  const base = `/departments/${dept}/cases`;
  clear(
    sec.body,
    found.items.length
      ? found.items.map((task) => {
          const id = task.case_id;
          const c = task.case || {};
          const done = () => inbox(app, sec, dept);
          const actions = el("div", { class: "actions" });
          const forms = el("div", {});
          if (task.stage === "to_sign") {
            const why = el("input", { type: "text", placeholder: t("form.reason"), "data-testid": `return-reason-${id}` });
            const returnForm = el(
              "div",
              { class: "inline-form hidden" },
              field(t("form.reason"), why),
              el("button", { class: "danger", "data-testid": `return-confirm-${id}`, onclick: (e) => act(e.target, () => api.cmdPlain("handling", `${base}/${id}/return`, { task_id: task.task_id, reason: why.value || "不属于本单位职责" }), done) }, t("act.confirm")),
            );
            actions.append(
              el("button", { class: "primary", "data-testid": `sign-${id}`, onclick: (e) => act(e.target, () => api.cmdPlain("handling", `${base}/${id}/sign`, { task_id: task.task_id }), done) }, t("act.sign")),
              el("button", { class: "secondary", "data-testid": `return-${id}`, onclick: () => returnForm.classList.toggle("hidden") }, t("act.return")),
            );
            forms.append(returnForm);
          } else if (task.stage === "in_progress") {
            const result = el("textarea", { rows: 2, "data-testid": `result-text-${id}`, placeholder: t("form.result") });
            const photo = el("input", { type: "url", "data-testid": `result-evidence-${id}`, placeholder: "https://…" });
            const resultForm = el(
              "div",
              { class: "inline-form" },
              field(t("form.result"), result),
              field(t("form.evidence"), photo),
              el(
                "button",
                {
                  class: "primary",
                  "data-testid": `result-submit-${id}`,
                  onclick: (e) =>
                    act(
                      e.target,
                      () =>
                        api.cmdPlain("handling", `${base}/${id}/result`, {
                          task_id: task.task_id,
                          result: result.value || "已处置完毕",
                          evidence: urlOk(photo.value) ? [{ url: photo.value, kind: "photo" }] : [],
                        }),
                      done,
                    ),
                },
                t("act.result"),
              ),
            );
            const why = el("input", { type: "text", placeholder: t("form.reason"), "data-testid": `extension-reason-${id}` });
            const until = el("input", { type: "datetime-local", "data-testid": `extension-deadline-${id}` });
            const extForm = el(
              "div",
              { class: "inline-form hidden" },
              field(t("form.reason"), why),
              field(t("form.deadline"), until),
              el(
                "button",
                {
                  class: "secondary",
                  "data-testid": `extension-submit-${id}`,
                  onclick: (e) =>
                    act(
                      e.target,
                      () =>
                        api.cmdPlain("handling", `${base}/${id}/extension`, {
                          task_id: task.task_id,
                          reason: why.value || "需协调其他单位",
                          proposed_deadline: new Date(until.value || Date.now() + 86400000).toISOString(),
                        }),
                      done,
                    ),
                },
                t("act.submit"),
              ),
            );
            actions.append(el("button", { class: "secondary", "data-testid": `extension-${id}`, onclick: () => extForm.classList.toggle("hidden") }, t("act.extension")));
            forms.append(resultForm, extForm);
          }
          const left = task.overdue ? `${t("status.overdue")} ${duration(task.overdue_by_s)}` : `${t("q.remaining")} ${duration(task.remaining_working_s ?? task.remaining_s)}`;
          return el(
            "article",
            { class: `item${task.overdue ? " late" : ""}`, "data-testid": `item-${id}` },
            el(
              "div",
              { class: "item-head" },
              caseLink(app, id),
              el("span", { class: `badge stage-${task.stage}` }, t(`q.stage.${task.stage}`)),
              task.urgency === "urgent" ? el("span", { class: "badge overdue" }, t("form.urgent")) : null,
              task.extension_pending ? el("span", { class: "tag" }, t("ev.extension_requested")) : null,
              el("span", { class: `countdown right${task.overdue ? " late" : ""}` }, `${t("q.deadline")} ${when(task.deadline)}${task.deadline_provisional ? ` (${t("q.provisional")})` : ""} · ${left}`),
            ),
            el("div", { class: "item-title" }, `${c.category_code || ""} ${c.category_code ? app.categoryName(c.category_code) : c.category_name || ""}`),
            el("div", { class: "item-text" }, c.description),
            el("div", { class: "item-meta" }, `${t("case.place")}: ${place(app, c)}`),
            c.closing_standard ? el("div", { class: "item-meta" }, `结案条件: ${c.closing_standard}`) : null,
            evidence(c.attachments),
            actions,
            forms,
          );
        })
      : empty(t("q.empty")),
  );
}

// -- supervisors: 核查 and 核实 ----------------------------------------------------------------
async function supervisorTasks(app, sec) {
  const rows = await api.svc("verify", "/tasks", { status: "open", supervisor_id: session.user.id });
  sec.count.textContent = rows.length;
  clear(
    sec.body,
    rows.length
      ? rows.map((task) => {
          const id = task.case_id;
          const c = task.case || {};
          const notes = el("input", { type: "text", "data-testid": `verify-notes-${id}`, placeholder: t("form.notes") });
          const photo = el("input", { type: "url", "data-testid": `verify-photo-${id}`, placeholder: "https://…" });
          const path = `/tasks/${task.task_id}/${task.purpose}`;
          const done = () => supervisorTasks(app, sec);
          const send = (button, key, yes) =>
            act(button, () => api.cmd("verify", path, { [key]: yes, notes: notes.value || null, photos: urlOk(photo.value) ? [photo.value] : [] }), done);
          const buttons =
            task.purpose === "verification"
              ? [
                  el("button", { class: "primary", "data-testid": `verify-pass-${id}`, onclick: (e) => send(e.target, "passed", true) }, t("act.pass")),
                  el("button", { class: "danger", "data-testid": `verify-fail-${id}`, onclick: (e) => send(e.target, "passed", false) }, t("act.fail")),
                ]
              : [
                  el("button", { class: "primary", "data-testid": `confirm-yes-${id}`, onclick: (e) => send(e.target, "confirmed", true) }, t("act.confirmed")),
                  el("button", { class: "danger", "data-testid": `confirm-no-${id}`, onclick: (e) => send(e.target, "confirmed", false) }, t("act.refuted")),
                ];
          return el(
            "article",
            { class: `item${task.overdue ? " late" : ""}`, "data-testid": `item-${id}` },
            el("div", { class: "item-head" }, caseLink(app, id), el("span", { class: "badge" }, t(`q.purpose.${task.purpose}`)), el("span", { class: "muted right" }, `${t("q.due")} ${when(task.due)}`)),
            el("div", { class: "item-title" }, `${c.category_code || ""} ${app.categoryName(c.category_code)}`),
            el("div", { class: "item-text" }, c.description),
            c.result ? el("div", { class: "item-meta" }, `${t("form.result")}: ${c.result}`) : null,
            el("div", { class: "item-meta" }, `${t("case.place")}: ${c.address || app.areaName(c.cell_code && c.cell_code.slice(0, 12))}${c.dept ? " · " + app.deptName(c.dept) : ""}`),
            evidence(c.evidence),
            el("div", { class: "actions" }, field(t("form.notes"), notes), field(t("form.photo"), photo), buttons),
          );
        })
      : empty(t("q.empty")),
  );
}

// -- grid heads: their cells' overdue and sent-back cases, the residents to call back ------
function chase(app, id, onDone) {
  return el(
    "button",
    {
      class: "secondary",
      "data-testid": `chase-${id}`,
      onclick: (e) => act(e.target, () => api.cmd("dispatch", `/cases/${id}/reminder`, { note: t("q.chase.note") }), onDone),
    },
    t("act.chase"),
  );
}

async function gridHeadQueue(app, sec) {
  const rows = await api.svc("intake", "/grid-head/queue", { limit: 100 });
  sec.count.textContent = rows.length;
  clear(
    sec.body,
    rows.length
      ? rows.map((c) =>
          el(
            "article",
            { class: "item", "data-testid": `item-${c.case_id}` },
            el(
              "div",
              { class: "item-head" },
              caseLink(app, c.case_id),
              el("span", { class: "badge overdue" }, t(c.why === "overdue" ? "status.overdue" : "status.reworking")),
              c.escalated_to_me ? el("span", { class: "badge overdue", "data-testid": `escalated-to-me-${c.case_id}`, title: c.escalated_to_me.reason || "" }, `${t("q.escalated_to_me")} L${c.escalated_to_me.level}`) : null,
              el("span", { class: "muted right" }, when(c.deadline)),
            ),
            el("div", { class: "item-title" }, `${app.categoryName(c.category_code)} · ${app.deptName(c.dept)}`),
            el("div", { class: "item-text" }, c.description),
            el(
              "div",
              { class: "item-meta", "data-testid": `callback-${c.case_id}` },
              `${t("q.callback")}: `,
              c.call_back.length ? c.call_back.map((p) => `${p.name || ""} ${p.phone || ""}`.trim()).join("、") : "—",
            ),
            el("div", { class: "actions" }, c.dept ? chase(app, c.case_id, () => gridHeadQueue(app, sec)) : null),
          ),
        )
      : empty(t("q.empty")),
  );
}

// -- the shift leader: closing approvals ------------------------------------------------------
async function approvals(app, sec) {
  const rows = await api.svc("verify", "/approvals");
  sec.count.textContent = rows.length;
  clear(
    sec.body,
    rows.length
      ? rows.map((c) =>
          el(
            "article",
            { class: "item", "data-testid": `item-${c.case_id}` },
            el("div", { class: "item-head" }, caseLink(app, c.case_id)),
            el("div", { class: "item-title" }, app.categoryName(c.category_code)),
            el("div", { class: "actions" }, el("button", { class: "primary", "data-testid": `approve-${c.case_id}`, onclick: (e) => act(e.target, () => api.cmd("verify", `/cases/${c.case_id}/approval`, { approved: true }), () => approvals(app, sec)) }, t("act.approve"))),
          ),
        )
      : empty(t("q.empty")),
  );
}

export async function renderQueues(screen, app) {
  const sections = [];
  const add = (id, title, load) => {
    const sec = section(id, title);
    sections.push([sec, load]);
    return sec;
  };
  if (session.has("operator", "shift-leader")) add("operator", t("q.operator"), (s) => operatorQueue(app, s));
  if (session.has("shift-leader")) add("approvals", t("q.approvals"), (s) => approvals(app, s));
  if (session.user.roles.includes("grid-head")) add("grid-head", t("q.grid-head"), (s) => gridHeadQueue(app, s));
  if (session.has("dispatcher")) {
    add("dispatcher", t("q.dispatcher"), (s) => manualQueue(app, s));
    add("board", t("q.board"), (s) => board(app, s));
    add("extensions", t("q.extensions"), (s) => extensions(app, s));
  }
  const user = session.user;
  if (user.roles.includes("department") && user.dept) add("department", `${t("q.department")} · ${app.deptName(user.dept)}`, (s) => inbox(app, s, user.dept));
  if (user.roles.includes("supervisor")) add("supervisor", t("q.supervisor"), (s) => supervisorTasks(app, s));
  if (!sections.length) {
    screen.append(empty(t("q.empty")));
    return;
  }
  screen.append(el("div", { class: "queues" }, sections.map(([s]) => s.card)));
  const loadAll = () =>
    Promise.all(
      sections.map(([s, load]) =>
        load(s).catch((err) => {
          clear(s.body, el("div", { class: "error" }, err.message));
        }),
      ),
    );
  await loadAll();
  // A live refresh waits while somebody is typing in a section, so no input is lost.
  const busy = (s) => {
    const active = document.activeElement;
    if (active && s.card.contains(active) && ["INPUT", "TEXTAREA", "SELECT"].includes(active.tagName)) return true;
    return [...s.body.querySelectorAll("input, textarea")].some((i) => i.type !== "checkbox" && i.value);
  };
  const refreshOne = (s, load) => {
    if (!s.card.isConnected) return;
    if (busy(s)) setTimeout(() => refreshOne(s, load), 2000);
    else load(s).catch((err) => clear(s.body, el("div", { class: "error" }, err.message)));
  };
  const refresh = () => sections.forEach(([s, load]) => refreshOne(s, load));
  // The queues are the services' read models, which hear an event through their own
  // consumers, at times after the live feed: look again a moment after each event, and every
  // 10 s while the screen is shown, so a queue never stays behind.
  app.onLive(() => {
    refresh();
    setTimeout(refresh, 2000);
  });
  const every = setInterval(() => {
    if (!sections.some(([s]) => s.card.isConnected)) clearInterval(every);
    else if (document.visibilityState === "visible") refresh();
  }, 10000);
}
