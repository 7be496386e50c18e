// 上报: a supervisor files a patrol report, placing it with a click on the map.
import { api, commandId } from "./api.js";
import { t } from "./i18n.js";
import { createMap } from "./map.js";
import { act, clear, el, field, select } from "./ui.js";

export async function renderReport(screen, app) {
  const stage = el("section", { class: "map-stage" });
  const side = el("aside", { class: "panel side report-form", "data-testid": "report-form" });
  screen.append(el("div", { class: "map-layout" }, side, stage));

  const category = select(
    { "data-testid": "report-category" },
    app.city.categories.map((k) => [k.code, `${k.code} ${app.categoryName(k.code)}`]),
    "E0104",
  );
  const description = el("textarea", { rows: 3, "data-testid": "report-description" });
  const lat = el("input", { type: "number", step: "0.000001", "data-testid": "report-lat" });
  const lon = el("input", { type: "number", step: "0.000001", "data-testid": "report-lon" });
  const address = el("input", { type: "text", "data-testid": "report-address" });
  const urgency = select({ "data-testid": "report-urgency" }, [["normal", t("form.normal")], ["urgent", t("form.urgent")]], "normal");
  const photo = el("input", { type: "url", placeholder: "https://…", "data-testid": "report-photo" });
  const cellName = el("div", { class: "muted", "data-testid": "report-cell" }, t("report.pick"));
  const result = el("div", { class: "result", "data-testid": "report-result" });

  const submit = el("button", { class: "primary wide", "data-testid": "report-submit" }, t("act.report"));
  submit.addEventListener("click", () =>
    act(
      submit,
      () => {
        const body = {
          channel: "patrol",
          external_id: `console-${commandId()}`,
          description: description.value || app.categoryName(category.value),
          category_code: category.value,
          urgency: urgency.value,
          attachments: photo.value ? [{ url: photo.value, kind: "photo" }] : [],
        };
        if (lat.value && lon.value) body.location = { lat: Number(lat.value), lon: Number(lon.value) };
        if (address.value) body.address = address.value;
        return api.post("/api/intake/reports", body);
      },
      (answer) => {
        clear(
          result,
          `${t("report.done")} `,
          el("a", { href: `#/case/${encodeURIComponent(answer.case_id)}`, "data-testid": "report-case-id" }, answer.case_id),
          " · ",
          t(`status.${answer.status}`),
        );
      },
    ),
  );

  side.append(
    el("h3", {}, t("report.title")),
    cellName,
    field(t("form.category"), category),
    field(t("form.description"), description),
    el("div", { class: "two" }, field(t("form.lat"), lat), field(t("form.lon"), lon)),
    field(t("form.address"), address),
    field(t("form.urgency"), urgency),
    field(t("form.photo"), photo),
    submit,
    result,
  );

  await createMap(stage, app, {
    onCell: (props, [x, y]) => {
      lon.value = x.toFixed(6);
      lat.value = y.toFixed(6);
      if (props) cellName.textContent = `${props.name} · ${props.community_name} · ${props.subdistrict_name}`;
    },
  });
}
