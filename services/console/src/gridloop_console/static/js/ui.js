// Small DOM helpers shared by the screens.
import { lang, t } from "./i18n.js";

// el("div", {class: "x", "data-testid": "y", onclick: fn}, child, "text", ...)
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
    else if (k === "class") node.className = v;
    else if (k === "value") node.value = v;
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

export function option(value, label, selected) {
  return el("option", { value, selected: selected ? true : undefined }, label);
}

export function select(attrs, options, current) {
  return el(
    "select",
    attrs,
    options.map(([v, label]) => option(v, label, String(v) === String(current ?? ""))),
  );
}

const TZ = "Asia/Shanghai";

export function when(value) {
  if (!value) return "—";
  const d = new Date(value);
  if (Number.isNaN(d.getTime())) return String(value);
  return d.toLocaleString(lang === "en" ? "en-GB" : "zh-CN", {
    timeZone: TZ,
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
  });
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const neg = seconds < 0;
  let s = Math.abs(Math.round(seconds));
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s - h * 3600) / 60);
  const parts = lang === "en" ? [d && `${d}d`, h && `${h}h`, `${m}m`] : [d && `${d}天`, h && `${h}小时`, `${m}分`];
  return (neg ? "-" : "") + parts.filter(Boolean).join(" ");
}

export function today() {
  // The city's local date.
  return new Intl.DateTimeFormat("en-CA", { timeZone: TZ }).format(new Date());
}

export function statusBadge(status, overdue) {
  return el(
    "span",
    { class: `badge st-${status}${overdue ? " overdue" : ""}`, "data-status": status },
    t(`status.${status}`),
    overdue ? ` · ${t("status.overdue")}` : "",
  );
}

let toastTimer = null;
export function toast(text, kind = "ok") {
  const box = document.getElementById("toast");
  if (!box) return;
  box.textContent = text;
  box.className = `toast show ${kind}`;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (box.className = "toast"), 3500);
}

// Run an action from a button: disable it meanwhile, tell the user how it went.
export async function act(button, fn, after) {
  if (button) button.disabled = true;
  try {
    const result = await fn();
    toast(t("toast.done"));
    if (after) await after(result);
    return result;
  } catch (err) {
    toast(`${t("toast.failed")}: ${err.message}`, "error");
    return undefined;
  } finally {
    if (button && button.isConnected) button.disabled = false;
  }
}

export function field(label, input) {
  return el("label", { class: "field" }, el("span", {}, label), input);
}

export function empty(text) {
  return el("div", { class: "empty" }, text);
}
