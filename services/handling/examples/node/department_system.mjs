#!/usr/bin/env node
// A department's own system on the gridloop bus, in Node: nats.js 2 (`nats`) and the
// CloudEvents SDK (`cloudevents`), with the clients' default settings.
//
// It binds the department's feed: the durable consumer `dept-<dept>` on stream DISPATCH, which
// gridloop's dispatch keeps for it (filter `dispatch.<dept>.>`; nothing is missed while this
// system is offline). For each new task (`assigned`, and `rework`) it signs for it (签收),
// waits `--delay` seconds and reports the result with evidence (处置反馈); as a co-handling
// unit it signs and sends its contribution; `--behaviour return` returns tasks (退回),
// `--behaviour extension` signs and asks for one more day (延期申请). A recalled task (撤回)
// is worked on no more: its next step is not taken (a result already sent may cross the
// recall; `recall_overtaken` then says it stands); an `overdue` that crossed an on-time
// signature or result is withdrawn (`overdue_withdrawn`: printed); other messages of the feed
// are printed and acknowledged, nothing more. Commands are CloudEvents
// on `handling.<dept>.<action>`, each with the extension `replyto` set to an inbox under the
// department's own prefix `_INBOX.dept-<dept>.`: handling answers there (`gridloop.dispatch
// .answer.v1`, accepted or refused with field and reason), and the next step waits for that
// answer. Command ids derive from the feed message's id, so a restart that sees a message
// again sends the same commands, which handling answers the same way without doing anything
// twice.
//
//   npm ci
//   node department_system.mjs --dept sanitation --user dept-sanitation \
//       --password gridloop-dev-dept-sanitation [--nats nats://127.0.0.1:4222] [--delay 2]
//       [--behaviour handle|return|extension] [--results N]   (stop after N accepted results)
import { parseArgs } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";
import { connect, createInbox, headers as natsHeaders } from "nats";
import { CloudEvent, HTTP } from "cloudevents";

const { values: args } = parseArgs({
  options: {
    nats: { type: "string", default: process.env.NATS_URL ?? "nats://127.0.0.1:4222" },
    dept: { type: "string" },
    user: { type: "string" },
    password: { type: "string" },
    behaviour: { type: "string", default: "handle" },
    delay: { type: "string", default: "0" },
    results: { type: "string", default: "0" },
  },
});
if (!args.dept || !["handle", "return", "extension"].includes(args.behaviour)) {
  console.error(
    "usage: department_system.mjs --dept CODE [--user U --password P] [--nats URL]" +
      " [--behaviour handle|return|extension] [--delay S] [--results N]",
  );
  process.exit(2);
}
const dept = args.dept;
const durable = `dept-${dept}`;
// With gridloop's NATS permissions a department gets replies (JetStream's acks, a pull's
// messages, handling's answers) only under its own inbox prefix.
const inboxPrefix = `_INBOX.${durable}`;
const say = (line) => console.log(`[${dept}] ${line}`);

const nc = await connect({
  servers: args.nats.split(","), // one server, or every node of a cluster
  user: args.user,
  pass: args.password,
  inboxPrefix,
  maxReconnectAttempts: -1, // the department's system outlives restarts of the bus
  reconnectTimeWait: 500,
});
// The standard start of a JetStream client: the manager checks the API (account info).
const jsm = await nc.jetstreamManager();
const js = nc.jetstream();

// Every answer comes to one inbox of ours; the step waiting for it is found by command id.
const answers = createInbox(inboxPrefix);
const waiting = new Map(); // command id -> resolve(answer)
let resultsAccepted = 0;
const wanted = Number(args.results);
let stopping = false;

(async () => {
  for await (const msg of nc.subscribe(answers)) {
    const answer = fromGridloop(msg);
    if (!answer) continue;
    const data = answer.data;
    const errors = (data.errors ?? []).map((e) => `${e.field}: ${e.reason}`).join("; ");
    say(
      `answer ${data.action} ${data.case_id}: ${data.accepted ? "accepted" : `REFUSED ${errors}`}`,
    );
    waiting.get(data.command_id)?.(data);
    if (data.action === "handled" && data.accepted && wanted && ++resultsAccepted >= wanted) {
      stop();
    }
  }
})();

// Send a command and wait for handling's answer, so commands never overtake each other on the
// way. No answer in 20 s: the same command again in a new message (a new event id; a resend
// of the same message would be dropped as a copy), which handling answers with the first
// answer. Refused as `not-found` (handling has not yet heard of the dispatch the feed already
// brought, e.g. while it catches up after an outage): asked again every 3 s for up to 15
// minutes; a refusal changes nothing, so asking again is safe.
async function command(action, task, key, fields = {}) {
  const commandId = `${key}:${action}`;
  const patience = Date.now() + 900_000;
  let answered = new Promise((resolve) => waiting.set(commandId, resolve));
  try {
    for (let asked = 0; !stopping; asked++) {
      await send(action, task, commandId, asked ? `${commandId}#${asked}` : commandId, fields);
      const answer = await Promise.race([answered, sleep(20_000, null)]);
      if (!answer) {
        say(`no answer to ${action} ${task.case_id} yet; asking again`);
        continue;
      }
      const codes = new Set((answer.errors ?? []).map((e) => e.code));
      const unknown = !answer.accepted && codes.size === 1 && codes.has("not-found");
      if (!unknown || Date.now() > patience) return answer;
      say(`${action} ${task.case_id}: handling has not heard of the dispatch yet; asking again`);
      await sleep(3_000);
      answered = new Promise((resolve) => waiting.set(commandId, resolve));
    }
  } finally {
    waiting.delete(commandId);
  }
  return null;
}

async function send(action, task, commandId, eventId, fields) {
  const event = new CloudEvent({
    id: eventId,
    source: `/departments/${dept}/system`,
    type: `gridloop.handling.${action}.v1`,
    datacontenttype: "application/json",
    replyto: answers, // a CloudEvents extension: handling answers here
    data: {
      command_id: commandId,
      case_id: task.case_id,
      task_id: task.task_id,
      dept,
      by: `${dept}-system`,
      ...fields,
    },
  });
  const { headers, body } = HTTP.binary(event); // binary mode: ce-* headers, JSON body
  const h = natsHeaders();
  for (const [name, value] of Object.entries(headers)) h.set(name, String(value));
  // Until JetStream acknowledges it: the message id (Nats-Msg-Id) and the command id make a
  // resend of a command that did arrive harmless.
  for (;;) {
    try {
      await js.publish(`handling.${dept}.${action}`, body, { headers: h, msgID: eventId });
      break;
    } catch (err) {
      if (stopping) throw err;
      say(`${action} not acknowledged (${err.message}); sending again`);
      await sleep(500);
    }
  }
  say(`${action.padEnd(20)} ${task.case_id}`);
}

// The work on each task (task id → its AbortController): a recall aborts it.
const working = new Map();

async function workOn(task, key) {
  const work = new AbortController();
  working.set(task.task_id, work);
  try {
    await steps(task, key, work.signal);
  } catch (err) {
    if (!work.signal.aborted) throw err;
    say(`stopped work on ${task.case_id}: recalled`);
  } finally {
    if (working.get(task.task_id) === work) working.delete(task.task_id);
  }
}

async function steps(task, key, recalled) {
  await command("signed", task, key);
  recalled.throwIfAborted();
  if (task.role === "co-handler") {
    await command("progress", task, key, { note: `${dept} 协办部分已完成` });
  } else if (args.behaviour === "extension") {
    const later = new Date(Date.parse(task.deadline) + 24 * 3600 * 1000);
    await command("extension_requested", task, key, {
      reason: "需协调施工",
      proposed_deadline: later.toISOString(),
    });
  } else {
    await sleep(Number(args.delay) * 1000, undefined, { signal: recalled });
    await command("handled", task, key, {
      result: "已按结案标准处置完毕",
      evidence: [{ url: `https://evidence.example.org/${dept}/${task.case_id}.jpg` }],
      completed_at: new Date().toISOString(),
    });
  }
}

function onFeed(event, key) {
  const type = event.type.split(".")[2]; // gridloop.dispatch.<event>.v1
  if (type === "answer") return; // the same answers as on our inbox
  const task = event.data.case ?? {};
  say(`${type.padEnd(20)} ${task.case_id} ${task.what_to_do ?? ""}`);
  if (type === "assigned" && args.behaviour === "return" && task.role !== "co-handler") {
    command("returned", task, key, { reason: "不属于本单位职责范围" }).catch(failed);
  } else if (type === "assigned" || type === "rework") {
    workOn(task, key).catch(failed);
  } else if (type === "recalled") {
    working.get(task.task_id)?.abort(); // 撤回: what is left undone stays so
  } else if (type === "recall_overtaken") {
    say(`result stands for ${task.case_id}: it crossed the recall`);
  } else if (type === "overdue_withdrawn") {
    // 超期撤回: the overdue notice (and its 督办) is void, the task was on time
    say(`on time after all for ${task.case_id}: ${event.data.note ?? ""}`);
  } // anything else (reminder, overdue, escalated, a message added later): printed above
}

function failed(err) {
  if (!stopping) say(`failed: ${err.stack ?? err}`);
}

// The message as a CloudEvent if it is one from a gridloop service (`ce-source`
// `/gridloop/<service>`, `ce-type` `gridloop.…`) with a JSON object as data; else null.
function fromGridloop(msg) {
  const headers = {};
  for (const name of msg.headers?.keys() ?? []) headers[name.toLowerCase()] = msg.headers.get(name);
  try {
    const event = HTTP.toEvent({ headers, body: new TextDecoder().decode(msg.data) });
    const ok =
      event.source.startsWith("/gridloop/") &&
      event.type.startsWith("gridloop.") &&
      event.data !== null &&
      typeof event.data === "object";
    return ok ? event : null;
  } catch {
    return null;
  }
}

// gridloop keeps the feed (dispatch creates it at start-up); a department only binds to it.
let told = false;
for (;;) {
  try {
    await jsm.consumers.info("DISPATCH", durable);
    break;
  } catch (err) {
    if (!told) say(`waiting for gridloop to open the feed ${durable} on DISPATCH (${err.message})`);
    told = true;
    await sleep(500);
  }
}
const feed = await js.consumers.get("DISPATCH", durable);
const messages = await feed.consume({ max_messages: 20 });
say(`bound to ${durable} on DISPATCH; answers on ${answers}`);

function stop() {
  if (stopping) return;
  stopping = true;
  messages.stop();
}
process.once("SIGINT", stop);
process.once("SIGTERM", stop);

for await (const msg of messages) {
  const event = fromGridloop(msg);
  if (event) {
    onFeed(event, event.id ?? String(msg.seq));
  } else {
    // Only gridloop's services write DISPATCH: anything else is dropped.
    say(`ignored a message on ${msg.subject} not from gridloop`);
  }
  // Acknowledged once the work is under way: a redelivery sends the same command ids.
  msg.ack();
}
await nc.drain();
say("stopped");
