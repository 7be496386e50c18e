// Photos and voice notes from the evidence store, shown with the signed-in user's token: an
// <img> cannot send it, so each is fetched through the proxy and shown from a blob URL. The
// service decides who may see what (the case's rule; outside the command centre, no EXIF).
import { SignedOut, session } from "./api.js";
import { label, t } from "./i18n.js";
import { el } from "./ui.js";

const cache = new Map(); // url -> Promise<object URL>

export function blobUrl(path) {
  if (!session.token) return Promise.reject(new SignedOut());
  if (!cache.has(path)) {
    const headers = { Authorization: `Bearer ${session.token}` };
    cache.set(
      path,
      fetch(path, { headers }).then((r) => {
        if (!r.ok) throw new Error(`HTTP ${r.status}`);
        return r.blob().then((b) => URL.createObjectURL(b));
      }),
    );
    cache.get(path).catch(() => cache.delete(path));
  }
  return cache.get(path);
}

function distance(ref) {
  if (ref.distance_m === undefined || ref.distance_m === null) return null;
  const m = Number(ref.distance_m);
  return m >= 1000 ? `${(m / 1000).toFixed(1)} km` : `${Math.round(m)} m`;
}

// One attachment (an AttachmentRef from an event or a case): a thumbnail that opens the
// full photo, or an audio player; a photo taken far from the case's point is flagged.
export function attachment(ref, { service = "intake", testid = "photo" } = {}) {
  const base = `/api/${service}/attachments/${encodeURIComponent(ref.attachment_id)}`;
  const far = ref.far ? el("span", { class: "badge overdue far", "data-testid": `${testid}-far` }, `! ${t("photo.far")} ${distance(ref)}`) : null;
  if (ref.kind === "audio" || String(ref.content_type || "").startsWith("audio/")) {
    const audio = el("audio", { controls: true, preload: "none", "data-testid": `${testid}-audio` });
    blobUrl(base).then((u) => (audio.src = u)).catch(() => {});
    return el("figure", { class: "photo audio" }, audio, far);
  }
  const img = el("img", { alt: t("photo.alt"), loading: "lazy", "data-testid": `${testid}-img`, "data-attachment": ref.attachment_id });
  const link = el("a", { href: "#", class: "thumb", title: t("photo.open") }, img);
  blobUrl(`${base}/thumbnail`)
    .then((u) => {
      img.src = u;
      img.dataset.loaded = "true";
    })
    .catch(() => img.replaceWith(el("span", { class: "muted" }, t("photo.unavailable"))));
  link.addEventListener("click", async (e) => {
    e.preventDefault();
    try {
      lightbox(await blobUrl(base));
    } catch {
      /* the thumbnail says it is unavailable */
    }
  });
  return el("figure", { class: `photo${ref.far ? " is-far" : ""}`, "data-testid": testid }, link, far);
}

// Attachments given by address (a report's photo URL, a department's evidence link): each a
// link that opens it, named by its kind (照片 1, 录音 2); null when there are none.
export function links(list, testid = null) {
  const urls = (list || []).map((a) => (typeof a === "string" ? { url: a } : a)).filter((a) => a && a.url);
  if (!urls.length) return null;
  return el(
    "div",
    { class: "evidence", "data-testid": testid },
    urls.map((a, i) => el("a", { href: a.url, target: "_blank", rel: "noopener" }, `▣ ${label("att", a.kind || "photo")} ${i + 1}`)),
  );
}

// Stored photos as thumbnails, then those given by address as links: "no photo" only when
// there is neither.
export function gallery(refs, options = {}, linked = []) {
  const list = (refs || []).filter((r) => r && r.attachment_id);
  const byAddress = links(linked, options.testid ? `${options.testid}-links` : null);
  if (!list.length && !byAddress) return el("div", { class: "muted" }, t("photo.none"));
  return el("div", { class: "gallery" }, list.map((r) => attachment(r, options)), byAddress);
}

function lightbox(url) {
  const box = el("div", { class: "lightbox", "data-testid": "lightbox", onclick: () => box.remove() }, el("img", { src: url, alt: t("photo.alt") }));
  document.body.append(box);
}

// Before (the report's photos, and those added to it) and after (the department's result,
// the supervisor's verification), side by side, from a case of intake's case file.
export function beforeAfter(c) {
  const after = [];
  const afterLinked = [];
  for (const line of c.timeline || []) {
    const name = String(line.type || "").split(".").slice(-2, -1)[0];
    if ((name === "handled" || name === "verified") && line.data) {
      after.push(...(line.data.files || []));
      afterLinked.push(...(line.data.evidence || []), ...(line.data.photos || []));
    }
  }
  return el(
    "section",
    { class: "card before-after", "data-testid": "before-after" },
    el("h3", {}, t("photo.title")),
    el(
      "div",
      { class: "ba-grid" },
      el("div", { class: "ba-col", "data-testid": "photos-before" }, el("h4", {}, t("photo.before")), gallery(c.files, { testid: "before" }, c.attachments)),
      el("div", { class: "ba-col", "data-testid": "photos-after" }, el("h4", {}, t("photo.after")), gallery(after, { testid: "after" }, afterLinked)),
    ),
  );
}
