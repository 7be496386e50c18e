"""Export the contracts: one JSON Schema per event type and one AsyncAPI 3.0 document."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from . import REGISTRY, yaml_text
from .base import Event
from .envelope import Envelope, to_binary
from .examples import EXAMPLES
from .fields import describe

SCHEMA_BASE = "https://gridloop.dev/schemas/"

# Where each family of types travels; parameters in braces.
CHANNELS: dict[str, dict[str, Any]] = {
    "intake": {
        "address": "intake.{channel}.{source}",
        "description": "Reports and detections from integrators (INTAKE stream).",
        "prefixes": (
            "gridloop.report.v1",
            "gridloop.detection.v1",
            "gridloop.rating.v1",
            "gridloop.rating.v2",
        ),
        "action": "receive",
        "audience": "integrators",
        "user": "src-{source}",
    },
    "taken": {
        "address": "intake.taken.{source}",
        "description": "Reports intake took over REST or Open311, kept on the INTAKE stream "
        "for a database restore (intake's own: it publishes and consumes them).",
        "prefixes": ("gridloop.report.taken.v1",),
        "action": "send",
        "audience": "services",
    },
    "case": {
        "address": "case.{event}",
        "description": "Case lifecycle events (CASES stream): the replay source of projections.",
        "prefixes": ("gridloop.case.",),
        "exclude": ("gridloop.case.status.v1",),
        "action": "send",
        "audience": "services",
    },
    "dispatch": {
        "address": "dispatch.{dept}.{event}",
        "description": "The department feed (DISPATCH stream); each department only its own.",
        "prefixes": ("gridloop.dispatch.",),
        "action": "send",
        "audience": "departments",
        "user": "dept-{dept}",
    },
    "handling": {
        "address": "handling.{dept}.{action}",
        "description": "Commands from departments' own systems (HANDLING stream).",
        "prefixes": ("gridloop.handling.",),
        "exclude": ("gridloop.handling.taken.v1",),
        "action": "receive",
        "audience": "departments",
        "user": "dept-{dept}",
    },
    "handling_taken": {
        "address": "handling._taken.{dept}",
        "description": "Department commands handling took over REST, kept on the HANDLING "
        "stream for a database restore (handling's own: it publishes and consumes them).",
        "prefixes": ("gridloop.handling.taken.v1",),
        "action": "send",
        "audience": "services",
    },
    "notify": {
        "address": "notify.{source}",
        "description": "Answers to integrators: status changes and rejections (NOTIFY stream).",
        "prefixes": ("gridloop.case.status.v1", "gridloop.report.rejected.v1"),
        "action": "send",
        "audience": "integrators",
        "user": "src-{source}",
    },
    "score": {
        "address": "score.{event}",
        "description": "Published scores and rankings (SCORES stream).",
        "prefixes": ("gridloop.score.",),
        "action": "send",
        "audience": "services",
    },
    "city": {
        "address": "city.{event}",
        "description": "A new version of the city's data (core NATS: every service process "
        "loads, validates and swaps to it, or refuses it and keeps its own).",
        "prefixes": ("gridloop.city.",),
        "action": "receive",
        "audience": "services",
    },
}

# Which report channels carry each inbound type (intake's gate refuses it elsewhere, field
# `type`): the subjects `intake.<channel>.<source>` a sender may use for it.
INTAKE_CHANNELS: dict[str, tuple[str, ...]] = {
    "gridloop.report.v1": ("hotline", "web", "patrol"),
    "gridloop.detection.v1": ("video",),
    "gridloop.rating.v1": ("hotline", "web"),  # the hotline's call-back ratings
    "gridloop.rating.v2": ("hotline", "web"),
}

PARAMETERS: dict[str, dict[str, Any]] = {
    "channel": {
        "enum": ["hotline", "video", "patrol", "web"],
        "description": "The report channel.",
    },
    "source": {"description": "A configured integrator code (letters, digits, '-')."},
    "dept": {"description": "A configured department code (letters, digits, '-')."},
    "event": {"description": "The event: the last token of the message's subject."},
    "action": {"description": "The department's command."},
}

CE_HEADERS: dict[str, Any] = {
    "type": "object",
    "description": "CloudEvents 1.0 binary mode on NATS headers.",
    "properties": {
        "ce-specversion": {"type": "string", "const": "1.0"},
        "ce-id": {
            "type": "string",
            "description": "The message's id: unique per sender; sending the same id again "
            "is a copy, dropped.",
        },
        "ce-source": {
            "type": "string",
            "description": "Who sent it: `/gridloop/<service>` for gridloop's services; an "
            "integrator's ends with its source code (`/hotline/12345`).",
        },
        "ce-type": {"type": "string", "description": "The message type."},
        "ce-time": {
            "type": "string",
            "format": "date-time",
            "description": "When the event was produced (RFC 3339 with offset); a sender's "
            "at most 5 minutes ahead of gridloop's clock.",
        },
        "ce-subject": {"type": "string", "description": "The case id, where there is one."},
        "content-type": {"type": "string", "const": "application/json"},
        "Nats-Msg-Id": {"type": "string", "description": "= ce-id: JetStream drops duplicates."},
        "traceparent": {"type": "string", "description": "W3C trace context."},
        "tracestate": {"type": "string", "description": "W3C trace context."},
    },
    "required": ["ce-specversion", "ce-id", "ce-source", "ce-type"],
}


def _describe_fields(schema: dict[str, Any], owner: str) -> None:
    """Give each property without a description of its own the one `fields` has for it."""
    for name, prop in schema.get("properties", {}).items():
        text = describe(owner, name)
        if text and "description" not in prop:
            prop["description"] = text


def json_schema(model: type[Event]) -> dict[str, Any]:
    schema = model.model_json_schema(mode="validation")
    _describe_fields(schema, model.type_name)
    for name, nested in schema.get("$defs", {}).items():
        _describe_fields(nested, name)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{SCHEMA_BASE}{model.type_name}.json",
        **{k: v for k, v in schema.items() if k != "title"},
        "title": model.type_name,
        "description": model.summary or (model.__doc__ or "").strip(),
    }


def _channel_of(type_name: str) -> str:
    for name, ch in CHANNELS.items():
        if type_name in ch.get("exclude", ()):
            continue
        if any(
            type_name == p or (p.endswith(".") and type_name.startswith(p)) for p in ch["prefixes"]
        ):
            return name
    raise KeyError(f"no channel for {type_name}")


# Who sends each family, for the example headers (services use /gridloop/<service>).
EXAMPLE_SOURCES = {
    "intake": "/integrators/12345",
    "taken": "/gridloop/intake",
    "handling_taken": "/gridloop/handling",
    "case": "/gridloop/intake",
    "dispatch": "/gridloop/dispatch",
    "handling": "/departments/sanitation",
    "notify": "/gridloop/intake",
    "score": "/gridloop/scoring",
    "city": "/gridloop/admin",
}
EXAMPLE_TIME = datetime(2026, 11, 23, 9, 30, 5, tzinfo=timezone(timedelta(hours=8)))


def _example(event: Event) -> dict[str, Any]:
    """The example as it travels: binary-mode headers (fixed id and time, so the document
    stays deterministic) and the JSON payload."""
    env = Envelope.of(
        event,
        source=EXAMPLE_SOURCES[_channel_of(event.type_name)],
        subject=getattr(event, "case_id", None),
        id=str(uuid.uuid5(uuid.NAMESPACE_URL, SCHEMA_BASE + event.type_name)),
        time=EXAMPLE_TIME,
        extensions={"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"},
    )
    headers, _ = to_binary(env)
    return {"name": event.subject_token, "headers": headers, "payload": env.data}


# A department's command may name where to answer it (the CloudEvents extension `replyto`).
REPLYTO_HEADER: dict[str, Any] = {
    "type": "string",
    "description": "Optional: a subject under the department's own inbox prefix "
    "`_INBOX.dept-<dept>.` where handling sends the answer too (the CloudEvents extension "
    "`replyto`); any other subject refuses the command (field `replyto`).",
}


# ... and whether the answer goes on the department's feed as well (the extension `answerfeed`).
ANSWERFEED_HEADER: dict[str, Any] = {
    "type": "string",
    "enum": ["all", "none"],
    "description": "Optional, with `ce-replyto`: `none` sends the answer to the `replyto` inbox "
    "only, not also on `dispatch.<dept>.answer` (one message fewer on the feed per command); "
    "`all`, the default, on both; a command parked until its dispatch reaches handling is "
    "answered the way it asked when it runs. Any other value, or `none` without `replyto`, "
    "refuses the command (field `answerfeed`).",
}


def _headers(type_name: str) -> dict[str, Any]:
    """The binary-mode headers of one message type (ce-type fixed to it)."""
    props = dict(CE_HEADERS["properties"])
    props["ce-type"] = {"type": "string", "const": type_name, "description": "The message type."}
    if _channel_of(type_name) == "handling":
        props["ce-replyto"] = REPLYTO_HEADER
        props["ce-answerfeed"] = ANSWERFEED_HEADER
    return {**CE_HEADERS, "properties": props}


def _subjects(type_name: str, token: str) -> list[str]:
    """The subjects a message type travels on, parameters in braces."""
    address = str(CHANNELS[_channel_of(type_name)]["address"])
    if type_name in INTAKE_CHANNELS:
        return [address.replace("{channel}", ch) for ch in INTAKE_CHANNELS[type_name]]
    return [address.replace("{event}", token).replace("{action}", token)]


def asyncapi() -> dict[str, Any]:
    """The AsyncAPI 3.0 document: every channel, message and operation, seen from gridloop
    (it receives on intake and handling, and sends everything else)."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    by_channel: dict[str, list[str]] = {name: [] for name in CHANNELS}
    tokens: dict[str, set[str]] = {name: set() for name in CHANNELS}
    for type_name in sorted(REGISTRY):
        model = REGISTRY[type_name]
        key = type_name.replace(".", "_")
        channel = _channel_of(type_name)
        by_channel[channel].append(key)
        tokens[channel].add(model.subject_token)
        message: dict[str, Any] = {
            "name": type_name,
            "title": model.summary,
            "summary": " ".join((model.__doc__ or model.summary).split()),
            "contentType": "application/json",
            "headers": _headers(type_name),
            "payload": {"$ref": f"./json/{type_name}.json"},
        }
        message["x-subjects"] = _subjects(type_name, model.subject_token)
        if type_name in EXAMPLES:
            message["examples"] = [_example(EXAMPLES[type_name])]
        messages[key] = message
    for name, ch in CHANNELS.items():
        address = ch["address"]
        params: dict[str, Any] = {}
        for p, spec in PARAMETERS.items():
            if "{" + p + "}" not in address:
                continue
            if p in ("event", "action"):  # the tokens of the messages on this channel
                spec = {**spec, "enum": sorted(tokens[name])}
            params[p] = spec
        channels[name] = {
            "address": address,
            "description": ch["description"],
            "parameters": params,
            "messages": {m: {"$ref": f"#/components/messages/{m}"} for m in by_channel[name]},
            # Who works with the channel, and as which NATS user (tools/gen_nats_config.py).
            "x-audience": ch["audience"],
        }
        if "user" in ch:
            channels[name]["x-nats-user"] = ch["user"]
        operations[f"{ch['action']}_{name}"] = {
            "action": ch["action"],
            "channel": {"$ref": f"#/channels/{name}"},
            "summary": ch["description"],
            "messages": [{"$ref": f"#/channels/{name}/messages/{m}"} for m in by_channel[name]],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "gridloop",
            "version": "1.0.0",
            "description": "The public contracts of gridloop: integrators, departments and the "
            "case lifecycle. Every message is a CloudEvent (binary mode on NATS headers; "
            "integrators may also send structured mode, application/cloudevents+json).",
        },
        "defaultContentType": "application/json",
        "servers": {"nats": {"host": "localhost:4222", "protocol": "nats"}},
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


ASYNCAPI_FILE = "asyncapi.yaml"


def render() -> dict[str, str]:
    """Every exported file as {relative path: text}."""
    out = {
        f"json/{name}.json": json.dumps(
            json_schema(model), indent=2, sort_keys=True, ensure_ascii=False
        )
        + "\n"
        for name, model in sorted(REGISTRY.items())
    }
    out[ASYNCAPI_FILE] = (
        "# Generated from libs/contracts by `make schemas`: do not edit.\n"
        + yaml_text.dumps(asyncapi())
    )
    return out


def _leftovers(out_dir: Path, files: dict[str, str]) -> list[str]:
    """Files export once wrote that it no longer produces (a removed type, the old JSON
    AsyncAPI document)."""
    found = [f"json/{p.name}" for p in (out_dir / "json").glob("*.json")]
    found += [p.name for p in out_dir.glob("asyncapi.*")]
    return sorted(rel for rel in found if rel not in files)


def export(out_dir: Path) -> list[str]:
    """Write the files and remove leftovers; return the ones that changed."""
    changed = []
    files = render()
    for rel, text in files.items():
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(rel)
    for rel in _leftovers(out_dir, files):
        (out_dir / rel).unlink()
        changed.append(rel)
    return sorted(changed)


def stale(out_dir: Path) -> list[str]:
    """The exported files that are missing, different, or no longer produced."""
    files = render()
    bad = [
        rel
        for rel, text in files.items()
        if not (out_dir / rel).exists() or (out_dir / rel).read_text(encoding="utf-8") != text
    ]
    return sorted(bad + _leftovers(out_dir, files))
