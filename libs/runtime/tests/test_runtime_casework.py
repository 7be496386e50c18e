"""The batch unit of work over pure per-case rules (casework.py): the rules' effects in stream
order per case, one transaction per batch, timers set and moved, a poisoned message alone in
the DLQ, and one replica at a time consuming an ordered durable; commands on one case each
that arrive together in one transaction, answered as if each had run alone."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, cast

import asyncpg
import nats
from gridloop_contracts import Envelope, Event, to_binary
from gridloop_contracts.problems import Refusal
from gridloop_devkit.testing import running, settings_for, wait_for
from gridloop_runtime import db, tracing
from gridloop_runtime.casework import CaseCommands, CommandRule, Inbound, Rules, apply_batch
from gridloop_runtime.clock import FakeClock
from gridloop_runtime.consumer import ConsumerSpec
from gridloop_runtime.db import Conn, lock_key
from gridloop_runtime.outbox import write_all
from gridloop_runtime.service import ServiceDefinition
from gridloop_runtime.step import Step, Timer, TimerOp, plan_timer_ops
from gridloop_runtime.writes import Writes, gathered
from opentelemetry import context as otel_context

MIGRATIONS = Path(__file__).parent / "sql_tally"
T0 = datetime(2026, 12, 1, 9, tzinfo=UTC)


class Counted(Event):
    type_name: ClassVar[str] = "gridloop.case.counted.v1"
    subject_token: ClassVar[str] = "counted"
    case_id: str
    n: int


class Totalled(Event):
    type_name: ClassVar[str] = "gridloop.case.totalled.v1"
    subject_token: ClassVar[str] = "totalled"
    case_id: str
    total: int


@dataclass
class Tally:
    case_id: str
    total: int = 0
    seen: list[int] = field(default_factory=list)
    changed: bool = False


class TallyStore:
    def __init__(self) -> None:
        self.loads: list[int] = []

    async def load(self, conn: Conn, case_ids: Sequence[str]) -> dict[str, Tally]:
        self.loads.append(len(case_ids))
        rows = await conn.fetch(
            "SELECT case_id, total, seen FROM tallies WHERE case_id = ANY($1::text[]) FOR UPDATE",
            list(case_ids),
        )
        found = {r["case_id"]: Tally(r["case_id"], r["total"], list(r["seen"])) for r in rows}
        return {c: found.get(c) or Tally(c) for c in case_ids}

    async def save(self, conn: Conn, states: Sequence[Tally], writes: Writes | None = None) -> None:
        changed = [s for s in states if s.changed]
        if changed:
            async with gathered(conn, writes) as out:
                out.add(
                    "INSERT INTO tallies (case_id, total, seen) "
                    "SELECT c, t, string_to_array(s, ',')::int[] "
                    "FROM unnest($1::text[], $2::int[], $3::text[]) AS u(c, t, s) "
                    "ON CONFLICT (case_id) DO UPDATE SET total = EXCLUDED.total, "
                    "seen = EXCLUDED.seen",
                    [s.case_id for s in changed],
                    [s.total for s in changed],
                    [",".join(map(str, s.seen)) for s in changed],
                )


def on_counted(state: Tally, e: Counted, step: Step) -> None:
    """Pure: order matters (a poisoned n < 0 is refused as a programming error)."""
    if e.n < 0:
        raise ValueError("negative count")
    state.total += e.n
    state.seen.append(e.n)
    state.changed = True
    step.emit(Totalled(case_id=state.case_id, total=state.total))
    step.schedule("recount", f"{state.case_id}/recount", step.now() + timedelta(hours=1))


def on_recount(state: Tally, timer: Timer, step: Step) -> None:
    step.emit(Totalled(case_id=state.case_id, total=-state.total))


def tally_rules(store: TallyStore) -> Rules[Tally]:
    return Rules(store=store, events={Counted: on_counted}, timers={"recount": on_recount})


def tally_definition(rules: Rules[Tally]) -> ServiceDefinition:
    return ServiceDefinition(
        name="tally",
        migrations_dir=MIGRATIONS,
        consumers=[ConsumerSpec("tally-cases", "CASES", rules=rules)],
        timer_rules=rules,
    )


async def publish(js: object, events: Sequence[Counted]) -> None:
    for i, e in enumerate(events):
        env = Envelope.of(
            e, source="/gridloop/test", subject=e.case_id, id=f"c-{e.case_id}-{i}-{e.n}"
        )
        headers, body = to_binary(env)
        await js.publish("case.counted", body, headers=headers)  # type: ignore[attr-defined]


# -- pure: the timer changes of a batch as one plan ------------------------------------------
def test_timer_plan_keeps_the_effect_of_the_order() -> None:
    due = T0
    ops = [
        TimerOp("set", "remind", "C-1/t1", due),
        TimerOp("cancel", None, "C-1/t1"),  # undoes the set before it, of any kind
        TimerOp("set", "overdue", "C-1/t1", due),  # set after the cancel: kept
        TimerOp("set", "remind", "C-2/t1", due),
        TimerOp("set", "remind", "C-2/t1", due + timedelta(hours=1)),  # the last one counts
        TimerOp("cancel", "overdue", "C-3/t1"),
    ]
    cancels, sets = plan_timer_ops(ops)
    assert cancels == [(None, "C-1/t1"), ("overdue", "C-3/t1")]
    assert [(o.kind, o.key, o.due_at) for o in sets] == [
        ("overdue", "C-1/t1", due),
        ("remind", "C-2/t1", due + timedelta(hours=1)),
    ]


async def test_a_units_timer_changes_and_events_are_one_statement_with_the_effect_of_the_order(
    database_url: str,
) -> None:
    """`write_all` on a real PostgreSQL: the cancels and the arms of a unit of work and its
    outbox rows in one round trip, the rows as if the changes were applied in order."""
    schema = "writeall"
    pool = await db.create_pool(database_url, schema, min_size=1, max_size=1)
    due = T0 + timedelta(days=1)
    try:
        async with pool.acquire() as conn:
            await db.migrate(conn, schema, db.runtime_migrations())
            await conn.execute(
                "INSERT INTO timers (kind, key, due_at, fired_at) VALUES "
                "('overdue', 'C-1/t1', $1, NULL), ('remind', 'C-1/t1', $1, NULL), "
                "('overdue', 'C-3/t1', $1, NULL), ('remind', 'C-4/t1', $1, $1)",
                T0,
            )
            await conn.execute(
                "INSERT INTO outbox (event_id, subject, headers, body) "
                "VALUES ('e-old', 'case.x', '{}', '')"
            )
            ops = [
                TimerOp("cancel", None, "C-1/t1"),  # both kinds…
                TimerOp("set", "overdue", "C-1/t1", due),  # …and one armed again after
                TimerOp("cancel", "overdue", "C-3/t1"),
                TimerOp("set", "remind", "C-4/t1", due),  # a fired one armed again
                TimerOp("set", "remind", "C-5/t1", due),  # a new one
            ]
            rows = [(f"e-{i}", "case.x", {"ce-id": f"e-{i}"}, b"{}") for i in (2, 1)]
            sent: list[str] = []
            conn.add_query_logger(lambda record: sent.append(record.query))
            async with conn.transaction():
                written = await write_all(conn, ops, [*rows, ("e-old", "case.x", {}, b"")])
            assert len([q for q in sent if "timers" in q or "outbox" in q]) == 1
            timers = {
                (r["kind"], r["key"]): (r["due_at"], r["fired_at"], r["cancelled_at"])
                for r in await conn.fetch("SELECT * FROM timers")
            }
        assert timers[("overdue", "C-1/t1")] == (due, None, None)
        assert timers[("remind", "C-1/t1")][2] is not None
        assert timers[("overdue", "C-3/t1")][2] is not None
        assert timers[("remind", "C-4/t1")] == (due, None, None)
        assert timers[("remind", "C-5/t1")] == (due, None, None)
        # the new rows, in the order of their sequence numbers; the old id is the sweeper's
        assert [c.headers["ce-id"] for c in written] == ["e-2", "e-1"]
        assert written[0].seq < written[1].seq
    finally:
        await pool.close()


def test_a_rule_is_pure_and_collects_its_effects() -> None:
    step = Step(source="/test", clock=FakeClock(T0))
    state = Tally("C-1")
    on_counted(state, Counted(case_id="C-1", n=3), step)
    on_counted(state, Counted(case_id="C-1", n=4), step)
    assert (state.total, state.seen) == (7, [3, 4])
    assert [env.data["total"] for _, env in step.pending] == [3, 7]
    assert [(o.op, o.kind, o.key) for o in step.timer_ops] == [
        ("set", "recount", "C-1/recount"),
        ("set", "recount", "C-1/recount"),
    ]


class NoLoads(TallyStore):
    async def load(self, conn: Conn, case_ids: Sequence[str]) -> dict[str, Tally]:
        raise AssertionError("nothing to load for the service's own events")


async def test_the_services_own_events_are_passed_over_before_any_load() -> None:
    rules = Rules(store=NoLoads(), events={Counted: on_counted})
    own = Envelope.of(Counted(case_id="C-1", n=1), source="/gridloop/tally")
    written = await apply_batch(
        cast(Conn, None), rules, [Inbound(own)], source="/gridloop/tally", clock=FakeClock(T0)
    )
    assert written == []


# -- against the real bus and database ---------------------------------------------------
async def test_a_batch_applies_in_stream_order_per_case(database_url: str, nats_url: str) -> None:
    store = TallyStore()
    clock = FakeClock(T0)
    settings = settings_for("tally", database_url, nats_url)
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        events = [Counted(case_id=f"T-{i % 5}", n=i) for i in range(60)]
        events.insert(30, Counted(case_id="T-bad", n=-1))  # poisoned: alone in the DLQ
        async with running(settings, tally_definition(tally_rules(store)), clock=clock) as rt:
            await publish(js, events)
            assert rt.pool is not None
            pool = rt.pool

            async def settled() -> bool:
                async with pool.acquire() as conn:
                    n = await conn.fetchval("SELECT count(*) FROM tallies")
                    dead = await conn.fetchval("SELECT count(*) FROM dead_letters")
                return bool(n == 5 and dead == 1)

            await wait_for(settled, timeout=30, what="every case tallied, the poisoned one dead")
            async with pool.acquire() as conn:
                rows = await conn.fetch("SELECT case_id, total, seen FROM tallies ORDER BY 1")
                timers = await conn.fetch(
                    "SELECT key FROM timers WHERE kind = 'recount' AND fired_at IS NULL "
                    "AND cancelled_at IS NULL ORDER BY key"
                )
                emitted = await conn.fetchval("SELECT count(*) FROM outbox")
            for r in rows:
                mine = [e.n for e in events if e.case_id == r["case_id"]]
                assert list(r["seen"]) == mine  # in stream order
                assert r["total"] == sum(mine)
            assert [t["key"] for t in timers] == [f"T-{i}/recount" for i in range(5)]
            assert emitted == 60  # one Totalled per good event, none for the poisoned one
            # the same events again (a redelivery, a resend): nothing changes
            await publish(js, events[:10])
            consumer = rt.consumers[0]

            async def drained() -> bool:
                return await consumer.lag() == 0

            await wait_for(drained, timeout=15, what="the resend taken")
            # the timer moves the tally's ladder: fire it an hour later (this round or the
            # runtime's own, every TIMER_POLL_S: whichever claims the five first fires them)
            clock.advance(timedelta(hours=2))
            runner = rt.timer_runner
            assert runner is not None

            async def recounted() -> bool:
                await runner.fire_due()
                async with pool.acquire() as conn:
                    return bool(await conn.fetchval("SELECT count(*) FROM outbox") >= 65)

            await wait_for(recounted, timeout=15, what="the five recounts fired")
            assert await runner.fire_due() == 0  # each fired once
            async with pool.acquire() as conn:
                assert await conn.fetchval("SELECT count(*) FROM outbox") == 65
                assert await conn.fetchval("SELECT sum(total) FROM tallies") == sum(
                    e.n for e in events if e.n >= 0
                )
        assert max(store.loads) > 1  # batches, not one case at a time
    finally:
        await nc.close()


async def test_the_services_own_events_back_on_cases_take_no_inbox_row(
    database_url: str, nats_url: str
) -> None:
    """Its own events change nothing in a handler table's service, so the consumer lets them
    through without claiming them in the inbox; every other event is claimed once."""
    store = TallyStore()
    settings = settings_for("tally", database_url, nats_url)
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        async with running(settings, tally_definition(tally_rules(store))) as rt:
            assert rt.pool is not None and rt.uow is not None
            pool = rt.pool
            own_source = rt.uow.source
            for i, source in enumerate([own_source, "/gridloop/test", own_source]):
                env = Envelope.of(
                    Counted(case_id="T-own", n=i + 1), source=source, id=f"own-{i}-{source}"
                )
                headers, body = to_binary(env)
                await js.publish("case.counted", body, headers=headers)
            consumer = rt.consumers[0]

            async def drained() -> bool:
                return await consumer.lag() == 0

            await wait_for(drained, timeout=15, what="the three events taken")
            async with pool.acquire() as conn:
                claimed = await conn.fetch(
                    "SELECT event_id FROM inbox WHERE event_id LIKE '%|own-%' ORDER BY 1"
                )
                seen = await conn.fetchval("SELECT seen FROM tallies WHERE case_id = 'T-own'")
        assert [r["event_id"] for r in claimed] == ["/gridloop/test|own-1-/gridloop/test"]
        assert list(seen) == [2]  # the own events changed nothing
    finally:
        await nc.close()


async def test_one_replica_at_a_time_consumes_an_ordered_durable(
    database_url: str, nats_url: str
) -> None:
    settings = settings_for("tally", database_url, nats_url)
    clock = FakeClock(T0)
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        async with running(settings, tally_definition(tally_rules(TallyStore())), clock=clock) as a:
            b_cm = running(settings, tally_definition(tally_rules(TallyStore())), clock=clock)
            b = await b_cm.__aenter__()
            try:
                await wait_for(
                    lambda: a.consumers[0].leading != b.consumers[0].leading,
                    what="one leader, one standby",
                )
                leader, standby = (a, b) if a.consumers[0].leading else (b, a)
                assert standby.consumers[0].running  # a standby replica is ready
                if leader is b:
                    await b_cm.__aexit__(None, None, None)
                else:
                    await leader.stop()
                await wait_for(
                    lambda: standby.consumers[0].leading, timeout=15, what="the standby leads"
                )
                await publish(js, [Counted(case_id="R-1", n=n) for n in (1, 2, 3)])
                pool = standby.pool
                assert pool is not None

                async def tallied() -> list[int] | None:
                    async with pool.acquire() as conn:
                        seen = await conn.fetchval("SELECT seen FROM tallies WHERE case_id = 'R-1'")
                    return list(seen) if seen and len(seen) == 3 else None

                assert await wait_for(tallied, timeout=15, what="R-1 tallied") == [1, 2, 3]
            finally:
                if b.started:
                    await b_cm.__aexit__(None, None, None)
    finally:
        await nc.close()


class Gated(TallyStore):
    """A store whose first load of `case_id` waits at a gate: a lead with a batch in hand."""

    def __init__(self, case_id: str, entered: asyncio.Event, gate: asyncio.Event) -> None:
        super().__init__()
        self.case_id, self.entered, self.gate = case_id, entered, gate

    async def load(self, conn: Conn, case_ids: Sequence[str]) -> dict[str, Tally]:
        if self.case_id in case_ids and not self.entered.is_set():
            self.entered.set()
            await self.gate.wait()
        return await super().load(conn, case_ids)


async def test_a_lead_that_lost_its_lock_mid_batch_never_commits_it_after_its_successor(
    database_url: str, nats_url: str
) -> None:
    """A database restart ends the lead's session (and so its lock) while it holds a batch:
    that batch must not commit beside the new lead's work, and the new lead takes the
    messages its predecessor had in hand before anything newer — the case's events take
    effect once each, in order."""
    settings = settings_for("tally", database_url, nats_url)
    clock = FakeClock(T0)
    entered, gate = asyncio.Event(), asyncio.Event()
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        a_cm = running(
            settings, tally_definition(tally_rules(Gated("R-LEAD", entered, gate))), clock=clock
        )
        b_cm = running(
            settings, tally_definition(tally_rules(Gated("R-LEAD", entered, gate))), clock=clock
        )
        async with a_cm as a, b_cm as b:
            await wait_for(
                lambda: a.consumers[0].leading != b.consumers[0].leading,
                what="one leader, one standby",
            )
            leader, standby = (a, b) if a.consumers[0].leading else (b, a)
            await publish(js, [Counted(case_id="R-LEAD", n=1)])
            await asyncio.wait_for(entered.wait(), timeout=15)  # the lead holds event 1
            # what a database restart does to the lead's session: its lock is gone
            pool = standby.pool
            assert pool is not None
            key = lock_key("consumer:tally:tally-cases")
            async with pool.acquire() as conn:
                ended = await conn.fetchval(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                    "AND granted AND objsubid = 1 AND classid::bigint = $1 AND objid::bigint = $2",
                    (key >> 32) & 0xFFFFFFFF,
                    key & 0xFFFFFFFF,
                )
            assert ended
            await wait_for(lambda: standby.consumers[0].leading, timeout=15, what="a new lead")
            await publish(js, [Counted(case_id="R-LEAD", n=n) for n in (2, 3)])
            gate.set()  # the old lead's batch goes on, on a connection that is gone

            async def tallied() -> list[int] | None:
                async with pool.acquire() as conn:
                    seen = await conn.fetchval("SELECT seen FROM tallies WHERE case_id = 'R-LEAD'")
                return list(seen) if seen and len(seen) >= 3 else None

            assert await wait_for(tallied, timeout=60, what="R-LEAD tallied") == [1, 2, 3]
            assert leader.consumers[0].running
    finally:
        await nc.close()


async def test_a_batch_worked_on_longer_than_ack_wait_is_not_delivered_again(
    database_url: str, nats_url: str
) -> None:
    """The lead tells JetStream that a slow batch is still in hand, so `ack_wait` can be short
    (a killed lead holds its durable up that long): nobody is given the batch again while it
    is worked on, however long that takes, and it takes effect once."""
    ack_wait = 1.0
    settings = settings_for("tally", database_url, nats_url, consumer_ack_wait_s=ack_wait)
    entered, gate = asyncio.Event(), asyncio.Event()
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        async with running(
            settings, tally_definition(tally_rules(Gated("R-SLOW", entered, gate)))
        ) as rt:
            await wait_for(lambda: rt.consumers[0].leading, what="the lead")
            await publish(js, [Counted(case_id="R-SLOW", n=1)])
            await asyncio.wait_for(entered.wait(), timeout=15)  # the lead holds it
            # another fetcher on the same durable, for four times ack_wait: it would be
            # given the message the moment JetStream counted it as abandoned
            other = await js.pull_subscribe_bind(durable="tally-cases", stream="CASES")
            loop = asyncio.get_running_loop()
            until = loop.time() + 4 * ack_wait
            while loop.time() < until:
                try:
                    taken = await other.fetch(1, timeout=0.5)
                except (TimeoutError, nats.errors.TimeoutError):
                    continue
                raise AssertionError(f"delivered again while in hand: {taken}")
            await other.unsubscribe()
            gate.set()
            pool = rt.pool
            assert pool is not None

            async def tallied() -> list[int] | None:
                async with pool.acquire() as conn:
                    seen = await conn.fetchval("SELECT seen FROM tallies WHERE case_id = 'R-SLOW'")
                return list(seen) if seen else None

            assert await wait_for(tallied, timeout=30, what="R-SLOW tallied") == [1]
            info = await js.consumer_info("CASES", "tally-cases")
            assert info.num_redelivered == 0 and info.num_ack_pending == 0
    finally:
        await nc.close()


async def test_a_timer_continues_the_trace_of_the_work_that_set_it(
    database_url: str, nats_url: str
) -> None:
    """The recount a counted event set fires an hour later: what it emits carries the trace
    the event came with, so a case's reminders and escalations are in the case's trace."""
    trace_id, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    clock = FakeClock(T0)
    settings = settings_for("tally", database_url, nats_url)
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        async with running(
            settings, tally_definition(tally_rules(TallyStore())), clock=clock
        ) as rt:
            pool, runner = rt.pool, rt.timer_runner
            assert pool is not None and runner is not None
            env = Envelope.of(
                Counted(case_id="R-TRACE", n=3),
                source="/gridloop/test",
                subject="R-TRACE",
                id="c-R-TRACE",
                extensions={"traceparent": f"00-{trace_id}-{parent}-01"},
            )
            headers, body = to_binary(env)
            await js.publish("case.counted", body, headers=headers)

            async def recount_set() -> Any:
                async with pool.acquire() as conn:
                    return await conn.fetchrow(
                        "SELECT payload FROM timers WHERE key = 'R-TRACE/recount'"
                    )

            timer = await wait_for(recount_set, timeout=30, what="the recount set")
            assert timer["payload"]["_trace"]["traceparent"].split("-")[1] == trace_id
            clock.advance(timedelta(hours=2))

            async def totals_of_case() -> list[tuple[int, Any]]:
                await runner.fire_due()  # or the runtime's own round fires it first
                async with pool.acquire() as conn:
                    rows = await conn.fetch("SELECT headers, body FROM outbox ORDER BY seq")
                return [
                    (json.loads(bytes(r["body"]))["total"], r["headers"])
                    for r in rows
                    if json.loads(bytes(r["body"])).get("case_id") == "R-TRACE"
                ]

            async def recounted() -> list[tuple[int, Any]] | None:
                found = await totals_of_case()
                return found if len(found) >= 2 else None

            totals = await wait_for(recounted, timeout=15, what="the recount fired")
            assert [t for t, _ in totals] == [3, -3]  # the count, then the timer's recount
            for _, h in totals:
                assert h["traceparent"].split("-")[1] == trace_id
    finally:
        await nc.close()


# -- commands that arrive together (CaseCommands) ------------------------------------------
def add(n: int) -> CommandRule[Tally]:
    """A pure command rule: adds n to the case's tally and tells; refuses a negative n."""

    def rule(state: Tally, step: Step) -> dict[str, Any]:
        if n < 0:
            raise Refusal("a count is not negative", field="n")
        state.total += n
        state.seen.append(n)
        state.changed = True
        step.emit(Totalled(case_id=state.case_id, total=state.total))
        return {"case_id": state.case_id, "total": state.total}

    return rule


def pairs(rows: Sequence[Any]) -> dict[str, Any]:
    return {r[0]: r[1] for r in rows}


@asynccontextmanager
async def commands_of(
    database_url: str, nats_url: str, *, limit: int
) -> AsyncIterator[tuple[asyncpg.Pool, TallyStore, CaseCommands[Tally]]]:
    """A running tally service's pool, store and case commands in groups of at most
    `limit`."""
    store = TallyStore()
    settings = settings_for("tally", database_url, nats_url)
    async with running(settings, tally_definition(tally_rules(store)), clock=FakeClock(T0)) as rt:
        assert rt.uow is not None and rt.pool is not None
        yield rt.pool, store, CaseCommands(rt.uow, store, limit=limit)


async def outcome(cmds: CaseCommands[Tally], case_id: str, n: int, command_id: str) -> Any:
    try:
        return await cmds.run(case_id, add(n), command_id=command_id, kind="add")
    except Refusal as exc:
        return exc


async def test_commands_that_arrive_together_share_a_transaction_and_answer_as_alone(
    database_url: str, nats_url: str
) -> None:
    async with commands_of(database_url, nats_url, limit=4) as (pool, store, cmds):
        sent = [(f"T-{i}", 10 + i, f"c{i}") for i in range(6)]  # six cases
        sent += [("T-0", 100, "c6"), ("T-bad", -1, "c7")]  # a second on T-0; a refused one
        answers = await asyncio.gather(*(outcome(cmds, c, n, k) for c, n, k in sent))

        assert answers[:6] == [{"case_id": f"T-{i}", "total": 10 + i} for i in range(6)]
        assert answers[6] == {"case_id": "T-0", "total": 110}  # after the first on its case
        assert isinstance(answers[7], Refusal) and answers[7].field == "n"
        # the first six arrived together: groups of at most four, on distinct cases
        assert cmds.groups >= 1 and cmds.grouped >= 4
        assert max(store.loads) <= 4

        async with pool.acquire() as conn:
            totals = pairs(await conn.fetch("SELECT case_id, total FROM tallies"))
            stored = pairs(await conn.fetch("SELECT command_id, answer FROM commands"))
            trail = await conn.fetch(
                "SELECT command_id, outcome, case_id FROM audit_log ORDER BY id"
            )
            told = await conn.fetchval("SELECT count(*) FROM outbox")
        assert totals == {f"T-{i}": 10 + i + (100 if i == 0 else 0) for i in range(6)}
        assert set(stored) == {f"c{i}" for i in range(7)}
        assert stored["c6"] == {"case_id": "T-0", "total": 110}
        assert sorted((r["command_id"], r["outcome"]) for r in trail) == sorted(
            [(f"c{i}", "accepted") for i in range(7)] + [("c7", "refused")]
        )
        assert {r["case_id"] for r in trail if r["command_id"] == "c3"} == {"T-3"}
        assert told == 7  # one event per accepted command

        # sent again together: the first answers, nothing applied twice, each resend audited
        again = await asyncio.gather(*(outcome(cmds, c, n, k) for c, n, k in sent[:7]))
        assert again == answers[:7]
        async with pool.acquire() as conn:
            assert pairs(await conn.fetch("SELECT case_id, total FROM tallies")) == totals
            replayed = await conn.fetchval(
                "SELECT count(*) FROM audit_log WHERE outcome = 'replayed'"
            )
            assert await conn.fetchval("SELECT count(*) FROM outbox") == 7
        assert replayed == 7


async def test_each_command_of_a_group_tells_its_events_under_its_own_requests_trace(
    database_url: str, nats_url: str
) -> None:
    async with commands_of(database_url, nats_url, limit=8) as (pool, _store, cmds):

        async def traced(i: int) -> str:
            """A command sent under a request's trace of its own; its trace id."""
            trace_id = f"{i + 1:032x}"
            parent = tracing.context_from({"traceparent": f"00-{trace_id}-{i + 1:016x}-01"})
            token = otel_context.attach(parent)
            try:
                await cmds.run(f"T-{i}", add(1), command_id=f"t{i}", kind="add")
            finally:
                otel_context.detach(token)
            return trace_id

        sent = await asyncio.gather(*(traced(i) for i in range(5)))
        assert cmds.grouped >= 2
        async with pool.acquire() as conn:
            rows = await conn.fetch("SELECT headers, body FROM outbox")
        told = {
            json.loads(bytes(r["body"]))["case_id"]: r["headers"]["traceparent"].split("-")[1]
            for r in rows
        }
        assert told == {f"T-{i}": trace_id for i, trace_id in enumerate(sent)}


async def test_a_group_undone_as_a_whole_runs_again_one_command_at_a_time(
    database_url: str, nats_url: str
) -> None:
    async with commands_of(database_url, nats_url, limit=8) as (pool, _store, cmds):
        # the answer of "x" stored by another transaction (another replica, a resend) first
        async with pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO commands (command_id, kind, answer) VALUES ('x', 'add', $1)",
                {"case_id": "T-x", "total": 1},
            )
        answers = list(
            await asyncio.gather(
                outcome(cmds, "T-x", 5, "x"),
                outcome(cmds, "T-y", 7, "y"),
                outcome(cmds, "T-z", 9, "z"),
            )
        )
        assert answers == [
            {"case_id": "T-x", "total": 1},  # the stored answer, not applied again
            {"case_id": "T-y", "total": 7},
            {"case_id": "T-z", "total": 9},
        ]
        assert cmds.groups == 0  # the one group was undone; each ran alone
        async with pool.acquire() as conn:
            assert pairs(await conn.fetch("SELECT case_id, total FROM tallies")) == {
                "T-y": 7,
                "T-z": 9,
            }
            trail = await conn.fetch("SELECT command_id, outcome FROM audit_log ORDER BY id")
        assert sorted((r["command_id"], r["outcome"]) for r in trail) == [
            ("x", "replayed"),
            ("y", "accepted"),
            ("z", "accepted"),
        ]


async def test_a_command_alone_or_without_an_id_runs_at_once_in_its_own_transaction(
    database_url: str, nats_url: str
) -> None:
    async with commands_of(database_url, nats_url, limit=8) as (_pool, _store, cmds):
        assert await outcome(cmds, "T-1", 3, "one") == {"case_id": "T-1", "total": 3}
        assert await cmds.run("T-1", add(4), command_id=None, kind="add") == {
            "case_id": "T-1",
            "total": 7,
        }
        assert cmds.groups == 0
