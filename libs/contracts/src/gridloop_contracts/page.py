"""The integrators' contract page: one self-contained HTML document rendered from the exported
contract — the AsyncAPI document and the JSON Schema of every message — listing every subject
and every message with its headers, its fields (name, type, required, description, rules) and
an example. `make schemas` writes it where the console serves it (`/contract/`)."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from typing import Any

# The order of the page, and what each audience is told.
AUDIENCES: dict[str, tuple[str, str]] = {
    "integrators": (
        "Integrators: 12345 hotlines, video analytics, patrol apps, web portals",
        "Log in as `src-<source>` with the inbox prefix `_INBOX.src-<source>`. Publish reports "
        "on your own subject (JetStream publish: wait for the acknowledgement) and read the "
        "answers on `notify.<source>`, live or through your durable consumer `src-<source>` "
        "on stream `NOTIFY` (bind to it; gridloop keeps it).",
    ),
    "departments": (
        "Departments' own systems",
        "Log in as `dept-<dept>` with the inbox prefix `_INBOX.dept-<dept>`. Read your feed "
        "through your durable consumer `dept-<dept>` on stream `DISPATCH` (bind to it; gridloop "
        "keeps it) and send commands on `handling.<dept>.<action>`; every command is answered "
        "on `dispatch.<dept>.answer` and, when it names one, on its `replyto` inbox (there "
        "only, when it also says `answerfeed: none`).",
    ),
    "services": (
        "Inside gridloop",
        "What the services tell each other: the case lifecycle (the record every read model "
        "is rebuilt from) and the published scores. No department or integrator may read "
        "these subjects; they are listed so that every message of the bus is documented.",
    ),
}

PUBLISHERS = {"integrators": "Integrators", "departments": "Departments"}

STYLE = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI","Noto Sans CJK SC","PingFang SC",
sans-serif;margin:0;color:#1d2733;background:#f6f7f9}
main{max-width:1100px;margin:0 auto;padding:24px}
header{background:#14324f;color:#fff;padding:28px 24px}header p{max-width:1050px;margin:6px auto}
header h1{max-width:1050px;margin:0 auto 6px;font-size:26px}
header code{background:#24486d;color:#fff}
h2{margin-top:40px;border-bottom:2px solid #14324f;padding-bottom:4px}
h3{margin:0 0 4px;font-size:19px}h4{margin:18px 0 6px;font-size:15px}
section.channel,article{background:#fff;border:1px solid #d9dee5;border-radius:6px;
padding:16px 18px;margin:16px 0}
article{margin-left:18px}
code,pre{font:13px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
code{background:#eef1f5;padding:1px 4px;border-radius:3px}
pre{background:#0f1b28;color:#e6edf3;padding:12px;border-radius:5px;overflow-x:auto}
table{border-collapse:collapse;width:100%;margin:6px 0 10px}
th,td{border:1px solid #d9dee5;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#eef1f5;font-weight:600}td.name{white-space:nowrap;font-weight:600}
td.req{white-space:nowrap}.rules{color:#5b6776;font-size:13px}
.tag{display:inline-block;font-size:12px;font-weight:600;padding:1px 7px;border-radius:10px;
margin-right:6px}.in{background:#e2f4e8;color:#1c6b36}.out{background:#e6eefb;color:#1f4d99}
nav ul{columns:2;padding-left:18px}nav li{break-inside:avoid}
.muted{color:#5b6776}
"""


def _text(s: object) -> str:
    """Escaped text, with `backticks` as code."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(str(s)))


def _code(value: object) -> str:
    shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return f"<code>{html.escape(shown)}</code>"


def _anchor(*parts: str) -> str:
    return "-".join(re.sub(r"[^A-Za-z0-9_-]", "-", p) for p in parts)


class _Schema:
    """One message's JSON Schema, for describing its fields."""

    def __init__(self, schema: Mapping[str, Any], type_name: str) -> None:
        self.schema = schema
        self.type_name = type_name
        self.defs: Mapping[str, Any] = schema.get("$defs", {})
        self.used: list[str] = []  # nested objects, in the order met

    def ref(self, ref: str) -> str:
        name = ref.rsplit("/", 1)[-1]
        target = self.defs.get(name, {})
        if "enum" in target:  # an enumeration: show its values in place
            return "string, one of " + ", ".join(_code(v) for v in target["enum"])
        if name not in self.used:
            self.used.append(name)
        return f'<a href="#{_anchor(self.type_name, name)}">{html.escape(name)}</a>'

    def type_of(self, prop: Mapping[str, Any]) -> str:
        if "$ref" in prop:
            return self.ref(prop["$ref"])
        for key in ("anyOf", "oneOf"):
            if key in prop:
                options = [o for o in prop[key] if o != {"type": "null"}]
                text = " or ".join(self.type_of(o) for o in options)
                return text + (" or null" if len(options) < len(prop[key]) else "")
        if "const" in prop:
            return _code(prop["const"])
        if "enum" in prop:
            return "string, one of " + ", ".join(_code(v) for v in prop["enum"])
        kind = prop.get("type", "any")
        if kind == "array":
            return "array of " + self.type_of(prop.get("items", {}))
        if kind == "object" and isinstance(prop.get("additionalProperties"), dict):
            return "object: name → " + self.type_of(prop["additionalProperties"])
        if "format" in prop:
            return f"{html.escape(str(kind))} ({html.escape(prop['format'])})"
        return html.escape(str(kind))

    @staticmethod
    def rules(prop: Mapping[str, Any]) -> list[str]:
        """The constraints of a property (and of its non-null alternative)."""
        out: list[str] = []
        parts = [prop, *[o for o in prop.get("anyOf", []) if o != {"type": "null"}]]
        for p in parts:
            if "minLength" in p or "maxLength" in p:
                lo, hi = p.get("minLength", 0), p.get("maxLength")
                out.append(f"{lo}–{hi} characters" if hi is not None else f"≥ {lo} characters")
            if "minimum" in p or "maximum" in p:
                lo, hi = p.get("minimum", "−∞"), p.get("maximum", "∞")
                out.append(f"{lo} ≤ value ≤ {hi}")
            if "minItems" in p or "maxItems" in p:
                lo, hi = p.get("minItems", 0), p.get("maxItems")
                out.append(f"{lo}–{hi} items" if hi is not None else f"≥ {lo} items")
            if "pattern" in p:
                out.append("pattern " + _code(p["pattern"]))
        if "default" in prop and prop["default"] is not None:
            out.append("default " + _code(prop["default"]))
        return out

    def fields(self, schema: Mapping[str, Any]) -> str:
        required = set(schema.get("required", []))
        rows = []
        for name, prop in schema.get("properties", {}).items():
            rules = self.rules(prop)
            kind = self.type_of(prop)
            if rules:
                kind += '<div class="rules">' + "; ".join(rules) + "</div>"
            rows.append(
                f'<tr><td class="name"><code>{html.escape(name)}</code></td><td>{kind}</td>'
                f'<td class="req">{"yes" if name in required else "no"}</td>'
                f"<td>{_text(prop.get('description', ''))}</td></tr>"
            )
        head = "<tr><th>field</th><th>type</th><th>required</th><th>description</th></tr>"
        return f"<table>{head}{''.join(rows)}</table>"

    def at_least_one(self) -> list[str]:
        """`anyOf` of single required fields: at least one of them must be given."""
        names = []
        for option in self.schema.get("anyOf", []):
            req = option.get("required", [])
            if len(req) != 1:
                return []
            names.append(req[0])
        return names


def _headers(headers: Mapping[str, Any]) -> str:
    required = set(headers.get("required", []))
    rows = []
    for name, prop in headers.get("properties", {}).items():
        kind = _code(prop["const"]) if "const" in prop else html.escape(prop.get("type", ""))
        if "format" in prop:
            kind += f" ({html.escape(prop['format'])})"
        rows.append(
            f'<tr><td class="name"><code>{html.escape(name)}</code></td><td>{kind}</td>'
            f'<td class="req">{"yes" if name in required else "no"}</td>'
            f"<td>{_text(prop.get('description', ''))}</td></tr>"
        )
    head = "<tr><th>header</th><th>value</th><th>required</th><th>description</th></tr>"
    return f"<table>{head}{''.join(rows)}</table>"


def _message(
    message: Mapping[str, Any], schema: Mapping[str, Any], address: str, gridloop_receives: bool
) -> str:
    type_name = message["name"]
    s = _Schema(schema, type_name)
    direction = (
        '<span class="tag in">you publish</span>'
        if gridloop_receives
        else '<span class="tag out">gridloop publishes</span>'
    )
    parts = [
        f'<article id="{_anchor(type_name)}">',
        f"<h3>{direction}<code>{html.escape(type_name)}</code></h3>",
        f"<p><strong>{_text(message.get('title', ''))}</strong>. "
        f"{_text(message.get('summary', ''))}</p>",
        f"<p>Subject {' or '.join(_code(x) for x in message.get('x-subjects', [address]))}"
        " · header "
        f"<code>ce-type: {html.escape(type_name)}</code> · JSON Schema "
        f"<code>{html.escape(message['payload']['$ref'].lstrip('./'))}</code></p>",
        "<h4>Data (the JSON body)</h4>",
        s.fields(schema),
    ]
    one_of = s.at_least_one()
    if one_of:
        parts.append(
            "<p>At least one of " + ", ".join(_code(n) for n in one_of) + " is required.</p>"
        )
    # Nested objects, each once (a nested object may name further ones).
    done: set[str] = set()
    while len(done) < len(s.used):
        name = next(n for n in s.used if n not in done)
        done.add(name)
        nested = s.defs.get(name, {})
        parts.append(
            f'<h4 id="{_anchor(type_name, name)}">{html.escape(name)}</h4>'
            f"<p class='muted'>{_text(nested.get('description', ''))}</p>"
        )
        parts.append(s.fields(nested))
    extra = sorted(set(message.get("headers", {}).get("properties", {})) - set(_common_headers()))
    if extra:
        parts.append("<h4>Headers of this message besides the envelope's</h4>")
        headers = message["headers"]
        parts.append(_headers({"properties": {h: headers["properties"][h] for h in extra}}))
    for example in message.get("examples", []):
        parts.append("<h4>Example</h4>")
        parts.append(
            "<pre>"
            + html.escape(
                "\n".join(f"{k}: {v}" for k, v in example.get("headers", {}).items())
                + "\n\n"
                + json.dumps(example.get("payload"), ensure_ascii=False, indent=2)
            )
            + "</pre>"
        )
    parts.append("</article>")
    return "\n".join(parts)


def _common_headers() -> tuple[str, ...]:
    return (
        "ce-specversion",
        "ce-id",
        "ce-source",
        "ce-type",
        "ce-time",
        "ce-subject",
        "content-type",
        "Nats-Msg-Id",
        "traceparent",
        "tracestate",
    )


def render_page(asyncapi: Mapping[str, Any], schemas: Mapping[str, Mapping[str, Any]]) -> str:
    """The page. `asyncapi`: the AsyncAPI document; `schemas`: each message's JSON Schema by
    the path its `payload.$ref` names (`json/<type>.json`)."""
    info = asyncapi.get("info", {})
    messages: Mapping[str, Any] = asyncapi["components"]["messages"]
    receives = {
        op["channel"]["$ref"].rsplit("/", 1)[-1]
        for op in asyncapi.get("operations", {}).values()
        if op.get("action") == "receive"
    }
    channels = asyncapi["channels"]
    order = list(AUDIENCES)
    by_audience = sorted(
        channels.items(),
        key=lambda kv: (order.index(kv[1].get("x-audience", "services")), kv[0]),
    )
    # The envelope's headers as every message has them (one message's, its type left open).
    first = next(iter(messages.values()))["headers"]
    envelope = {
        **first,
        "properties": {
            **first["properties"],
            "ce-type": {
                "type": "string",
                "description": "The message type, `gridloop.<noun>.<verb>.v<N>`: one of those "
                "below.",
            },
        },
    }

    nav, body = [], []
    for audience, (title, intro) in AUDIENCES.items():
        mine = [(name, ch) for name, ch in by_audience if ch.get("x-audience") == audience]
        if not mine:
            continue
        body.append(f'<h2 id="{audience}">{_text(title)}</h2><p>{_text(intro)}</p>')
        nav.append(f'<li><a href="#{audience}">{_text(title)}</a><ul>')
        for name, ch in mine:
            address = ch["address"]
            gridloop_receives = name in receives
            keys = [ref["$ref"].rsplit("/", 1)[-1] for ref in ch.get("messages", {}).values()]
            params = "".join(
                f"<tr><td class='name'><code>{{{html.escape(p)}}}</code></td>"
                f"<td>{_text(spec.get('description', ''))}"
                + (
                    " One of " + ", ".join(_code(v) for v in spec["enum"]) + "."
                    if "enum" in spec
                    else ""
                )
                + "</td></tr>"
                for p, spec in ch.get("parameters", {}).items()
            )
            who = ch.get("x-nats-user")
            body.append(
                f'<section class="channel" id="{_anchor("channel", name)}">'
                f"<h3>{_code(address)}</h3><p>{_text(ch.get('description', ''))} "
                + (
                    f"{PUBLISHERS.get(audience, 'Services')} publish here; gridloop receives."
                    if gridloop_receives
                    else "gridloop publishes here."
                )
                + (f" NATS user: {_code(who)}." if who else "")
                + "</p>"
                + (f"<table><tr><th>parameter</th><th>meaning</th></tr>{params}</table>")
                + "<p>Messages: "
                + ", ".join(
                    f'<a href="#{_anchor(messages[k]["name"])}">{_code(messages[k]["name"])}</a>'
                    for k in keys
                )
                + "</p></section>"
            )
            nav.append(f'<li><a href="#{_anchor("channel", name)}">{_code(address)}</a></li>')
            for k in keys:
                message = messages[k]
                ref = message["payload"]["$ref"].removeprefix("./")
                body.append(_message(message, schemas[ref], address, gridloop_receives))
        nav.append("</ul></li>")

    title = f"{info.get('title', 'gridloop')}: the bus contract"
    return "\n".join(
        [
            "<!doctype html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>{html.escape(title)} · 接入契约</title>",
            '<link rel="icon" href="data:,">',
            f"<style>{STYLE}</style></head><body>",
            f"<header><h1>{html.escape(title)} · 接入契约</h1>",
            f"<p>{_text(info.get('description', ''))}</p>",
            f"<p>Contract version {html.escape(str(info.get('version', '')))} · generated by "
            "<code>make schemas</code> from <code>schemas/asyncapi.yaml</code> (AsyncAPI "
            f"{html.escape(str(asyncapi.get('asyncapi', '')))}) and the JSON Schemas in "
            "<code>schemas/json/</code>.</p></header><main>",
            "<h2 id='envelope'>The envelope: CloudEvents 1.0 on NATS</h2>",
            "<p>Every message is a CloudEvent. In <strong>binary mode</strong> its attributes "
            "are NATS headers and the body is the data as JSON; integrators may also send "
            "<strong>structured mode</strong>: header <code>content-type: "
            "application/cloudevents+json</code> and the whole event (<code>specversion</code>, "
            "<code>id</code>, <code>source</code>, <code>type</code>, <code>time</code>, "
            "<code>data</code>) as the body. Publish with JetStream and wait for its "
            "acknowledgement; <code>Nats-Msg-Id</code> = <code>ce-id</code> makes a resend "
            "harmless. Unknown fields are ignored: additions keep a type's version, anything "
            "else is a new <code>.v2</code> type read beside the old.</p>",
            _headers(envelope),
            f"<nav><h2>Contents</h2><ul>{''.join(nav)}</ul></nav>",
            *body,
            "</main></body></html>",
            "",
        ]
    )
