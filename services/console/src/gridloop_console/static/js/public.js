// The residents' page (/public/, no login): the map of the public cases, the report form, a
// case's status and steps, and the rating by a mail's link. Everything through the console's
// /api/public/… (intake's public endpoints); Chinese by default, English with one click.
import { api } from "./api.js";
import { lang, named, setLang, t } from "./i18n.js";
import { createMap } from "./map.js";
import { clear, duration, el, empty, select, when } from "./ui.js";

const root = document.getElementById("app");
const CELLS = "/api/public/cells";
const RATINGS = ["A", "B", "C", "D"];
// The form's fields; an answer naming another (Open311's own names) is shown with the form.
const FIELDS = ["category", "description", "location", "address", "email", "name", "phone"];

const page = {
  config: null,
  categories: new Map(),
  tile_url: null,
  categoryName(code) {
    return code ? named(page.categories.get(code)) || code : "—";
  },
};

function header() {
  const d = page.config.district;
  return el(
    "header",
    { class: "topbar" },
    el(
      "div",
      { class: "brand" },
      el("div", { class: "logo", "aria-hidden": "true" }, "◎"),
      el(
        "div",
        {},
        el("div", { class: "title" }, t("pub.title")),
        el("div", { class: "subtitle" }, `${lang === "en" && d.name_en ? d.name_en : d.name} · ${t("pub.subtitle")}`),
      ),
    ),
    el(
      "nav",
      { class: "tabs", "aria-label": t("pub.title") },
      el("a", { href: "#/map", class: "tab", "data-tab": "map", "data-testid": "pub-tab-map" }, t("pub.tab.map")),
      el("a", { href: "#/report", class: "tab", "data-tab": "report", "data-testid": "pub-tab-report" }, t("pub.tab.report")),
    ),
    el(
      "div",
      { class: "who" },
      el(
        "button",
        {
          class: "ghost",
          "data-testid": "lang-switch",
          onclick: () => {
            setLang(lang === "zh" ? "en" : "zh");
            shell();
          },
        },
        t("lang.switch"),
      ),
    ),
  );
}

let main = null;

function shell() {
  document.title = t("pub.title");
  main = el("main", { class: "content", id: "main" });
  clear(root, header(), main);
  route();
}

function route() {
  if (!main) return;
  const [, screen = "map", arg] = (location.hash || "#/map").split("?")[0].split("/");
  for (const a of document.querySelectorAll(".tab")) a.classList.toggle("active", a.dataset.tab === screen);
  const box = el("div", { class: `screen pub-${screen}` });
  clear(main, box);
  const screens = {
    map: () => renderMap(box),
    report: () => renderReport(box),
    case: () => renderCase(box, decodeURIComponent(arg || "")),
    rate: () => renderRating(box, decodeURIComponent(arg || "")),
  };
  (screens[screen] || screens.map)().catch((err) => clear(box, el("div", { class: "card error", role: "alert" }, err.message)));
}

// -- the map of public cases -------------------------------------------------------------------
function age(iso) {
  if (!iso) return "—";
  return duration((Date.now() - new Date(iso).getTime()) / 1000);
}

async function renderMap(box) {
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const state = { category: params.get("category") || "", status: params.get("status") || "" };
  const side = el("aside", { class: "panel side", "aria-label": t("pub.cases") });
  const stage = el("section", { class: "map-stage", "aria-label": t("pub.map") });
  box.append(el("div", { class: "map-layout" }, side, stage));
  const map = await createMap(stage, page, { cellsUrl: CELLS });

  const categories = [["", t("filter.all")], ...[...page.categories.values()].map((c) => [c.code, `${c.code} ${named(c)}`])];
  const catSel = select({ "data-testid": "pub-filter-category" }, categories, state.category);
  const statSel = select(
    { "data-testid": "pub-filter-status" },
    [["", t("filter.all")], ["open", t("pub.status.open")], ["closed", t("pub.status.closed")]],
    state.status,
  );
  const count = el("div", { class: "count", "data-testid": "pub-count", "aria-live": "polite" });
  const list = el("div", { class: "case-list", "data-testid": "pub-list" });
  for (const s of [catSel, statSel])
    s.addEventListener("change", () => {
      state.category = catSel.value;
      state.status = statSel.value;
      load();
    });
  side.append(
    el("h3", {}, t("pub.cases")),
    el("p", { class: "muted small" }, t("pub.cases.hint")),
    el(
      "div",
      { class: "filters" },
      el("label", { class: "field" }, el("span", {}, t("filter.category")), catSel),
      el("label", { class: "field" }, el("span", {}, t("filter.status")), statSel),
    ),
    el("a", { class: "button primary", href: "#/report", "data-testid": "pub-report-link" }, t("pub.report.cta")),
    count,
    list,
    el(
      "div",
      { class: "legend" },
      ["open", "closed"].map((s) =>
        el("span", { class: "legend-item" }, el("i", { class: `dot-${s}` }), t(`pub.status.${s}`)),
      ),
    ),
  );

  async function load() {
    const q = new URLSearchParams();
    if (state.category) q.set("service_code", state.category);
    if (state.status) q.set("status", state.status);
    const found = await api.get(`/api/public/requests${q.toString() ? "?" + q : ""}`);
    const cases = found.map((r) => ({
      case_id: r.service_request_id,
      status: r.status,
      category_code: r.service_code,
      location: r.lat === null || r.lat === undefined ? null : { lat: r.lat, lon: r.long },
      requested: r.requested_datetime,
      description: r.description,
    }));
    count.textContent = `${t("pub.cases")}: ${cases.length}`;
    const open = (c) => (location.hash = `#/case/${encodeURIComponent(c.case_id)}`);
    map.setMarkers(cases, open);
    clear(
      list,
      cases.length
        ? cases.slice(0, 300).map((c) =>
            el(
              "a",
              { class: "case-row button", href: `#/case/${encodeURIComponent(c.case_id)}`, "data-testid": `pub-case-${c.case_id}`, "data-status": c.status },
              el("div", { class: "row-top" }, el("b", {}, page.categoryName(c.category_code)), statusTag(c.status)),
              el("div", { class: "row-sub" }, c.description || ""),
              el("div", { class: "row-sub muted" }, `${c.case_id} · ${t("pub.age")} ${age(c.requested)}`),
            ),
          )
        : empty(t("map.none")),
    );
  }
  await load();
}

function statusTag(status) {
  return el("span", { class: `badge st-${status === "open" ? "accepted" : status}`, "data-status": status }, t(`pub.status.${status}`));
}

// -- the report form ---------------------------------------------------------------------------
function errorsOf(err) {
  // {field: reason} from a refusal (`field`) or a pydantic answer (`loc`)
  const out = {};
  const detail = Array.isArray(err.detail) ? err.detail : [];
  for (const d of detail) {
    let name = d.field || (Array.isArray(d.loc) ? String(d.loc[d.loc.length - 1]) : "");
    if (name === "lat" || name === "lon" || name === "long") name = "location";
    if (!FIELDS.includes(name)) name = "form";
    if (!out[name]) out[name] = d.reason || d.msg || err.message;
  }
  if (!Object.keys(out).length) out.form = err.message;
  return out;
}

function labelled(name, label, input, hint) {
  const id = `pub-${name}`;
  input.id = id;
  input.setAttribute("aria-describedby", `${id}-error`);
  return el(
    "div",
    { class: "field", "data-field": name },
    el("label", { for: id }, label),
    input,
    hint ? el("small", { class: "muted" }, hint) : null,
    el("div", { class: "error field-error", id: `${id}-error`, role: "alert", "data-testid": `err-${name}` }),
  );
}

async function renderReport(box) {
  const form = el("form", { class: "panel side report-form", "data-testid": "pub-report-form", novalidate: true });
  const stage = el("section", { class: "map-stage", "aria-label": t("pub.map") });
  box.append(el("div", { class: "map-layout" }, form, stage));

  const cats = [...page.categories.values()];
  const category = select(
    { "data-testid": "pub-category", required: true },
    [["", t("pub.choose")], ...cats.map((k) => [k.code, named(k)])],
    "",
  );
  const description = el("textarea", { rows: 3, "data-testid": "pub-description", maxlength: 2000, required: true });
  const lat = el("input", { type: "hidden", "data-testid": "pub-lat" });
  const lon = el("input", { type: "hidden", "data-testid": "pub-lon" });
  const where = el("output", { class: "muted", "data-testid": "pub-where" }, t("pub.where.pick"));
  const locate = el("button", { type: "button", "data-testid": "pub-locate" }, t("pub.where.mine"));
  const address = el("input", { type: "text", "data-testid": "pub-address", maxlength: 200, autocomplete: "street-address" });
  const email = el("input", { type: "email", "data-testid": "pub-email", maxlength: 254, autocomplete: "email" });
  const name = el("input", { type: "text", "data-testid": "pub-name", maxlength: 64, autocomplete: "name" });
  const phone = el("input", { type: "tel", "data-testid": "pub-phone", maxlength: 32, autocomplete: "tel" });
  const formError = el("div", { class: "error", role: "alert", "data-testid": "err-form" });
  const submit = el("button", { type: "submit", class: "primary wide", "data-testid": "pub-submit" }, t("pub.send"));

  const setPoint = (lonlat, text) => {
    lon.value = lonlat[0].toFixed(6);
    lat.value = lonlat[1].toFixed(6);
    where.textContent = text;
  };
  locate.addEventListener("click", () => {
    if (!navigator.geolocation) return;
    where.textContent = t("hh.locating");
    navigator.geolocation.getCurrentPosition(
      (pos) => setPoint([pos.coords.longitude, pos.coords.latitude], `${pos.coords.latitude.toFixed(5)}, ${pos.coords.longitude.toFixed(5)}`),
      () => (where.textContent = t("hh.no-gps")),
      { enableHighAccuracy: true, timeout: 10000 },
    );
  });

  form.append(
    el("h3", {}, t("pub.report.title")),
    el("p", { class: "muted small" }, t("pub.report.hint")),
    labelled("category", t("form.category"), category),
    labelled("description", t("form.description"), description),
    el(
      "div",
      { class: "field", "data-field": "location" },
      el("span", {}, t("pub.where")),
      where,
      locate,
      lat,
      lon,
      el("div", { class: "error field-error", role: "alert", "data-testid": "err-location" }),
    ),
    labelled("address", t("form.address"), address, t("pub.address.hint")),
    labelled("email", t("pub.email"), email, t("pub.email.hint")),
    labelled("name", t("pub.name"), name),
    labelled("phone", t("pub.phone"), phone),
    el("p", { class: "muted small" }, t("pub.photo.later")),
    submit,
    formError,
  );

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    for (const box of form.querySelectorAll(".field-error")) box.textContent = "";
    for (const f of form.querySelectorAll(".field.invalid")) f.classList.remove("invalid");
    formError.textContent = "";
    const body = {
      category: category.value,
      description: description.value.trim(),
      lang,
    };
    if (lat.value && lon.value) Object.assign(body, { lat: Number(lat.value), lon: Number(lon.value) });
    for (const [k, input] of [["address", address], ["email", email], ["name", name], ["phone", phone]])
      if (input.value.trim()) body[k] = input.value.trim();
    submit.disabled = true;
    try {
      const answer = await api.post("/api/public/requests", body);
      const id = answer.service_request_id;
      // the form gives way to the answer: the tracking number and where to follow it
      clear(
        form,
        el("h3", {}, t("pub.sent")),
        el(
          "div",
          { class: "result", "data-testid": "pub-result", role: "status" },
          el("p", {}, `${t("pub.tracking")}: `, el("b", { "data-testid": "pub-request-id" }, id)),
          answer.service_notice ? el("p", { class: "muted" }, answer.service_notice) : null,
          body.email ? el("p", { class: "muted" }, t("pub.sent.mail")) : null,
          el("a", { href: `#/case/${encodeURIComponent(id)}`, class: "button primary", "data-testid": "pub-follow" }, t("pub.follow")),
        ),
        el("button", { type: "button", "data-testid": "pub-another", onclick: () => route() }, t("pub.another")),
      );
      form.querySelector("a.button").focus();
    } catch (err) {
      const found = errorsOf(err);
      for (const [k, reason] of Object.entries(found)) {
        const target = form.querySelector(`[data-testid="err-${k}"]`) || formError;
        // the page's own words for a field it knows; the service's reason beside them
        const known = t(`pub.err.${k}`);
        target.textContent = known === `pub.err.${k}` ? reason : known;
        target.title = reason;
        target.dataset.reason = reason;
        const f = form.querySelector(`.field[data-field="${k}"]`);
        if (f) f.classList.add("invalid");
      }
      const first = form.querySelector(".field.invalid input, .field.invalid select, .field.invalid textarea, .field.invalid button");
      if (first) first.focus();
    } finally {
      submit.disabled = false;
    }
  });

  await createMap(stage, page, {
    cellsUrl: CELLS,
    onCell: (props, lonlat) =>
      setPoint(lonlat, props ? `${props.name} · ${props.community_name || ""} · ${props.subdistrict_name || ""}` : lonlat.map((v) => v.toFixed(5)).join(", ")),
  });
}

// -- a case's status and steps -------------------------------------------------------------------
function steps(list) {
  return el(
    "ol",
    { class: "timeline", "data-testid": "pub-steps" },
    list.map((s) =>
      el(
        "li",
        { class: `tl tl-${s.step}`, "data-step": s.step },
        el("div", { class: "tl-dot" }),
        el("div", { class: "tl-body" }, el("div", { class: "tl-head" }, el("b", {}, t(`pub.step.${s.step}`))), el("div", { class: "tl-who" }, when(s.at))),
      ),
    ),
  );
}

function kv(k, v, testid) {
  return el("div", { class: "kv" }, el("span", { class: "k" }, k), el("span", { class: "v", "data-testid": testid }, v));
}

function caseCard(c) {
  return el(
    "section",
    { class: "card", "aria-label": c.case_id },
    el(
      "div",
      { class: "card-head" },
      el("h3", {}, `${t("pub.tracking")} `, el("span", { "data-testid": "pub-case-id" }, c.case_id)),
      el(
        "span",
        { class: `badge st-${c.status}`, "data-testid": "pub-case-status", "data-status": c.status },
        t(`pub.status.${c.open ? "open" : c.status}`),
      ),
    ),
    el(
      "div",
      { class: "kv-grid" },
      kv(t("form.category"), lang === "en" && c.category_name_en ? c.category_name_en : c.category_name || "—"),
      kv(t("pub.reported"), when(c.reported_at)),
      kv(t("form.description"), c.description || "—"),
      c.address ? kv(t("form.address"), c.address) : kv(t("pub.near"), `${c.lat}, ${c.lon}`),
      c.closed_at ? kv(t("pub.closed"), when(c.closed_at)) : null,
      c.closed_at ? kv(t("form.rating"), c.rated ? t("pub.rated") : t("pub.not-rated"), "pub-case-rated") : null,
    ),
  );
}

async function renderCase(box, id) {
  const c = await api.get(`/api/public/cases/${encodeURIComponent(id)}`).catch((err) => {
    if (err.status === 404) return null;
    throw err;
  });
  if (!c) {
    box.append(el("div", { class: "card", "data-testid": "pub-case-missing" }, t("pub.case.missing")));
    return;
  }
  box.append(
    el(
      "div",
      { class: "pub-narrow" },
      caseCard(c),
      el("section", { class: "card" }, el("h3", {}, t("pub.steps")), steps(c.steps)),
      !c.open && !c.rated ? el("section", { class: "card muted", "data-testid": "pub-rate-hint" }, t("pub.rate.by-mail")) : null,
    ),
  );
}

// -- the rating by a mail's link -----------------------------------------------------------------
async function renderRating(box, token) {
  const link = await api.get(`/api/public/ratings/${encodeURIComponent(token)}`).catch((err) => ({ error: err }));
  if (link.error) {
    box.append(el("div", { class: "card error", role: "alert", "data-testid": "pub-link-bad" }, `${t("pub.link.bad")} (${link.error.message})`));
    return;
  }
  const c = await api.get(`/api/public/cases/${encodeURIComponent(link.case_id)}`).catch(() => null);
  const wrap = el("div", { class: "pub-narrow" });
  box.append(wrap);
  if (c) wrap.append(caseCard(c));
  wrap.append(
    el(
      "section",
      { class: "card" },
      el("h3", {}, t("pub.result")),
      el("p", { "data-testid": "pub-result-text" }, link.result || "—"),
    ),
  );
  const card = el("section", { class: "card", "data-testid": "pub-rating" });
  wrap.append(card);
  if (c) wrap.append(el("section", { class: "card" }, el("h3", {}, t("pub.steps")), steps(c.steps)));

  const done = (level) =>
    clear(
      card,
      el("h3", {}, t("pub.rate.title")),
      el("p", { "data-testid": "pub-rating-done", "data-rating": level }, `${t("pub.rate.thanks")}: ${t(`pub.level.${level}`)}`),
      el("a", { href: `#/case/${encodeURIComponent(link.case_id)}`, "data-testid": "pub-case-link" }, t("pub.follow")),
    );
  if (link.rated) return done(link.rated);
  if (!link.current) {
    clear(card, el("p", { "data-testid": "pub-link-old" }, t("pub.link.old")));
    return;
  }
  const fieldset = el(
    "fieldset",
    { class: "levels", "data-field": "rating" },
    el("legend", {}, t("pub.rate.question")),
    RATINGS.map((level) =>
      el(
        "label",
        { class: "level" },
        el("input", { type: "radio", name: "rating", value: level, "data-testid": `pub-level-${level}`, required: true }),
        ` ${level} · ${t(`pub.level.${level}`)}`,
      ),
    ),
    el("div", { class: "error field-error", role: "alert", "data-testid": "err-rating" }),
  );
  fieldset.addEventListener("change", () => (fieldset.querySelector(".error").textContent = ""));
  const comment = el("textarea", { rows: 3, maxlength: 1000, "data-testid": "pub-comment" });
  const error = el("div", { class: "error", role: "alert", "data-testid": "err-form" });
  const send = el("button", { type: "submit", class: "primary", "data-testid": "pub-rate-submit" }, t("pub.rate.send"));
  const form = el("form", { novalidate: true }, fieldset, labelled("comment", t("pub.comment"), comment), send, error);
  clear(card, el("h3", {}, t("pub.rate.title")), form);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    for (const b of form.querySelectorAll(".error")) b.textContent = "";
    const chosen = form.querySelector('input[name="rating"]:checked');
    if (!chosen) {
      form.querySelector('[data-testid="err-rating"]').textContent = t("pub.rate.choose");
      return;
    }
    send.disabled = true;
    try {
      const body = { token, rating: chosen.value };
      if (comment.value.trim()) body.comment = comment.value.trim();
      await api.post("/api/public/ratings", body);
      done(chosen.value);
    } catch (err) {
      const d = Array.isArray(err.detail) ? err.detail[0] || {} : {};
      const name = d.field || (Array.isArray(d.loc) ? String(d.loc[d.loc.length - 1]) : "");
      const target = form.querySelector(`[data-testid="err-${name}"]`) || error;
      target.textContent = err.message;
    } finally {
      if (send.isConnected) send.disabled = false;
    }
  });
}

window.addEventListener("hashchange", route);

async function boot() {
  setLang(lang);
  page.config = await api.get("/api/public/config");
  page.categories = new Map(page.config.categories.map((c) => [c.code, c]));
  shell();
}

boot().catch((err) => clear(root, el("div", { class: "card error", role: "alert" }, err.message)));
