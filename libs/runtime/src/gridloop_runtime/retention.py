"""How long a service keeps the runtime's bookkeeping rows: the timers that fired or were
cancelled, the inbox (the event ids it has handled), the outbox (every event it published)
and the answers of idempotent commands.

Each service deletes its own old rows every `RETENTION_EVERY_S`, a chunk of `CHUNK` rows per
statement (short locks, no long transaction); replicas take turns through an advisory lock.
A retention of 0 days keeps the rows for ever: the default for the inbox, the outbox and the
commands, whose rows are what makes re-publishing and re-sending safe:

- the **outbox** is the re-publishable log JetStream can be rebuilt from: rows older than
  `OUTBOX_RETENTION_DAYS` can no longer be re-published (back `CASES` up instead, `nats
  stream backup`); rows not yet sent are never deleted;
- the **inbox** makes a re-published or redelivered event take effect once: an event
  delivered again after its inbox row is gone takes effect again. So the inbox is kept at
  least as long as the outbox (checked at start-up), and re-publishing reaches back no
  further than `INBOX_RETENTION_DAYS`;
- a **command** re-sent after its answer is gone is taken as new: keep answers longer than
  any sender retries (the department kits retry for minutes).

Timers that fired or were cancelled are history nobody reads (the events they caused are
in the outbox and the case files): `TIMERS_RETENTION_DAYS`, 30 by default.

JetStream's streams keep their messages for ever unless `STREAM_MAX_AGE_DAYS` gives one an
age (`stream_ages`; the streams are created and updated by the services, bus.ensure_streams):
the feeds read once (reports in, the departments' and integrators' feeds, the departments'
commands, scores, dead letters) may age; `CASES`, read again from its first event by every
replay, never does."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import Final

import asyncpg
import structlog
from gridloop_contracts.subjects import STREAMS

from . import metrics
from .db import check_schema, lock_key
from .waits import wait_set

log = structlog.get_logger(__name__)

CHUNK = 5000

# table -> the rows that may go once older than the table's retention: the cut-off is the
# database's now() (the time columns' default) less $1 seconds
_CUT = "now() - make_interval(secs => $1)"
_OLD = {
    "timers": f"created_at < {_CUT} AND (fired_at IS NOT NULL OR cancelled_at IS NOT NULL)",
    "inbox": f"processed_at < {_CUT}",
    # published: not listed as pending, not an earlier release's row left unsent
    "outbox": f"created_at < {_CUT} AND sent_at IS NOT NULL "
    "AND NOT EXISTS (SELECT 1 FROM outbox_pending p WHERE p.seq = outbox.seq)",
    "commands": f"created_at < {_CUT}",
}


@dataclass(frozen=True)
class Retention:
    """Days each table's rows are kept (0: for ever)."""

    timers_days: float = 30.0
    inbox_days: float = 0.0
    outbox_days: float = 0.0
    commands_days: float = 0.0

    def days(self) -> dict[str, float]:
        return {
            "timers": self.timers_days,
            "inbox": self.inbox_days,
            "outbox": self.outbox_days,
            "commands": self.commands_days,
        }

    def problem(self) -> str | None:
        """Why this retention is unsafe, naming the setting; None when it is not."""
        if self.outbox_days and self.inbox_days and self.inbox_days < self.outbox_days:
            return (
                "INBOX_RETENTION_DAYS must be 0 (for ever) or at least OUTBOX_RETENTION_DAYS: "
                "a re-published event whose inbox row is gone would take effect twice"
            )
        if self.outbox_days == 0 and self.inbox_days:
            return (
                "INBOX_RETENTION_DAYS needs OUTBOX_RETENTION_DAYS at most as long: the whole "
                "outbox can be re-published, and an event whose inbox row is gone would take "
                "effect twice"
            )
        return None


# Streams read again from their first message: CASES (scoring's replay, a new read model, the
# case files built again; docs/operations.md "Replay a projection"). Never aged.
STREAMS_KEPT_FOR_EVER: Final = frozenset({"CASES"})
# Shorter, and a report would be lost whenever intake stood still over a night.
MIN_STREAM_AGE_DAYS: Final = 1.0


def stream_ages(text: str) -> dict[str, float]:
    """`STREAM_MAX_AGE_DAYS` read: `"INTAKE=30, DISPATCH=90"` gives `{"INTAKE": 30.0,
    "DISPATCH": 90.0}`, the days each named stream keeps a message (0: for ever). A stream not
    named keeps the age it has (none when the services created it). ValueError naming the
    setting and the stream for a stream that does not exist, one named twice, `CASES`, or an
    age that is not 0 nor at least MIN_STREAM_AGE_DAYS."""
    known = {spec.name for spec in STREAMS}
    ages: dict[str, float] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        name, sep, value = item.partition("=")
        name = name.strip().upper()
        if not sep:
            raise ValueError(f"STREAM_MAX_AGE_DAYS: {item.strip()!r} is not STREAM=DAYS")
        if name not in known:
            raise ValueError(
                f"STREAM_MAX_AGE_DAYS: no stream {name!r} (streams: {', '.join(sorted(known))})"
            )
        if name in STREAMS_KEPT_FOR_EVER:
            raise ValueError(
                f"STREAM_MAX_AGE_DAYS: {name} keeps every event for ever: scoring's replay and "
                "every read model built again read it from its first event"
            )
        if name in ages:
            raise ValueError(f"STREAM_MAX_AGE_DAYS: {name} is named twice")
        try:
            days = float(value)
        except ValueError:
            raise ValueError(
                f"STREAM_MAX_AGE_DAYS: {name}={value.strip()!r} is not a number of days"
            ) from None
        if not math.isfinite(days) or (days != 0 and days < MIN_STREAM_AGE_DAYS):
            raise ValueError(
                f"STREAM_MAX_AGE_DAYS: {name}={value.strip()} must be 0 (for ever) or at least "
                f"{MIN_STREAM_AGE_DAYS:g} day: a shorter age loses what came in while its "
                "reader stood still"
            )
        ages[name] = days
    return ages


async def prune(pool: asyncpg.Pool, schema: str, retention: Retention) -> dict[str, int]:
    """Delete the rows past their retention; how many went per table (nothing when another
    replica is pruning the schema right now)."""
    check_schema(schema)
    gone: dict[str, int] = {}
    for table, days in retention.days().items():
        if days <= 0:
            continue
        total = 0
        # the table's name and condition are this module's own constants, never input
        delete = (
            f"DELETE FROM {table} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {table} "
            f"WHERE {_OLD[table]} LIMIT {CHUNK}))"
        )
        while True:
            async with pool.acquire() as conn, conn.transaction():
                if not await conn.fetchval(
                    "SELECT pg_try_advisory_xact_lock($1)", lock_key(f"retention:{schema}")
                ):
                    return gone
                status = await conn.execute(delete, days * 86400)
            deleted = int(status.split()[-1])
            total += deleted
            if deleted < CHUNK:
                break
        if total:
            gone[table] = total
            metrics.ROWS_PRUNED.labels(schema, table).inc(total)
    if gone:
        log.info("old rows deleted", schema=schema, rows=gone)
    return gone


async def keep_pruned(
    pool: asyncpg.Pool, schema: str, retention: Retention, every_s: float, stop: asyncio.Event
) -> None:
    """Prune every `every_s` seconds until `stop` is set."""
    while not stop.is_set():
        try:
            await prune(pool, schema, retention)
        except Exception as exc:  # a database away for a while: again next round
            log.warning("deleting old rows failed", schema=schema, error=str(exc))
        await wait_set(stop, every_s)
