#!/usr/bin/env node
// An integrator on the gridloop bus, in Node: a 12345 hotline (or a web portal, a patrol app)
// sending reports, or a video analytics platform sending detections, with nats.js 2 (`nats`)
// and the CloudEvents SDK (`cloudevents`) at their default settings.
//
// It sends each report as a CloudEvent (`gridloop.report.v1`; on the video channel
// `gridloop.detection.v1`) on `intake.<channel>.<source>`, binary mode (ce-* headers) or with
// `--structured` the whole event as the body (application/cloudevents+json), and waits for
// JetStream's acknowledgement. Then it reads its notify feed — the durable consumer
// `src-<source>` on stream NOTIFY that intake keeps for it (filter `notify.<source>`; nothing
// is missed while it is offline) — and prints every answer: `gridloop.case.status.v1` on each
// status change of a report's case, `gridloop.report.rejected.v1` naming the field of a report
// intake could not take. It stops when every report it sent has reached one of the `--until`
// statuses (by default: its first answer), or after `--timeout` seconds (exit 1).
//
//   npm ci
//   node integrator.mjs --source 12345 --user src-12345 --password gridloop-dev-src-12345
//       [--channel hotline|web|patrol|video] [--file reports.json] [--structured]
//       [--until accepted,dispatched] [--nats nats://127.0.0.1:4222] [--timeout 120]
//
// `--file`: a JSON array of the events' data (`external_id` and the time are filled in where
// missing); without it, one demo report (or detection) is sent.
import { parseArgs } from "node:util";
import { readFileSync } from "node:fs";
import { randomUUID } from "node:crypto";
import { connect, headers as natsHeaders } from "nats";
import { CloudEvent, HTTP } from "cloudevents";

const { values: args } = parseArgs({
  options: {
    nats: { type: "string", default: process.env.NATS_URL ?? "nats://127.0.0.1:4222" },
    source: { type: "string", default: "12345" },
    channel: { type: "string", default: "hotline" },
    user: { type: "string" },
    password: { type: "string" },
    file: { type: "string" },
    structured: { type: "boolean", default: false },
    until: { type: "string", default: "" },
    timeout: { type: "string", default: "120" },
  },
});
const { source, channel } = args;
if (!["hotline", "web", "patrol", "video"].includes(channel)) {
  console.error(`--channel must be hotline, web, patrol or video, not ${channel}`);
  process.exit(2);
}
const video = channel === "video";
const durable = `src-${source}`;
const until = args.until ? args.until.split(",") : [];

const now = () => new Date().toISOString();
const demo = video
  ? { camera_id: "cam-0001", category_code: "E0104", confidence: 0.93 }
  : {
      description: "东华门大街人行道上有暴露垃圾",
      location: { lat: 39.9, lon: 116.4003 }, // WGS-84; or "address", or "part_code"
      category_code: "E0104",
      reporter: { name: "张三", phone: "13812345678" },
    };
const reports = (args.file ? JSON.parse(readFileSync(args.file, "utf8")) : [demo]).map((r) => ({
  external_id: `${source}-${randomUUID()}`, // your own id: resending it is safe
  ...(video ? { detected_at: now() } : { reported_at: now() }),
  ...r,
}));

const nc = await connect({
  servers: args.nats.split(","),
  user: args.user,
  pass: args.password,
  // With gridloop's NATS permissions an integrator gets replies (JetStream's acks, a pull's
  // messages) only under its own inbox prefix.
  inboxPrefix: `_INBOX.${durable}`,
});
const jsm = await nc.jetstreamManager(); // the standard start: checks the API (account info)
const js = nc.jetstream();

// 1. The reports, each acknowledged by JetStream (stream INTAKE) before the next.
for (const data of reports) {
  const event = new CloudEvent({
    id: randomUUID(), // the message's id; `external_id` names the report
    source: `/${channel}/${source}`, // its last segment must be your source code
    type: video ? "gridloop.detection.v1" : "gridloop.report.v1",
    datacontenttype: "application/json",
    data,
  });
  const { headers, body } = args.structured ? HTTP.structured(event) : HTTP.binary(event);
  const h = natsHeaders();
  for (const [name, value] of Object.entries(headers)) h.set(name, String(value));
  const ack = await js.publish(`intake.${channel}.${source}`, body, { headers: h, msgID: event.id });
  console.log(`sent ${event.type} ${data.external_id} (${ack.stream} #${ack.seq})`);
}

// 2. The answers, from the notify feed intake keeps for this source.
const reached = new Map(reports.map((r) => [r.external_id, false]));
const done = () => [...reached.values()].every(Boolean);
await jsm.consumers.info("NOTIFY", durable); // gridloop opens the feed at start-up
const feed = await js.consumers.get("NOTIFY", durable);
const messages = await feed.consume({ max_messages: 50 });
const timer = setTimeout(() => {
  const open = [...reached].filter(([, ok]) => !ok).map(([id]) => id);
  console.log(`timed out waiting for ${open.join(", ")}`);
  process.exitCode = 1;
  messages.stop();
}, Number(args.timeout) * 1000);
for await (const msg of messages) {
  const headers = {};
  for (const name of msg.headers?.keys() ?? []) headers[name.toLowerCase()] = msg.headers.get(name);
  try {
    const event = HTTP.toEvent({ headers, body: new TextDecoder().decode(msg.data) });
    console.log(`notify ${event.type} ${JSON.stringify(event.data)}`);
    const id = event.data?.external_id;
    if (reached.has(id)) {
      const status = event.data.status ?? "rejected";
      if (!until.length || until.includes(status)) reached.set(id, true);
    }
  } catch (err) {
    console.log(`ignored a message on ${msg.subject} that is not a CloudEvent (${err.message})`);
  }
  msg.ack();
  if (done()) break;
}
clearTimeout(timer);
messages.stop();
await nc.drain();
