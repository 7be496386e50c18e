"""重建 (rebuild): replay the whole CASES stream into a fresh projection and compare it with
the live one; with `apply`, the replayed projection replaces the live one.

Reads the stream from its first message with an ephemeral pull consumer (no acks), keeps
each event id once, folds every case with the same pure function as the live projection,
and compares item by item. Events the live consumer takes in while the stream is read are
included (facts received since the replay began), and the swap happens under a lock that
holds the live consumer for the moment it takes, so nothing is lost either way. Rule-set
changes need no rebuild: scores are computed from the measures when asked.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import asyncpg
import nats.errors
import structlog
from gridloop_contracts import EnvelopeError, decode
from gridloop_contracts.envelope import JSON
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from pydantic import ValidationError

from . import repository as repo
from .domain.facts import Fact, fact_from, fact_from_json
from .domain.fold import FoldContext, fold_all
from .projection import fold_pending

log = structlog.get_logger(__name__)

STREAM = "CASES"


@dataclass
class RebuildReport:
    events_read: int = 0
    invalid: int = 0
    ignored: int = 0  # case.* types scoring does not know
    duplicates: int = 0
    late_facts: int = 0  # taken in live while the stream was read
    facts: int = 0
    cases: int = 0
    items: int = 0
    live_facts_not_in_stream: int = 0
    item_differences: int = 0
    identical: bool = False
    applied: bool = False
    read_seconds: float = 0.0
    seconds: float = 0.0
    events_per_second: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def read_stream(
    js: JetStreamContext, report: RebuildReport, *, batch: int = 2000
) -> dict[str, Fact]:
    """Every fact in the stream up to its last message now, each event id once."""
    info = await js.stream_info(STREAM)
    last = int(info.state.last_seq or 0)
    facts: dict[str, Fact] = {}
    if last == 0 or int(info.state.messages or 0) == 0:
        return facts
    config = ConsumerConfig(
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.NONE,
        inactive_threshold=60.0,
        max_ack_pending=-1,
    )
    sub = await js.pull_subscribe("case.>", stream=STREAM, config=config)
    try:
        seq = 0
        while seq < last:
            try:
                msgs = await sub.fetch(batch, timeout=5.0)
            except (TimeoutError, nats.errors.TimeoutError):
                break  # the rest was deleted by the stream's limits meanwhile
            for msg in msgs:
                seq = msg.metadata.sequence.stream
                report.events_read += 1
                try:
                    fact = _fact(msg.headers or {}, msg.data)
                except (EnvelopeError, ValidationError, ValueError):
                    report.invalid += 1
                    continue
                if fact is None:
                    report.ignored += 1
                elif fact.event_id in facts:
                    report.duplicates += 1
                else:
                    facts[fact.event_id] = fact
    finally:
        try:
            await sub.unsubscribe()
        except Exception as exc:  # an ephemeral consumer also expires by itself
            log.info("replay consumer cleanup failed", error=str(exc))
    return facts


def _fact(headers: dict[str, str], body: bytes) -> Fact | None:
    """Binary-mode CloudEvents (what services publish) straight from the headers; anything
    else through the full decoder."""
    source, event_id, type_name = (headers.get(f"ce-{k}") for k in ("source", "id", "type"))
    if source and event_id and type_name and headers.get("content-type", JSON).startswith(JSON):
        return fact_from_json(source, event_id, type_name, body)
    env = decode(headers, body)
    return fact_from(env.source, env.id, env.type, env.data)


_DIFF = """
SELECT (SELECT count(*) FROM (SELECT * FROM items EXCEPT ALL SELECT * FROM items_rebuilt) a)
     + (SELECT count(*) FROM (SELECT * FROM items_rebuilt EXCEPT ALL SELECT * FROM items) b)
"""


async def rebuild(
    pool: asyncpg.Pool,
    js: JetStreamContext,
    ctx: FoldContext,
    *,
    apply: bool = False,
    batch: int = 2000,
) -> RebuildReport:
    report = RebuildReport()
    started = time.perf_counter()
    async with pool.acquire() as conn:
        since = await repo.db_now(conn)
    facts = await read_stream(js, report, batch=batch)
    report.read_seconds = round(time.perf_counter() - started, 3)
    async with pool.acquire() as conn, conn.transaction():
        # Holds the live consumer (it inserts facts) until the comparison or swap is done;
        # reads go on.
        await conn.execute("LOCK TABLE facts IN EXCLUSIVE MODE")
        for f in await repo.facts_received_since(conn, since):
            if f.event_id not in facts:
                facts[f.event_id] = f
                report.late_facts += 1
        # Bring the live projection up to date first, so the comparison is of like with like.
        await fold_pending(conn, ctx, 2**31 - 1)
        items = fold_all(facts.values(), ctx)
        report.facts = len(facts)
        report.cases = len({f.case_id for f in facts.values()})
        report.items = len(items)
        await conn.execute("CREATE TEMP TABLE items_rebuilt (LIKE items) ON COMMIT DROP")
        await repo.copy_items(conn, "items_rebuilt", items)
        await conn.execute(
            "CREATE TEMP TABLE facts_rebuilt (event_id text PRIMARY KEY) ON COMMIT DROP"
        )
        await conn.copy_records_to_table(
            "facts_rebuilt", records=[(k,) for k in facts], columns=["event_id"]
        )
        report.live_facts_not_in_stream = int(
            await conn.fetchval(
                "SELECT count(*) FROM facts f WHERE NOT EXISTS "
                "(SELECT 1 FROM facts_rebuilt r WHERE r.event_id = f.event_id)"
            )
        )
        report.item_differences = int(await conn.fetchval(_DIFF))
        report.identical = report.item_differences == 0 and report.live_facts_not_in_stream == 0
        if apply:
            await conn.execute("TRUNCATE facts, items, dirty_cases")
            await repo.copy_facts(conn, facts.values())
            await conn.execute("INSERT INTO items SELECT * FROM items_rebuilt")
            report.applied = True
    report.seconds = round(time.perf_counter() - started, 3)
    if report.read_seconds > 0:
        report.events_per_second = round(report.events_read / report.read_seconds, 1)
    log.info("rebuild done", **report.as_dict())
    return report
