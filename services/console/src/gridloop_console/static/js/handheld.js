// 城管通: the supervisor's handheld, in the phone's browser. A patrol report in three taps —
// the camera, a category likely in the cell where the phone is (the cell shown before
// sending), send —; the verification tasks, live; a verification with the before and after
// photos side by side. Offline-first: what is made without signal waits in the outbox
// (outbox.js) and is sent, once, when the signal is back.
import { api, session } from "./api.js";
import { t } from "./i18n.js";
import { enqueue, flush, items } from "./outbox.js";
import { beforeAfter } from "./photos.js";
import { clear, el, empty, toast, when } from "./ui.js";

const LIKELY_KEY = "gridloop.likely.";
const TASKS_KEY = "gridloop.tasks";
let cells = null; // the cells' GeoJSON, for finding the cell without signal

export function isPhone() {
  return window.matchMedia("(max-width: 760px)").matches;
}

function online() {
  return navigator.onLine;
}

async function pending() {
  return (await items()).filter((i) => i.state !== "sent" && i.state !== "refused").length;
}

// Small line icons (a phone may have no emoji font).
const ICONS = {
  camera: "M4 8h3l2-3h6l2 3h3v11H4z M12 10a3.5 3.5 0 1 0 0.01 0",
  pin: "M12 21s-6-6.2-6-11a6 6 0 0 1 12 0c0 4.8-6 11-6 11z M12 8a2 2 0 1 0 0.01 0",
};

function icon(name) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", `icon icon-${name}`);
  const path = document.createElementNS(ns, "path");
  path.setAttribute("d", ICONS[name]);
  svg.append(path);
  return svg;
}

// -- where am I ------------------------------------------------------------------------------
function position() {
  return new Promise((resolve, reject) => {
    if (!navigator.geolocation) {
      reject(new Error(t("hh.no-gps")));
      return;
    }
    navigator.geolocation.getCurrentPosition(
      (p) => resolve({ lat: p.coords.latitude, lon: p.coords.longitude, accuracy: p.coords.accuracy }),
      (err) => reject(new Error(err.message || t("hh.no-gps"))),
      { enableHighAccuracy: true, timeout: 15000, maximumAge: 0 },
    );
  });
}

function inRing(ring, x, y) {
  let inside = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi, yi] = ring[i];
    const [xj, yj] = ring[j];
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

function inPolygon(rings, x, y) {
  return inRing(rings[0], x, y) && !rings.slice(1).some((hole) => inRing(hole, x, y));
}

async function cellOffline(lat, lon) {
  if (!cells) cells = await api.get("/api/geo/cells");
  for (const f of cells.features) {
    const g = f.geometry;
    const polys = g.type === "Polygon" ? [g.coordinates] : g.coordinates;
    if (polys.some((rings) => inPolygon(rings, lon, lat))) return f.properties;
  }
  return null;
}

// The cell and the categories likely reported there: from the console when there is signal
// (and kept), else found in the cached cells with the categories last seen for that cell.
async function locate(app, lat, lon) {
  try {
    const found = await api.get(`/api/locate?lat=${lat}&lon=${lon}`);
    if (found.cell) localStorage.setItem(LIKELY_KEY + found.cell.code, JSON.stringify(found.likely));
    return found;
  } catch {
    const cell = await cellOffline(lat, lon).catch(() => null);
    let likely = null;
    if (cell) likely = JSON.parse(localStorage.getItem(LIKELY_KEY + cell.code) || "null");
    return { cell, likely: likely || app.city.categories.slice(0, 6).map((c) => c.code) };
  }
}

// -- the screen ------------------------------------------------------------------------------
export async function renderHandheld(screen, app, view) {
  // the cells, while there is signal: where the phone is, found without it too
  if (!cells && online()) api.get("/api/geo/cells").then((c) => (cells = c)).catch(() => {});
  const statusLine = el("div", { class: "hh-status", "data-testid": "hh-status" });
  const body = el("section", { class: "hh-body" });
  const navItem = (id, label) =>
    el("a", { href: `#/field/${id}`, class: `hh-tab${view === id ? " active" : ""}`, "data-testid": `hh-tab-${id}` }, label);
  const outboxCount = el("span", { class: "count", "data-testid": "hh-pending" }, "0");
  const nav = el("nav", { class: "hh-nav" }, navItem("report", t("hh.report")), navItem("tasks", t("hh.tasks")), navItem("outbox", [t("hh.outbox"), " ", outboxCount]));
  screen.append(el("div", { class: "handheld", "data-testid": "handheld" }, statusLine, body, nav));

  async function status() {
    const n = await pending();
    outboxCount.textContent = String(n);
    clear(
      statusLine,
      el("span", { class: `dot ${online() ? "on" : "off"}`, "data-testid": "hh-online", "data-online": String(online()) }, online() ? t("hh.online") : t("hh.offline")),
      n ? el("span", { class: "muted" }, ` · ${t("hh.waiting")} ${n}`) : null,
    );
  }
  const refresh = async () => {
    await status();
    if (view === "outbox") renderOutbox(body);
    if (view === "report") renderMine(body.querySelector(".hh-mine"));
  };
  const onNet = () => {
    refresh();
    if (online()) flush(refresh);
  };
  window.addEventListener("online", onNet);
  window.addEventListener("offline", onNet);
  window.addEventListener("gridloop:outbox", refresh);
  const gone = new MutationObserver(() => {
    if (!screen.isConnected) {
      window.removeEventListener("online", onNet);
      window.removeEventListener("offline", onNet);
      window.removeEventListener("gridloop:outbox", refresh);
      gone.disconnect();
    }
  });
  gone.observe(document.body, { childList: true, subtree: true });
  await status();

  if (view === "tasks") await renderTasks(body, app, refresh);
  else if (view === "verify") await renderVerify(body, app, refresh);
  else if (view === "outbox") await renderOutbox(body);
  else await renderReportForm(body, app, refresh);
}

function photoInput(testid) {
  const preview = el("img", { class: "hh-preview", alt: "", hidden: true, "data-testid": `${testid}-preview` });
  const input = el("input", { type: "file", accept: "image/*", capture: "environment", class: "hh-file", "data-testid": `${testid}-input` });
  const label = el("label", { class: "hh-camera", "data-testid": testid }, icon("camera"), el("span", {}, t("hh.photo")), input);
  input.addEventListener("change", () => {
    const file = input.files && input.files[0];
    if (!file) return;
    preview.src = URL.createObjectURL(file);
    preview.hidden = false;
    label.classList.add("done");
  });
  return { node: el("div", { class: "hh-photo" }, label, preview), file: () => (input.files && input.files[0]) || null };
}

async function renderReportForm(body, app, refresh) {
  let where = null;
  let category = null;
  const cellLine = el("div", { class: "hh-cell", "data-testid": "hh-cell" }, icon("pin"), t("hh.locating"));
  const chips = el("div", { class: "hh-chips", "data-testid": "hh-categories" });
  const photo = photoInput("hh-camera");
  const description = el("textarea", { rows: 2, placeholder: t("hh.describe"), "data-testid": "hh-description" });
  const send = el("button", { class: "primary hh-send", disabled: true, "data-testid": "hh-send" }, t("hh.send"));
  const mine = el("div", { class: "hh-mine" });
  const ready = () => (send.disabled = !(where && where.cell && category));

  function pick(code, chip) {
    category = code;
    for (const c of chips.querySelectorAll(".chip")) c.classList.toggle("on", c === chip);
    ready();
  }

  async function place() {
    clear(cellLine, icon("pin"), t("hh.locating"));
    try {
      const p = await position();
      const found = await locate(app, p.lat, p.lon);
      where = { ...p, cell: found.cell };
      if (!found.cell) {
        clear(cellLine, el("span", { class: "error" }, t("hh.outside")));
      } else {
        const c = found.cell;
        cellLine.dataset.cell = c.code;
        clear(
          cellLine,
          icon("pin"),
          el("b", {}, c.name),
          el("span", { class: "muted" }, ` · ${c.community_name || ""} · ${c.subdistrict_name || ""}`),
          el("div", { class: "muted small" }, `${c.code} · ${p.lat.toFixed(5)}, ${p.lon.toFixed(5)} · ±${Math.round(p.accuracy || 0)} m`),
        );
      }
      clear(
        chips,
        (found.likely || []).map((code) => {
          const chip = el("button", { type: "button", class: "chip", "data-testid": `hh-category-${code}`, "data-code": code }, app.categoryName(code));
          chip.addEventListener("click", () => pick(code, chip));
          return chip;
        }),
      );
    } catch (err) {
      clear(cellLine, el("span", { class: "error" }, `${t("hh.no-gps")}: ${err.message}`), " ", el("button", { class: "ghost", onclick: place }, t("hh.retry")));
    }
    ready();
  }

  send.addEventListener("click", async () => {
    send.disabled = true;
    const body = {
      channel: "patrol",
      description: description.value.trim() || app.categoryName(category),
      category_code: category,
      location: { lat: where.lat, lon: where.lon },
      reported_at: new Date().toISOString(),
    };
    await enqueue("report", body, photo.file(), { cell: where.cell.code });
    toast(online() ? t("hh.sending") : t("hh.saved-offline"));
    renderReportForm(clear(document.querySelector(".hh-body")), app, refresh);
    await refresh();
    if (online()) flush(refresh);
  });

  body.append(
    el("div", { class: "card hh-card" }, cellLine),
    el("div", { class: "card hh-card" }, el("div", { class: "hh-step" }, "1 ", t("hh.step-photo")), photo.node),
    el("div", { class: "card hh-card" }, el("div", { class: "hh-step" }, "2 ", t("hh.step-category")), chips, el("details", {}, el("summary", {}, t("hh.more")), description)),
    send,
    mine,
  );
  renderMine(mine);
  await place();
}

async function renderMine(box) {
  if (!box) return;
  const reports = (await items()).filter((i) => i.kind === "report").reverse();
  // a refresh that changes nothing leaves the list as it is (no blink, nothing replaced
  // under the supervisor's thumb); several refreshes follow one send
  const shown = JSON.stringify(reports.map((i) => [i.id, i.state, i.case_id || "", i.error || ""]));
  if (box.dataset.shown === shown) return;
  box.dataset.shown = shown;
  clear(
    box,
    reports.length ? el("h4", {}, t("hh.my-reports")) : null,
    reports.map((i) =>
      el(
        "div",
        { class: `hh-item st-${i.state}`, "data-testid": "hh-report-item", "data-state": i.state, "data-case": i.case_id || "" },
        el("b", {}, i.case_id ? el("a", { href: `#/case/${encodeURIComponent(i.case_id)}` }, i.case_id) : t(`hh.state.${i.state}`)),
        el("span", { class: "muted" }, ` ${when(i.created_at)} · ${i.body.description}`),
        i.case_id ? el("span", { class: "tag" }, t(`hh.state.${i.state}`)) : null,
        i.error && i.state !== "sent" ? el("div", { class: "muted small" }, i.error) : null,
      ),
    ),
  );
}

async function renderTasks(body, app, refresh) {
  const list = el("div", { class: "hh-tasks", "data-testid": "hh-tasks" });
  body.append(list);
  let latest = 0;
  async function load() {
    // loads can cross (a live event while one is on its way): only the latest one is shown
    const mine = ++latest;
    let tasks;
    try {
      tasks = await api.svc("verify", "/tasks", { status: "open", supervisor_id: session.user.id });
      if (mine !== latest) return;
      localStorage.setItem(TASKS_KEY, JSON.stringify(tasks));
    } catch {
      tasks = JSON.parse(localStorage.getItem(TASKS_KEY) || "[]");
    }
    const sent = new Set((await items()).filter((i) => i.kind === "verification").map((i) => i.task_id));
    if (mine !== latest) return;
    tasks = tasks.filter((x) => !sent.has(x.task_id));
    clear(
      list,
      tasks.length
        ? tasks.map((task) => {
            const c = task.case || {};
            return el(
              "a",
              { class: "card hh-task", href: `#/field/verify?task=${encodeURIComponent(task.task_id)}`, "data-testid": "hh-task", "data-task": task.task_id, "data-case": task.case_id },
              el("div", { class: "item-head" }, el("b", {}, t(task.purpose === "confirmation" ? "hh.confirm" : "hh.verify")), el("span", { class: "muted right" }, `${t("hh.due")} ${when(task.due)}`)),
              el("div", {}, `${task.case_id} · ${app.categoryName(c.category_code)}`),
              el("div", { class: "muted small" }, c.address || c.description || c.cell_code || ""),
            );
          })
        : empty(t("hh.no-tasks")),
    );
    await refresh();
  }
  // listening before the first load: an event that lands while it is on its way loads again
  const live = app.onLive(load);
  await load();
  // the signal is back: what was assigned meanwhile is not in the list yet
  const back = () => app.listeners.has(live) && load();
  window.addEventListener("online", back);
  const gone = new MutationObserver(() => {
    if (!list.isConnected) {
      window.removeEventListener("online", back);
      gone.disconnect();
    }
  });
  gone.observe(document.body, { childList: true, subtree: true });
}

async function renderVerify(body, app, refresh) {
  const taskId = new URLSearchParams((location.hash.split("?")[1] || "")).get("task");
  const tasks = JSON.parse(localStorage.getItem(TASKS_KEY) || "[]");
  let task = tasks.find((x) => x.task_id === taskId);
  try {
    task = await api.svc("verify", `/tasks/${encodeURIComponent(taskId)}`);
  } catch {
    /* offline: what the list showed */
  }
  if (!task) {
    body.append(empty(t("hh.no-tasks")));
    return;
  }
  const c = task.case || {};
  const head = el(
    "div",
    { class: "card hh-card" },
    el("b", { "data-testid": "hh-verify-case" }, task.case_id),
    el("div", {}, app.categoryName(c.category_code)),
    el("div", { class: "muted small" }, [c.address, c.result ? `${t("form.result")}: ${c.result}` : null].filter(Boolean).join(" · ")),
  );
  const photos = el("div", { "data-testid": "hh-verify-photos" });
  try {
    photos.append(beforeAfter(await api.svc("intake", `/cases/${encodeURIComponent(task.case_id)}`)));
  } catch {
    photos.append(el("div", { class: "muted" }, t("hh.photos-later")));
  }
  const photo = photoInput("hh-verify-camera");
  const notes = el("textarea", { rows: 2, placeholder: t("form.notes"), "data-testid": "hh-verify-notes" });
  // a confirmation (核实, before acceptance) says whether the problem is there; a
  // verification (核查) whether the result holds
  const confirming = task.purpose === "confirmation";
  const decide = (passed) => async (e) => {
    if (passed && !photo.file() && !confirming) {
      toast(t("hh.photo-needed"), "error");
      return;
    }
    if (!passed && !notes.value.trim()) {
      toast(t("hh.notes-needed"), "error");
      return;
    }
    e.target.disabled = true;
    let where = null;
    try {
      where = await position();
    } catch {
      where = null;
    }
    const verdict = {
      [confirming ? "confirmed" : "passed"]: passed,
      notes: notes.value.trim() || null,
      position: where ? { lat: where.lat, lon: where.lon } : null,
    };
    await enqueue("verification", verdict, photo.file(), {
      task_id: task.task_id,
      case_id: task.case_id,
      endpoint: confirming ? "confirmation" : "verification",
    });
    toast(online() ? t("hh.sending") : t("hh.saved-offline"));
    location.hash = "#/field/tasks";
    if (online()) flush(refresh);
  };
  body.append(
    head,
    photos,
    el("div", { class: "card hh-card" }, el("div", { class: "hh-step" }, t("hh.site-photo")), photo.node, notes),
    el(
      "div",
      { class: "hh-decide" },
      el("button", { class: "primary", "data-testid": "hh-pass", onclick: decide(true) }, t(confirming ? "hh.confirmed" : "hh.pass")),
      el("button", { class: "danger", "data-testid": "hh-fail", onclick: decide(false) }, t(confirming ? "hh.refuted" : "hh.fail")),
    ),
  );
}

async function renderOutbox(body) {
  const all = (await items()).reverse();
  clear(
    body,
    el("p", { class: "muted" }, t("hh.outbox-hint")),
    all.length
      ? all.map((i) =>
          el(
            "div",
            { class: `card hh-item st-${i.state}`, "data-testid": "hh-outbox-item", "data-state": i.state, "data-kind": i.kind },
            el("b", {}, t(i.kind === "report" ? "hh.report" : "hh.verify"), " · ", t(`hh.state.${i.state}`)),
            el("div", { class: "muted small" }, `${when(i.created_at)} · ${i.case_id || i.task_id || ""} · ${i.id}`),
            i.error && i.state !== "sent" ? el("div", { class: "muted small" }, i.error) : null,
          ),
        )
      : empty(t("hh.outbox-empty")),
  );
}
