// The handheld's outbox (offline-first): reports and verifications made without signal wait
// in the phone's storage (IndexedDB) with their client-made ids, and are sent when the signal
// is back — exactly once, because the services take those ids as the report's `external_id`
// and the verification's `command_id` (a resend gets the first answer and changes nothing).
//
// A photo goes first (POST /attachments). When the evidence store is down (503), a report is
// sent without its photo and the photo follows it (POST /reports/{id}/attachments) once the
// store is back; a verification waits for its photo (a pass needs one).
import { endSession, session } from "./api.js";

const DB = "gridloop-handheld";
const STORE = "outbox";
const KEEP_SENT = 30;

function open() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: "id" });
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function run(mode, fn) {
  const db = await open();
  return new Promise((resolve, reject) => {
    const tx = db.transaction(STORE, mode);
    const out = fn(tx.objectStore(STORE));
    tx.oncomplete = () => resolve(out && "result" in out ? out.result : undefined);
    tx.onerror = () => reject(tx.error);
  });
}

export async function items() {
  const all = (await run("readonly", (s) => s.getAll())) || [];
  const mine = all.filter((i) => session.user && i.user === session.user.id);
  return mine.sort((a, b) => a.created_at.localeCompare(b.created_at));
}

export const save = (item) => run("readwrite", (s) => s.put(item));
const drop = (id) => run("readwrite", (s) => s.delete(id));

export function newId(prefix) {
  const rnd = crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(16).slice(2)}`;
  return `${prefix}-${rnd}`;
}

// Put a report or a verification in the outbox (and try to send it at once).
export async function enqueue(kind, body, photo, extra = {}) {
  const item = {
    id: newId(kind === "report" ? "hh" : "hv"),
    kind,
    user: session.user.id,
    created_at: new Date().toISOString(),
    body,
    photo: photo || null,
    photo_name: photo ? photo.name || "photo.jpg" : null,
    state: "waiting",
    ...extra,
  };
  await save(item);
  return item;
}

class Later extends Error {} // no signal, or a service that cannot take it yet: try again later

async function call(method, path, { json, form } = {}) {
  // signed out (or the session ran out): what waits stays for the next sign-in
  if (!session.token) throw new Later("signed out");
  const headers = { Accept: "application/json", Authorization: `Bearer ${session.token}` };
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form) {
    body = form;
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body });
  } catch (err) {
    throw new Later(err.message); // offline
  }
  if (response.status === 401) {
    endSession();
    throw new Later("signed out");
  }
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = text;
  }
  return { status: response.status, data };
}

function reason(answer) {
  const d = answer.data && answer.data.detail;
  const first = Array.isArray(d) ? d[0] : null;
  return first ? `${first.field ? first.field + ": " : ""}${first.reason || first.msg || ""}` : `HTTP ${answer.status}`;
}

// The photo into the store: its id, or "later" when the store (or the signal) is away.
async function upload(service, item) {
  const form = new FormData();
  form.append("file", item.photo, item.photo_name || "photo.jpg");
  const answer = await call("POST", `/api/${service}/attachments`, { form });
  if (answer.status === 201) return answer.data.attachment_id;
  if (answer.status === 503 || answer.status === 429) return "later";
  throw new Error(reason(answer));
}

async function sendReport(item) {
  if (item.photo && !item.attachment_id && !item.report_id) {
    const id = await upload("intake", item);
    if (id === "later") item.photo_later = true;
    else item.attachment_id = id;
    await save(item);
  }
  if (!item.report_id) {
    const body = { ...item.body, external_id: item.id, attachment_ids: item.attachment_id ? [item.attachment_id] : [] };
    const answer = await call("POST", "/api/intake/reports", { json: body });
    if (answer.status === 201 || answer.status === 200) {
      Object.assign(item, { report_id: answer.data.report_id, case_id: answer.data.case_id, status: answer.data.status });
      item.state = item.photo_later ? "photo-later" : "sent";
      await save(item);
    } else if (answer.status >= 500 || answer.status === 429) {
      throw new Later(reason(answer));
    } else {
      throw new Error(reason(answer));
    }
  }
  if (item.state === "photo-later") {
    if (!item.attachment_id) {
      const id = await upload("intake", item);
      if (id === "later") throw new Later("the evidence store is not available yet");
      item.attachment_id = id;
      await save(item);
    }
    const answer = await call("POST", `/api/intake/reports/${encodeURIComponent(item.report_id)}/attachments`, {
      json: { attachment_ids: [item.attachment_id], command_id: `${item.id}-photo` },
    });
    if (answer.status >= 500 || answer.status === 429) throw new Later(reason(answer));
    if (answer.status !== 200) throw new Error(reason(answer));
    item.state = "sent";
    await save(item);
  }
}

async function sendVerification(item) {
  if (item.photo && !item.attachment_id) {
    const id = await upload("verify", item);
    if (id === "later") throw new Later("the evidence store is not available yet");
    item.attachment_id = id;
    await save(item);
  }
  const body = { ...item.body, command_id: item.id, attachment_ids: item.attachment_id ? [item.attachment_id] : [] };
  const answer = await call("POST", `/api/verify/tasks/${encodeURIComponent(item.task_id)}/${item.endpoint || "verification"}`, { json: body });
  if (answer.status === 200) {
    item.state = "sent";
    item.outcome = answer.data.outcome;
    await save(item);
    return;
  }
  if (answer.status >= 500 || answer.status === 429) throw new Later(reason(answer));
  throw new Error(reason(answer));
}

let flushing = null;

// Every change of the outbox is told on the window (`gridloop:outbox`): whoever shows it
// refreshes, whichever send loop made the change.
function changed(onChange) {
  onChange();
  window.dispatchEvent(new Event("gridloop:outbox"));
}

// Send what waits, oldest first; stop at the first "not now". Returns when done.
export function flush(onChange = () => {}) {
  if (flushing) return flushing;
  flushing = (async () => {
    try {
      if (!session.user || !navigator.onLine) return;
      for (const item of await items()) {
        if (item.state === "sent" || item.state === "refused") continue;
        try {
          await (item.kind === "report" ? sendReport(item) : sendVerification(item));
        } catch (err) {
          if (err instanceof Later) {
            item.error = err.message;
            await save(item);
            break;
          }
          item.state = "refused";
          item.error = err.message;
          await save(item);
        }
        changed(onChange);
      }
      const sent = (await items()).filter((i) => i.state === "sent");
      for (const old of sent.slice(0, Math.max(0, sent.length - KEEP_SENT))) await drop(old.id);
    } finally {
      flushing = null;
      changed(onChange);
    }
  })();
  return flushing;
}

// Keep trying: when the signal comes back, and every 15 s while something waits.
export function keepSending(onChange) {
  const kick = () => flush(onChange);
  window.addEventListener("online", kick);
  const timer = setInterval(async () => {
    if ((await items()).some((i) => i.state !== "sent" && i.state !== "refused")) kick();
  }, 15000);
  kick();
  return () => {
    window.removeEventListener("online", kick);
    clearInterval(timer);
  };
}
