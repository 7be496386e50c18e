// The handheld's service worker: the app shell (and the city's names and cells) from the
// network when there is one, else from the cache — so the console opens without signal, and
// what is made meanwhile waits in the outbox (js/outbox.js). Nothing else is cached: every
// other request goes to the services as it is.
const CACHE = "gridloop-shell-v2";
const SHELL = [
  "/",
  "/index.html",
  "/app.css",
  "/manifest.webmanifest",
  "/icon.svg",
  "/js/main.js",
  "/js/api.js",
  "/js/i18n.js",
  "/js/ui.js",
  "/js/map.js",
  "/js/queues.js",
  "/js/casefile.js",
  "/js/perf.js",
  "/js/charts.js",
  "/js/report.js",
  "/js/handheld.js",
  "/js/outbox.js",
  "/js/photos.js",
  "/js/admin.js",
];
const DATA = ["/api/config", "/api/city", "/api/geo/cells"];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== self.location.origin) return;
  const path = url.pathname;
  if (!(SHELL.includes(path) || DATA.includes(path))) return;
  event.respondWith(
    fetch(event.request)
      .then((response) => {
        if (response.ok) {
          const copy = response.clone();
          caches.open(CACHE).then((c) => c.put(path, copy));
        }
        return response;
      })
      .catch(() => caches.match(path).then((hit) => hit || Response.error())),
  );
});
