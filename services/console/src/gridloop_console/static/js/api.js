// Talking to the console backend: the session token, REST through the proxy, the live feed.

const KEY = "gridloop.session";

// Paths anybody may ask: the console's settings, signing in, the residents' side.
const OPEN = /^\/api\/(config$|login$|public\/)/;
// Bumped at each sign-in and sign-out: a request asked under one session and answered under
// another is not handed to the screen that asked.
let epoch = 0;

export const session = {
  token: null,
  user: null,
  load() {
    try {
      const saved = JSON.parse(sessionStorage.getItem(KEY) || "null");
      if (saved && saved.token) Object.assign(this, saved);
    } catch {
      sessionStorage.removeItem(KEY);
    }
    return Boolean(this.token);
  },
  save(token, user) {
    epoch += 1;
    this.token = token;
    this.user = user;
    sessionStorage.setItem(KEY, JSON.stringify({ token, user }));
  },
  clear() {
    epoch += 1;
    this.token = null;
    this.user = null;
    sessionStorage.removeItem(KEY);
  },
  has(...roles) {
    const mine = this.user ? this.user.roles : [];
    return mine.includes("admin") || roles.some((r) => mine.includes(r));
  },
};

export class ApiError extends Error {
  constructor(status, detail) {
    const first = Array.isArray(detail) ? detail[0] : null;
    const text = first
      ? `${first.field ? first.field + ": " : ""}${first.reason || first.msg || ""}`
      : typeof detail === "string"
        ? detail
        : `HTTP ${status}`;
    super(text);
    this.status = status;
    this.detail = detail;
  }
}

// What a screen's request gets once its user has signed out (a timer still running, the rest
// of a chain): nothing is sent, and nobody needs to hear about it.
export class SignedOut extends Error {
  constructor() {
    super("signed out");
    this.status = 401;
  }
}
window.addEventListener("unhandledrejection", (e) => {
  if (e.reason instanceof SignedOut) e.preventDefault();
});

function isOpen(path) {
  return OPEN.test(path.split("?")[0]);
}

// The session ran out (a 401): the screens go back to signing in.
export function endSession() {
  session.clear();
  window.dispatchEvent(new Event("gridloop:signed-out"));
}

async function request(method, path, body, { raw = false } = {}) {
  const open = isOpen(path);
  if (!open && !session.token) throw new SignedOut();
  const asked = epoch;
  const headers = { Accept: "application/json" };
  if (session.token) headers.Authorization = `Bearer ${session.token}`;
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (!open && asked !== epoch) throw new SignedOut();
  if (raw && response.ok) return response;
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!response.ok) {
    if (response.status === 401 && session.token) endSession();
    throw new ApiError(response.status, data && data.detail !== undefined ? data.detail : data);
  }
  return data;
}

export const api = {
  get: (path) => request("GET", path),
  post: (path, body = {}) => request("POST", path, body),
  raw: (path) => request("GET", path, undefined, { raw: true }),
  // One of the five services through the console's proxy.
  svc: (service, path, params) => request("GET", `/api/${service}${path}${query(params)}`),
  cmd: (service, path, body = {}) =>
    request("POST", `/api/${service}${path}`, { command_id: commandId(), ...body }),
  // Handling generates its own id when none is sent; the others store ours with the answer.
  cmdPlain: (service, path, body = {}) => request("POST", `/api/${service}${path}`, body),
};

export function query(params) {
  if (!params) return "";
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

export function commandId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  return `c-${Date.now()}-${Math.random().toString(16).slice(2)}`;
}

// The live feed (server-sent events): calls `onEvent` with each case event the user may see.
export function follow(onEvent, onState) {
  if (!session.token) return () => {};
  const source = new EventSource(`/api/events?token=${encodeURIComponent(session.token)}`);
  // Events sent while the feed was down (no signal, a restart) are not replayed: when it is
  // back after a break, the screens hear a gap and load again what they show.
  let broken = false;
  source.addEventListener("open", () => {
    onState(true);
    if (broken) onEvent({ event: "gap" });
    broken = false;
  });
  source.addEventListener("error", () => {
    broken = true;
    onState(false);
  });
  source.addEventListener("case", (e) => onEvent(JSON.parse(e.data)));
  source.addEventListener("gap", () => onEvent({ event: "gap" }));
  return () => source.close();
}

// A CSV from a service, downloaded with the session's token.
export async function download(path, fallbackName) {
  const response = await api.raw(path);
  const blob = await response.blob();
  const disposition = response.headers.get("content-disposition") || "";
  const match = /filename="?([^";]+)"?/.exec(disposition);
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = match ? match[1] : fallbackName;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 5000);
}
