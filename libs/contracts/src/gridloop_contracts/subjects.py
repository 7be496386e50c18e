"""Subjects and streams of the gridloop bus: the one place their names are spelled."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

if TYPE_CHECKING:
    from .base import Event

Channel = Literal["hotline", "video", "patrol", "web"]
CHANNELS: Final[tuple[Channel, ...]] = ("hotline", "video", "patrol", "web")

# <source> and <dept> are configured codes: letters, digits and '-'.
CODE_PATTERN: Final = re.compile(r"^[A-Za-z0-9-]+$")


@dataclass(frozen=True)
class StreamSpec:
    """A JetStream stream: its name and the subjects it captures."""

    name: str
    subjects: tuple[str, ...]
    description: str


STREAMS: Final[tuple[StreamSpec, ...]] = (
    StreamSpec("INTAKE", ("intake.>",), "reports from integrators: intake.<channel>.<source>"),
    StreamSpec("CASES", ("case.>",), "case lifecycle events: case.<event>"),
    StreamSpec("DISPATCH", ("dispatch.>",), "department feed: dispatch.<dept>.<event>"),
    StreamSpec("HANDLING", ("handling.>",), "department commands: handling.<dept>.<action>"),
    StreamSpec("NOTIFY", ("notify.>",), "answers to integrators: notify.<source>"),
    StreamSpec("SCORES", ("score.>",), "published performance scores: score.<event>"),
    StreamSpec("DLQ", ("dlq.>",), "messages that exhausted their deliveries: dlq.<service>"),
)


def check_code(code: str, what: str = "code") -> str:
    """Return `code` if it is a valid subject token, else raise ValueError naming `what`."""
    if not CODE_PATTERN.fullmatch(code):
        raise ValueError(f"{what} {code!r} must be letters, digits or '-'")
    return code


def intake(channel: Channel, source: str) -> str:
    """Where an integrator publishes a report or detection."""
    if channel not in CHANNELS:
        raise ValueError(f"channel {channel!r} is not one of {CHANNELS}")
    return f"intake.{channel}.{check_code(source, 'source')}"


# A report intake took over REST or Open311 (`inbound.ReportTakenV1`), on `intake_taken`.
TAKEN_TYPE: Final = "gridloop.report.taken.v1"


def intake_taken(source: str) -> str:
    """Where intake keeps a report it took over REST or Open311 (`ReportTakenV1`): in the
    INTAKE stream, under a token no channel has, so no integrator may publish there."""
    return f"intake.taken.{check_code(source, 'source')}"


# A department command handling took over REST (`department.CommandTakenV1`).
COMMAND_TAKEN_TYPE: Final = "gridloop.handling.taken.v1"


def handling_taken(dept: str) -> str:
    """Where handling keeps a command it took over REST: in the HANDLING stream, under a token
    no department code can be (codes hold no `_`), so no department may publish there."""
    return f"handling._taken.{check_code(dept, 'dept')}"


def case(event: str) -> str:
    """Where a case lifecycle event is published."""
    return f"case.{event}"


def dispatch(dept: str, event: str) -> str:
    """Where dispatch tells a department about one of its cases."""
    return f"dispatch.{check_code(dept, 'dept')}.{event}"


def dispatch_all(dept: str) -> str:
    """What a department subscribes to."""
    return f"dispatch.{check_code(dept, 'dept')}.>"


def handling(dept: str, action: str) -> str:
    """Where a department's own system sends a command."""
    return f"handling.{check_code(dept, 'dept')}.{action}"


def notify(source: str) -> str:
    """Where intake answers an integrator."""
    return f"notify.{check_code(source, 'source')}"


def score(event: str) -> str:
    """Where scoring publishes results."""
    return f"score.{event}"


def city(event: str) -> str:
    """Where a new version of the city's data is announced (core NATS: every process hears it)."""
    return f"city.{event}"


def dlq(service: str) -> str:
    """Where the runtime parks a message that exhausted its deliveries."""
    return f"dlq.{check_code(service, 'service')}"


def parse_intake(subject: str) -> tuple[Channel, str]:
    """Split `intake.<channel>.<source>`; raise ValueError when it is not one."""
    parts = subject.split(".")
    if len(parts) != 3 or parts[0] != "intake" or parts[1] not in CHANNELS:
        raise ValueError(f"not an intake subject: {subject!r}")
    return parts[1], parts[2]


def parse_handling(subject: str) -> tuple[str, str]:
    """Split `handling.<dept>.<action>` into (dept, action)."""
    parts = subject.split(".")
    if len(parts) != 3 or parts[0] != "handling":
        raise ValueError(f"not a handling subject: {subject!r}")
    return parts[1], parts[2]


def subject_for(event: Event, **kw: str) -> str:
    """The subject an event travels on, from its type: `case.<token>`,
    `dispatch.<dept>.<token>`, `handling.<dept>.<token>`, `intake.<channel>.<source>`,
    `intake.taken.<source>`, `handling._taken.<dept>`, `notify.<source>`, `score.<token>` or
    `city.<token>`.

    Codes the event does not carry come from `kw` (`source=` for intake and notify,
    `channel=` for reports; `dept=` overrides the event's own). ValueError names what is
    missing.
    """
    family = event.type_name.split(".")[1]
    token = event.subject_token
    if event.type_name == TAKEN_TYPE:
        source = getattr(event, "source", None)
        return intake_taken(source if isinstance(source, str) else _need(kw, "source", event))
    if event.type_name == COMMAND_TAKEN_TYPE:
        command = getattr(event, "command", None)
        dept = kw.get("dept") or (command.get("dept") if isinstance(command, dict) else None)
        if not isinstance(dept, str) or not dept:
            raise ValueError(f"dept: {event.type_name} needs dept=")
        return handling_taken(dept)
    if event.type_name in NOTIFY_TYPES:
        return notify(_need(kw, "source", event))
    if family == "case":
        return case(token)
    if family in ("dispatch", "handling"):
        dept = kw.get("dept") or getattr(event, "dept", None)
        if not isinstance(dept, str) or not dept:
            # The command answer carries no dept: it goes back to whoever sent the command.
            raise ValueError(f"dept: {event.type_name} needs dept=")
        return dispatch(dept, token) if family == "dispatch" else handling(dept, token)
    if family in ("report", "rating", "detection"):
        default: Channel | None = "video" if family == "detection" else None
        ch = kw.get("channel") or default
        if ch is None:
            raise ValueError(f"channel: {event.type_name} needs channel=")
        if ch not in CHANNELS:
            raise ValueError(f"channel {ch!r} is not one of {CHANNELS}")
        return intake(ch, _need(kw, "source", event))
    if family == "score":
        return score(token)
    if family == "city":
        return city(token)
    raise ValueError(f"no subject for {event.type_name}")


NOTIFY_TYPES: Final = frozenset({"gridloop.case.status.v1", "gridloop.report.rejected.v1"})
"""Types answered to an integrator on `notify.<source>` rather than their family's subject."""


def _need(kw: dict[str, str], name: str, event: Event) -> str:
    value = kw.get(name) or getattr(event, name, None)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name}: {event.type_name} needs {name}=")
    return value
