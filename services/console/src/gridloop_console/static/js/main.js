// The console's shell: sign-in, the role-aware header and tabs, hash routing, the live feed.
import { renderAdmin } from "./admin.js";
import { api, follow, session } from "./api.js";
import { renderCase } from "./casefile.js";
import { isPhone, renderHandheld } from "./handheld.js";
import { lang, named, setLang, t } from "./i18n.js";
import { renderMap } from "./map.js";
import { keepSending } from "./outbox.js";
import { renderPerformance } from "./perf.js";
import { renderQueues } from "./queues.js";
import { renderReport } from "./report.js";
import { clear, el, field, select } from "./ui.js";

const root = document.getElementById("app");

// What every screen may use: configuration, the city's names, the live feed.
export const app = {
  config: null,
  city: null,
  categories: new Map(),
  departments: new Map(),
  subdistricts: new Map(),
  communities: new Map(),
  listeners: new Set(),
  live: false,
  stopFeed: () => {},
  // A screen's refresh on live events, at most every 400 ms; removed when the screen goes.
  onLive(fn) {
    let timer = null;
    const wrapped = (event) => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        if (app.listeners.has(wrapped)) fn(event);
      }, 400);
    };
    app.listeners.add(wrapped);
    return wrapped;
  },
  categoryName(code) {
    return code ? named(app.categories.get(code)) || code : "—";
  },
  deptName(code) {
    return code ? named(app.departments.get(code)) || code : "—";
  },
  areaName(code) {
    if (!code) return "—";
    const found = app.communities.get(code) || app.subdistricts.get(code);
    return found ? found.name : code;
  },
  go(hash) {
    if (location.hash === hash) route();
    else location.hash = hash;
  },
};

const TABS = [
  ["map", "tab.map", () => true],
  ["queues", "tab.queues", () => true],
  ["case", "tab.case", () => true],
  ["field", "tab.field", () => session.has("supervisor")],
  ["report", "tab.report", () => session.has("supervisor")],
  ["performance", "tab.performance", () => true],
  ["admin", "tab.admin", () => session.user.roles.includes("admin")],
];

async function loadCity() {
  const city = await api.get("/api/city");
  app.city = city;
  app.categories = new Map(city.categories.map((c) => [c.code, c]));
  app.departments = new Map(city.departments.map((d) => [d.code, d]));
  app.subdistricts = new Map(city.subdistricts.map((s) => [s.code, s]));
  app.communities = new Map(city.communities.map((c) => [c.code, c]));
}

function header() {
  const user = session.user;
  const liveDot = el(
    "span",
    { class: `live ${app.live ? "on" : "off"}`, id: "live", "data-testid": "live" },
    app.live ? t("live.on") : t("live.off"),
  );
  return el(
    "header",
    { class: "topbar" },
    el(
      "div",
      { class: "brand" },
      el("div", { class: "logo" }, "◎"),
      el(
        "div",
        {},
        el("div", { class: "title" }, t("app.title")),
        el("div", { class: "subtitle" }, `${named(app.config.district)} · ${t("app.subtitle")}`),
      ),
    ),
    user
      ? el(
          "nav",
          { class: "tabs" },
          TABS.filter(([, , visible]) => visible()).map(([id, key]) =>
            el("a", { href: `#/${id}`, class: "tab", "data-tab": id, "data-testid": `tab-${id}` }, t(key)),
          ),
          // the wall screen (大屏) of the command centre: its own page, same session
          session.has("operator", "shift-leader", "dispatcher", "evaluator")
            ? el("a", { href: "/wall.html", class: "tab", "data-testid": "tab-wall" }, t("tab.wall"))
            : null,
        )
      : el("div", { class: "spacer" }),
    el(
      "div",
      { class: "who" },
      user ? liveDot : null,
      user
        ? el(
            "span",
            { class: "user", "data-testid": "current-user", "data-user": user.id },
            el("b", {}, user.name || user.id),
            " ",
            user.roles.map((r) => el("span", { class: "role" }, t(`role.${r}`))),
            user.dept ? el("span", { class: "role dept" }, app.deptName(user.dept)) : null,
          )
        : null,
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
      user
        ? el(
            "button",
            {
              class: "ghost",
              "data-testid": "logout",
              onclick: () => {
                app.stopFeed();
                session.clear();
                shell();
              },
            },
            t("logout"),
          )
        : null,
    ),
  );
}

function loginScreen() {
  const cfg = app.config;
  const box = el("form", { class: "login card", "data-testid": "login-form" });
  const error = el("div", { class: "error", "data-testid": "login-error" });
  const dev = cfg.auth_mode === "dev";
  let userSelect = null;
  let roleSelect = null;
  const token = el("textarea", { rows: 4, "data-testid": "login-token", placeholder: "eyJ…" });
  if (dev) {
    const users = cfg.demo_users;
    const roles = cfg.roles.filter((r) => users.some((u) => u.roles.includes(r)));
    const fill = (role) => {
      const mine = users.filter((u) => u.roles.includes(role));
      clear(
        userSelect,
        mine.map((u) =>
          el("option", { value: u.id }, `${u.name} (${u.id})${u.dept ? " · " + u.dept : ""}`),
        ),
      );
    };
    roleSelect = select(
      { "data-testid": "login-role", onchange: (e) => fill(e.target.value) },
      roles.map((r) => [r, t(`role.${r}`)]),
      roles[0],
    );
    userSelect = el("select", { "data-testid": "login-user" });
    fill(roles[0]);
  }
  const password = el("input", { type: "password", "data-testid": "login-password", autocomplete: "current-password" });
  box.append(
    el("h2", {}, t("login.title")),
    el("p", { class: "hint" }, dev ? t("login.dev") : t("login.jwt")),
    dev ? field(t("login.role"), roleSelect) : null,
    dev ? field(t("login.user"), userSelect) : null,
    dev ? field(t("login.password"), password) : field(t("login.token"), token),
    el("button", { type: "submit", class: "primary wide", "data-testid": "login-submit" }, t("login.submit")),
    error,
  );
  box.addEventListener("submit", async (e) => {
    e.preventDefault();
    error.textContent = "";
    try {
      const body = dev
        ? { user_id: userSelect.value, password: password.value }
        : { token: token.value.trim() };
      const answer = await api.post("/api/login", body);
      session.save(answer.token, answer.user);
      await start();
    } catch (err) {
      error.textContent = `${t("login.failed")}: ${err.message}`;
    }
  });
  return el(
    "div",
    { class: "login-page" },
    el(
      "div",
      { class: "login-hero" },
      el("div", { class: "hero-title" }, t("app.title")),
      el("div", { class: "hero-sub" }, `${named(cfg.district)} · ${t("app.subtitle")}`),
      el(
        "ul",
        { class: "hero-steps" },
        ["ev.reported", "ev.accepted", "ev.dispatched", "ev.handled", "ev.verified", "ev.closed"].map((k) =>
          el("li", {}, t(k)),
        ),
      ),
      // Public: what integrators and departments' systems send and receive on the bus.
      el("a", { class: "hero-link", href: "/contract/", "data-testid": "contract-link" }, t("login.contract")),
    ),
    box,
  );
}

let main = null;

function shell() {
  document.title = t("app.title");
  if (!session.user) {
    clear(root, header(), loginScreen(), el("div", { id: "toast", class: "toast" }));
    return;
  }
  main = el("main", { class: "content" });
  clear(root, header(), main, el("div", { id: "toast", class: "toast" }));
  route();
}

function route() {
  if (!session.user || !main) return;
  app.listeners.clear();
  // a supervisor on a phone starts on the handheld (城管通)
  const home = session.has("supervisor") && isPhone() ? "#/field/report" : "#/map";
  const [path] = (location.hash || home).split("?");
  const [, tab = "map", arg] = path.split("/");
  for (const a of document.querySelectorAll(".tab")) a.classList.toggle("active", a.dataset.tab === tab);
  const screen = el("div", { class: `screen screen-${tab}` });
  clear(main, screen);
  const screens = {
    map: () => renderMap(screen, app),
    queues: () => renderQueues(screen, app),
    case: () => renderCase(screen, app, arg ? decodeURIComponent(arg) : null),
    performance: () => renderPerformance(screen, app),
    report: () => renderReport(screen, app),
    field: () => renderHandheld(screen, app, arg || "report"),
    admin: () => renderAdmin(screen),
  };
  (screens[tab] || screens.map)();
}

function setLive(on) {
  app.live = on;
  const dot = document.getElementById("live");
  if (dot) {
    dot.className = `live ${on ? "on" : "off"}`;
    dot.textContent = on ? t("live.on") : t("live.off");
  }
}

let stopSending = () => {};

async function start() {
  await loadCity();
  app.stopFeed();
  app.stopFeed = follow((event) => {
    for (const fn of [...app.listeners]) fn(event);
  }, setLive);
  shell();
  // the handheld's outbox: what waits is sent when the signal is back
  stopSending();
  stopSending = session.has("supervisor") ? keepSending(() => {}) : () => {};
}

window.addEventListener("hashchange", route);
window.addEventListener("gridloop:signed-out", () => {
  app.stopFeed();
  shell();
});

async function boot() {
  setLang(lang);
  // installable and usable without signal: the shell comes from the service worker's cache
  if ("serviceWorker" in navigator) navigator.serviceWorker.register("/sw.js").catch(() => {});
  app.config = await api.get("/api/config");
  if (session.load()) {
    try {
      await start();
      return;
    } catch {
      session.clear();
    }
  }
  shell();
}

boot();
