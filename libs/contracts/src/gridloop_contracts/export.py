"""Export the contracts: one JSON Schema per event type and one AsyncAPI 3.0 document."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from . import REGISTRY
from .base import Event
from .examples import EXAMPLES

SCHEMA_BASE = "https://gridloop.dev/schemas/"

# Where each family of types travels; parameters in braces.
CHANNELS: dict[str, dict[str, Any]] = {
    "intake": {
        "address": "intake.{channel}.{source}",
        "description": "Reports and detections from integrators (INTAKE stream).",
        "prefixes": ("gridloop.report.v1", "gridloop.detection.v1", "gridloop.rating.v1"),
        "action": "receive",
    },
    "case": {
        "address": "case.{event}",
        "description": "Case lifecycle events (CASES stream): the replay source of projections.",
        "prefixes": ("gridloop.case.",),
        "exclude": ("gridloop.case.status.v1",),
        "action": "send",
    },
    "dispatch": {
        "address": "dispatch.{dept}.{event}",
        "description": "The department feed (DISPATCH stream); each department only its own.",
        "prefixes": ("gridloop.dispatch.",),
        "action": "send",
    },
    "handling": {
        "address": "handling.{dept}.{action}",
        "description": "Commands from departments' own systems (HANDLING stream).",
        "prefixes": ("gridloop.handling.",),
        "action": "receive",
    },
    "notify": {
        "address": "notify.{source}",
        "description": "Answers to integrators: status changes and rejections (NOTIFY stream).",
        "prefixes": ("gridloop.case.status.v1", "gridloop.report.rejected.v1"),
        "action": "send",
    },
    "score": {
        "address": "score.{event}",
        "description": "Published scores and rankings (SCORES stream).",
        "prefixes": ("gridloop.score.",),
        "action": "send",
    },
}

PARAMETERS = {
    "channel": {
        "enum": ["hotline", "video", "patrol", "web"],
        "description": "The report channel.",
    },
    "source": {"description": "A configured integrator code (letters, digits, '-')."},
    "dept": {"description": "A configured department code (letters, digits, '-')."},
    "event": {"description": "The event token, e.g. accepted, assigned."},
    "action": {"enum": ["signed", "returned", "extension_requested", "progress", "handled"]},
}

CE_HEADERS = {
    "type": "object",
    "description": "CloudEvents 1.0 binary mode on NATS headers.",
    "properties": {
        "ce-specversion": {"type": "string", "const": "1.0"},
        "ce-id": {"type": "string"},
        "ce-source": {"type": "string"},
        "ce-type": {"type": "string"},
        "ce-time": {"type": "string", "format": "date-time"},
        "ce-subject": {"type": "string", "description": "The case id, where there is one."},
        "content-type": {"type": "string", "const": "application/json"},
        "Nats-Msg-Id": {"type": "string", "description": "= ce-id: JetStream drops duplicates."},
        "traceparent": {"type": "string", "description": "W3C trace context."},
    },
    "required": ["ce-specversion", "ce-id", "ce-source", "ce-type"],
}


def json_schema(model: type[Event]) -> dict[str, Any]:
    schema = model.model_json_schema(mode="validation")
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


def asyncapi() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    by_channel: dict[str, list[str]] = {name: [] for name in CHANNELS}
    for type_name in sorted(REGISTRY):
        model = REGISTRY[type_name]
        key = type_name.replace(".", "_")
        by_channel[_channel_of(type_name)].append(key)
        message: dict[str, Any] = {
            "name": type_name,
            "title": model.summary,
            "contentType": "application/json",
            "headers": CE_HEADERS,
            "payload": {"$ref": f"./json/{type_name}.json"},
        }
        if type_name in EXAMPLES:
            message["examples"] = [{"payload": EXAMPLES[type_name].to_json_dict()}]
        messages[key] = message
    for name, ch in CHANNELS.items():
        address = ch["address"]
        params = {p: PARAMETERS[p] for p in PARAMETERS if "{" + p + "}" in address}
        channels[name] = {
            "address": address,
            "description": ch["description"],
            "parameters": params,
            "messages": {m: {"$ref": f"#/components/messages/{m}"} for m in by_channel[name]},
        }
        operations[f"{ch['action']}_{name}"] = {
            "action": ch["action"],
            "channel": {"$ref": f"#/channels/{name}"},
            "summary": ch["description"],
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


def render() -> dict[str, str]:
    """Every exported file as {relative path: text}."""
    out = {
        f"json/{name}.json": json.dumps(
            json_schema(model), indent=2, sort_keys=True, ensure_ascii=False
        )
        + "\n"
        for name, model in sorted(REGISTRY.items())
    }
    # JSON is valid YAML: the AsyncAPI document is written as JSON text in asyncapi.yaml's
    # sibling asyncapi.json so no YAML library is needed to produce or read it.
    out["asyncapi.json"] = (
        json.dumps(asyncapi(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    )
    return out


def export(out_dir: Path) -> list[str]:
    """Write the files; return the ones whose content changed."""
    changed = []
    files = render()
    for rel, text in files.items():
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(rel)
    return changed


def stale(out_dir: Path) -> list[str]:
    """The exported files that are missing, different, or no longer produced."""
    files = render()
    bad = [
        rel
        for rel, text in files.items()
        if not (out_dir / rel).exists() or (out_dir / rel).read_text(encoding="utf-8") != text
    ]
    if (out_dir / "json").is_dir():
        bad += [
            f"json/{p.name}"
            for p in (out_dir / "json").glob("*.json")
            if f"json/{p.name}" not in files
        ]
    return sorted(bad)
