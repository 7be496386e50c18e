"""Idempotent commands and refusals: one shape for REST and bus commands in every service.

A command carries a `command_id`; its outcome is stored in the same transaction as its
effect, so sending it again returns the first answer and changes nothing."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from .db import Conn


@dataclass
class Refusal(Exception):
    """A command the rules refuse. `field` names what is wrong (dotted path) when one thing
    is; `code` is a stable machine-readable reason; `status` is the HTTP status to answer."""

    reason: str
    field: str | None = None
    code: str = "refused"
    status: int = 409
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}" if self.field else self.reason

    def as_error(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "reason": self.reason}
        if self.field:
            out["field"] = self.field
        return out


def install_refusal_handler(app: FastAPI) -> None:
    @app.exception_handler(Refusal)
    async def _refused(_: Request, exc: Refusal) -> JSONResponse:
        return JSONResponse({"detail": [exc.as_error()], **exc.extra}, status_code=exc.status)


async def seen_command(conn: Conn, command_id: str) -> dict[str, Any] | None:
    """The stored answer of a command already executed, or None."""
    row = await conn.fetchrow("SELECT answer FROM commands WHERE command_id = $1", command_id)
    return None if row is None else dict(row["answer"])


async def record_command(conn: Conn, command_id: str, kind: str, answer: dict[str, Any]) -> bool:
    """Store a command's answer; False when another transaction stored it first."""
    status = await conn.execute(
        "INSERT INTO commands (command_id, kind, answer) VALUES ($1, $2, $3) "
        "ON CONFLICT (command_id) DO NOTHING",
        command_id,
        kind,
        answer,
    )
    return status.endswith(" 1")
