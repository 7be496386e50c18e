"""Subjects and streams of the gridloop bus: the one place their names are spelled."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

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
