"""重建 (rebuild): replay the whole CASES stream into a fresh projection and compare it with
the live one; with `apply`, the replayed projection replaces the live one.

Made for millions of events in bounded memory:
1. **Read** (`stream.read`): the stream from its first message in big pull batches without
   acks. Each event is only cut out of the wire and filed by its case (`ce-subject`, checked
   against the body) into one of a few dozen temporary bucket files, so every case's events
   end up in one bucket and no bucket is large.
2. **Fold**, one bucket at a time, inside one transaction that holds the live consumer
   (`LOCK TABLE facts`): the facts the live consumer took in while the stream was read join
   their buckets; each event id is kept once; every case is folded with the same pure
   `fold_case` as the live projection; items (and, to apply, the facts) go to PostgreSQL by
   binary COPY while the next bucket is folded.
3. **Compare** item by item (and the live facts the stream lacks), and with `apply` swap.

Events are decoded with orjson and kept as JSON (what the fold reads) after a check of the
type's required fields and of `occurred_at`; an event failing that check, and every event of
a case the fold trips on, is validated with the full contract model, so a message that
breaks the contract is left out here as the live consumer leaves it out (DLQ). `validate`
checks every event with the model (slower). Rule-set changes need no rebuild: scores are
computed from the measures when asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import marshal
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

import asyncpg
import orjson
import structlog
from gridloop_contracts import EnvelopeError, decode
from gridloop_contracts.envelope import JSON
from gridloop_runtime.consumer import from_gridloop
from gridloop_runtime.db import Conn
from nats.js import JetStreamContext
from pydantic import ValidationError

from . import repository as repo
from . import stream
from .domain.facts import (
    MODEL_BY_TYPE,
    Fact,
    event_key,
    fact_from_data,
    fact_from_json,
    type_of,
)
from .domain.fold import FoldContext, Item, fold_case
from .projection import fold_pending

log = structlog.get_logger(__name__)

STREAM = "CASES"
# Events per bucket the replay aims at: what one fold step holds in memory.
BUCKET_EVENTS = 12_000
MAX_BUCKETS = 512
LATE = -1  # the sequence of a fact taken in live while the stream was read

# (stream sequence, event key, case id, CloudEvents type, JSON data)
Record = tuple[int, str, str, str, bytes]


@dataclass
class RebuildReport:
    events_read: int = 0
    invalid: int = 0
    ignored: int = 0  # case.* types scoring does not know
    duplicates: int = 0
    late_facts: int = 0  # taken in live while the stream was read
    validated: int = 0  # events checked with the full contract model
    facts: int = 0
    cases: int = 0
    items: int = 0
    live_facts_not_in_stream: int = 0
    item_differences: int = 0
    identical: bool = False
    applied: bool = False
    buckets: int = 0
    read_seconds: float = 0.0
    fold_seconds: float = 0.0  # decoding and folding only (the rest of phase 2 is COPY)
    seconds: float = 0.0
    events_per_second: float = 0.0  # end to end: reading, folding, writing, comparing
    read_events_per_second: float = 0.0
    fold_events_per_second: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Buckets:
    """Records filed by case into temporary files (marshal frames), read back bucket by
    bucket: all of a case's records are in one bucket."""

    def __init__(self, directory: Path, n: int, *, frame: int = 256) -> None:
        self.n = n
        self.frame = frame
        self.paths = [directory / f"{i:03d}" for i in range(n)]
        self.files: list[IO[bytes]] = [p.open("wb") for p in self.paths]
        self.pending: list[list[Record]] = [[] for _ in range(n)]
        self.closed = False

    def add(self, record: Record) -> None:
        b = hash(record[2]) % self.n
        p = self.pending[b]
        p.append(record)
        if len(p) >= self.frame:
            marshal.dump(p, self.files[b])
            p.clear()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for b, f in enumerate(self.files):
            if self.pending[b]:
                marshal.dump(self.pending[b], f)
                self.pending[b] = []
            f.close()

    def read(self, b: int) -> list[Record]:
        out: list[Record] = []
        with self.paths[b].open("rb") as f:
            while True:
                try:
                    out.extend(marshal.load(f))
                except EOFError:
                    return out


def _record(seq: int, headers: dict[str, str], body: bytes) -> Record | str:
    """The record of one stream message, or why it has none (`ignored`, `invalid`)."""
    if not from_gridloop(headers):
        return "ignored"  # not from a gridloop service: the live consumer drops it too
    source = headers.get("ce-source")
    event_id = headers.get("ce-id")
    type_name = headers.get("ce-type")
    if source and event_id and type_name and headers.get("content-type", JSON).startswith(JSON):
        if type_name not in MODEL_BY_TYPE:
            return "ignored"
        case_id = headers.get("ce-subject")
        if not case_id or f'"case_id":"{case_id}"'.encode() not in body:
            try:
                data = orjson.loads(body)
            except orjson.JSONDecodeError:
                return "invalid"
            case_id = data.get("case_id") if isinstance(data, dict) else None
            if not isinstance(case_id, str):
                return "invalid"
        return (seq, event_key(source, event_id), case_id, type_name, body)
    # Anything else (structured mode) through the full decoder.
    try:
        env = decode(headers, body)
    except EnvelopeError:
        return "invalid"
    if env.type not in MODEL_BY_TYPE:
        return "ignored"
    case_id = env.data.get("case_id") if isinstance(env.data, dict) else None
    if not isinstance(case_id, str):
        return "invalid"
    return (seq, event_key(env.source, env.id), case_id, env.type, orjson.dumps(env.data))


async def read_stream(
    js: JetStreamContext, report: RebuildReport, directory: Path, *, batch: int = 20_000
) -> Buckets:
    """Every event of the stream up to its last message now, filed by case (the buckets
    stay open for the facts taken in live meanwhile; `close` them before reading)."""
    info = await js.stream_info(STREAM)
    n = min(MAX_BUCKETS, max(1, int(info.state.messages or 0) // BUCKET_EVENTS + 1))
    buckets = Buckets(directory, n)
    report.buckets = n
    counts = {"ignored": 0, "invalid": 0}
    try:
        async for msgs in stream.read(js, STREAM, "case.>", batch=batch):
            report.events_read += len(msgs)
            for seq, headers, body in msgs:
                r = _record(seq, headers, body)
                if isinstance(r, str):
                    counts[r] += 1
                else:
                    buckets.add(r)
    except BaseException:
        buckets.close()
        raise
    report.ignored += counts["ignored"]
    report.invalid += counts["invalid"]
    return buckets


def _late_record(f: Fact) -> Record:
    return (LATE, f.event_id, f.case_id, type_of(f), orjson.dumps(dict(f.data)))


def _strict(record: Record) -> Fact | None:
    """The event validated with the full contract model (None: it breaks the contract)."""
    _, key, _, type_name, body = record
    try:
        fact = fact_from_json("", "", type_name, body)
    except (ValidationError, ValueError):
        return None
    if fact is None:
        return None
    return Fact(key, fact.case_id, fact.type, fact.occurred_at, fact.data)


@dataclass
class Folded:
    items: list[Item]
    facts: list[tuple[Any, ...]]  # the facts table's rows (data as JSON bytes), or event ids


def fold_bucket(
    records: list[Record],
    ctx: FoldContext,
    report: RebuildReport,
    *,
    validate: bool = False,
    whole_facts: bool = True,
) -> Folded:
    """Decode, keep each event id once (the first the stream delivered), fold every case."""
    cases: dict[str, dict[str, Fact]] = {}
    bodies: dict[str, bytes] = {}
    loads, decode_error = orjson.loads, orjson.JSONDecodeError
    invalid = duplicates = late = checked = 0
    for r in records:
        seq, key, _, type_name, body = r
        fact = None
        if not validate:
            with contextlib.suppress(decode_error):
                fact = fact_from_data(key, type_name, loads(body))
        if fact is None:
            checked += 1
            fact = _strict(r)
            if fact is None:
                invalid += 1
                continue
        facts = cases.get(fact.case_id)
        if facts is None:
            facts = cases[fact.case_id] = {}
        elif key in facts:
            if seq != LATE:
                duplicates += 1
            continue
        if seq == LATE:
            late += 1
        facts[key] = fact
        bodies[key] = body
    out = Folded([], [])
    items, rows = out.items, out.facts
    for case_id, facts in cases.items():
        try:
            items.extend(fold_case(facts.values(), ctx))
        except (ValueError, TypeError, KeyError, AttributeError):
            # JSON the quick check let through but the fold cannot read: validate the case.
            mine = [r for r in records if r[1] in facts and r[2] == case_id]
            strict = {r[1]: _strict(r) for r in mine}
            checked += len(strict)
            invalid += sum(1 for f in strict.values() if f is None)
            facts = cases[case_id] = {k: f for k, f in strict.items() if f is not None}
            items.extend(fold_case(facts.values(), ctx))
        if whole_facts:
            for key, f in facts.items():
                rows.append((key, f.case_id, f.type, f.occurred_at, bodies[key]))
        else:
            rows.extend((key,) for key in facts)
    report.invalid += invalid
    report.duplicates += duplicates
    report.late_facts += late
    report.validated += checked
    report.facts += len(rows)
    report.cases += len(cases)
    report.items += len(items)
    return out


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
    batch: int = 20_000,
    validate: bool = False,
) -> RebuildReport:
    report = RebuildReport()
    started = time.perf_counter()
    async with pool.acquire() as conn:
        since = await repo.db_now(conn)
    with tempfile.TemporaryDirectory(prefix="gridloop-replay-") as tmp:
        buckets = await read_stream(js, report, Path(tmp), batch=batch)
        report.read_seconds = round(time.perf_counter() - started, 3)
        try:
            async with pool.acquire() as conn, conn.transaction():
                await _compare_and_swap(conn, buckets, ctx, report, since, apply, validate)
        finally:
            buckets.close()
    report.seconds = round(time.perf_counter() - started, 3)
    if report.seconds > 0:
        report.events_per_second = round(report.events_read / report.seconds, 1)
    if report.read_seconds > 0:
        report.read_events_per_second = round(report.events_read / report.read_seconds, 1)
    if report.fold_seconds > 0:
        report.fold_events_per_second = round(report.events_read / report.fold_seconds, 1)
    report.fold_seconds = round(report.fold_seconds, 3)
    log.info("rebuild done", **report.as_dict())
    return report


async def _compare_and_swap(
    conn: Conn,
    buckets: Buckets,
    ctx: FoldContext,
    report: RebuildReport,
    since: dt.datetime,
    apply: bool,
    validate: bool,
) -> None:
    # Holds the live consumer (it inserts facts) until the comparison or swap is done;
    # reads go on.
    await conn.execute("LOCK TABLE facts IN EXCLUSIVE MODE")
    for f in await repo.facts_received_since(conn, since):
        buckets.add(_late_record(f))
    buckets.close()
    # Bring the live projection up to date first, so the comparison is of like with like.
    await fold_pending(conn, ctx, 2**31 - 1)
    await _fold_into(conn, buckets, ctx, report, validate=validate, whole_facts=apply)
    report.live_facts_not_in_stream = int(
        await conn.fetchval(
            "SELECT count(*) FROM facts f WHERE NOT EXISTS "
            "(SELECT 1 FROM facts_rebuilt r WHERE r.event_id = f.event_id)"
        )
    )
    if await conn.fetchval("SELECT NOT EXISTS (SELECT 1 FROM items)"):
        report.item_differences = report.items  # nothing live: every replayed item differs
    else:
        report.item_differences = int(await conn.fetchval(_DIFF))
    report.identical = report.item_differences == 0 and report.live_facts_not_in_stream == 0
    if apply:
        await repo.swap_in(conn, "facts_rebuilt", "items_rebuilt")
        report.applied = True


async def _fold_into(
    conn: Conn,
    buckets: Buckets,
    ctx: FoldContext,
    report: RebuildReport,
    *,
    validate: bool,
    whole_facts: bool,
) -> None:
    """Fold bucket after bucket into the scratch tables `facts_rebuilt` and `items_rebuilt`;
    each bucket's COPY runs while the next one is folded."""
    await repo.create_scratch(conn, "facts_rebuilt", "items_rebuilt")
    writing: asyncio.Task[None] | None = None
    try:
        for folded in _folds(buckets, ctx, report, validate=validate, whole_facts=whole_facts):
            if writing is not None:
                await writing
            writing = asyncio.create_task(
                repo.copy_scratch(
                    conn, "facts_rebuilt", "items_rebuilt", folded.facts, folded.items
                )
            )
            await asyncio.sleep(0)  # let the COPY start before the next fold
        if writing is not None:
            await writing
    except BaseException:
        if writing is not None and not writing.done():
            writing.cancel()
        raise


def _folds(
    buckets: Buckets, ctx: FoldContext, report: RebuildReport, *, validate: bool, whole_facts: bool
) -> Iterator[Folded]:
    for b in range(buckets.n):
        t0 = time.perf_counter()
        records = buckets.read(b)
        folded = fold_bucket(records, ctx, report, validate=validate, whole_facts=whole_facts)
        report.fold_seconds += time.perf_counter() - t0
        yield folded
