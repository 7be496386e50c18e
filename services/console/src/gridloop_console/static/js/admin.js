// The admin screen (管理): how far ahead each deadline-computing service's working calendar is
// official (GET /admin/calendar), with the alarm raised months before it runs out.
import { api } from "./api.js";
import { t } from "./i18n.js";
import { clear, el } from "./ui.js";

// the services that compute deadlines (gridloop_runtime.calendarwatch)
const WITH_CALENDAR = ["intake", "dispatch", "handling", "verify"];

export function renderAdmin(screen) {
  const body = el("tbody", {});
  const note = el("p", { class: "muted", "data-testid": "calendar-note" });
  screen.append(
    el(
      "section",
      { class: "card", "data-testid": "calendar-horizon" },
      el("h3", {}, t("admin.calendar")),
      el(
        "table",
        { class: "grid-table" },
        el(
          "thead",
          {},
          el(
            "tr",
            {},
            ["admin.service", "admin.last_known", "admin.days_left", "admin.alarm"].map((k) =>
              el("th", {}, t(k)),
            ),
          ),
        ),
        body,
      ),
      note,
    ),
  );
  Promise.all(
    WITH_CALENDAR.map((svc) =>
      api.svc(svc, "/admin/calendar").then(
        (s) => s,
        (err) => ({ service: svc, error: err.message }),
      ),
    ),
  ).then((rows) => {
    clear(
      body,
      ...rows.map((s) =>
        el(
          "tr",
          { "data-testid": `calendar-${s.service}`, "data-alarm": s.alarm ? "on" : "off" },
          el("td", {}, s.service),
          el("td", {}, s.error ? "—" : s.last_known || "—"),
          el("td", {}, s.error ? "—" : String(s.days_left)),
          el(
            "td",
            {},
            s.error
              ? el("span", { class: "badge" }, s.error)
              : el(
                  "span",
                  { class: s.alarm ? "badge overdue" : "badge st-closed" },
                  s.alarm ? `${t("admin.alarm_on")} (< ${s.alarm_days})` : t("admin.alarm_off"),
                ),
          ),
        ),
      ),
    );
    const first = rows.find((s) => s.alarm && s.message);
    note.textContent = first ? first.message : "";
  });
}
