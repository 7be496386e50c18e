"""The bus brought back in line with a PostgreSQL restored to an earlier moment.

After PostgreSQL is restored to a moment P (docs/operations.md, "Restore after losing
PostgreSQL"), every service's tables stand as they were at P, and the streams hold more:

- events the services published after P, which their restored outboxes do not hold. The
  cases, tasks and timers they speak of may not exist any more (ghosts);
- reports, commands and events the services took after P, which their restored inboxes do
  not list, and past which their durable consumers have moved.

With the services stopped, `bring_back` (`python -m gridloop_runtime.restore --point P`):

1. deletes, from the streams the services publish to (CASES, DISPATCH, NOTIFY, SCORES), every
   message since P - margin that a service published and whose event its outbox does not
   hold: the ghosts; and from DLQ every dead letter since then that the service's restored
   `dead_letters` does not list (its message comes again, and is parked again if it fails
   again);
2. moves every service's durable consumer back to P - margin: what came since is delivered
   again, and each inbox drops what the restored tables had already taken.

Started again, the services take the reports and commands since P anew and publish what
follows from them: those that came over NATS, the reports intake took over REST and
Open311 and the commands handling took over REST, which they keep on INTAKE and HANDLING as
they take them (`intake.taken.<source>`, `handling._taken.<dept>`; neither stream is cleared:
the services publish there only what their own consumers are to take). Outside
readers (a department's feed, an integrator's answers) may have read a ghost already: they
get the same case's news again under new ids.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import asyncpg
import nats
import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import ConsumerInfo, DeliverPolicy

from .bus import read_stored

# The services, each in a schema of its name, publishing as /gridloop/<name>, their durable
# consumers named <name>-<what>.
SERVICES = ("intake", "dispatch", "handling", "verify", "scoring")
# The streams the services publish to; INTAKE and HANDLING are written by the outside (and by
# intake and handling too: what they took over REST, which is to be taken again).
PUBLISHED = ("CASES", "DISPATCH", "NOTIFY", "SCORES")
# What a restore clears: those, and the dead letters.
CLEARED = (*PUBLISHED, "DLQ")
# Every stream a service's durable consumer may read.
READ = ("INTAKE", "CASES", "HANDLING", "DISPATCH", "NOTIFY", "SCORES")
# How far before the restore point the consumers are moved back and the streams searched:
# more than any gap between a message entering a stream and its consumer's commit. Earlier
# is always safe (the inboxes drop what was taken).
MARGIN = timedelta(minutes=10)

# What a message is known by in its service's restored tables (an event id; a consumer and
# an event id).
K = TypeVar("K", bound=Hashable)


@dataclass
class Outcome:
    """What `bring_back` found and did (or, with `dry_run`, would do)."""

    since: datetime
    ghosts: dict[str, list[int]] = field(default_factory=dict)  # stream → sequences
    kept: dict[str, int] = field(default_factory=dict)  # stream → messages since, not ghosts
    rewound: list[str] = field(default_factory=list)  # "<stream>/<consumer>"

    def lines(self) -> list[str]:
        out = [f"since {self.since.isoformat()}:"]
        for stream in CLEARED:
            out.append(
                f"  {stream}: {len(self.ghosts.get(stream, []))} ghosts deleted, "
                f"{self.kept.get(stream, 0)} messages kept"
            )
        out.append(f"  consumers moved back: {', '.join(self.rewound) or 'none'}")
        return out


class ServicesRunning(RuntimeError):
    """A service's consumer is being read: stop the services first."""


def publisher(source: str | None) -> str | None:
    """The service that published a message, from its ce-source."""
    if source and source.startswith("/gridloop/"):
        name = source.removeprefix("/gridloop/")
        return name if name in SERVICES else None
    return None


def owner(consumer: str) -> str | None:
    """The service a durable consumer belongs to (department and integrator feeds: none)."""
    name = consumer.split("-", 1)[0]
    return name if name in SERVICES and "-" in consumer else None


async def bring_back(
    js: JetStreamContext,
    conn: asyncpg.Connection,
    point: datetime,
    *,
    margin: timedelta = MARGIN,
    dry_run: bool = False,
    wait_s: float = 30.0,
) -> Outcome:
    """Delete the ghosts since `point - margin` and move the services' consumers back to it
    (module doc). Refuses (ServicesRunning) while a service reads one of its consumers."""
    since = point - margin
    consumers = await idle_consumers(js, wait_s)
    outcome = Outcome(since)
    for stream in CLEARED:
        find = find_dead_letters if stream == "DLQ" else find_ghosts
        ghosts, kept = await find(js, conn, stream, since)
        outcome.ghosts[stream], outcome.kept[stream] = ghosts, kept
        if not dry_run:
            for seq in ghosts:
                await js.delete_msg(stream, seq)
    for info in consumers:
        outcome.rewound.append(f"{info.stream_name}/{info.name}")
        if not dry_run:
            await rewind(js, info, since)
    return outcome


async def idle_consumers(js: JetStreamContext, wait_s: float) -> list[ConsumerInfo]:
    """The services' durable consumers, once none has a pull request waiting: a stopped
    service's last requests end at their expiry (seconds). ServicesRunning if one still has
    after `wait_s`: a service is reading it, and would take what is moved back before the
    ghosts are gone."""
    give_up = time.monotonic() + wait_s
    while True:
        consumers = await service_consumers(js)
        reading = [f"{i.stream_name}/{i.name}" for i in consumers if i.num_waiting]
        if not reading:
            return consumers
        if time.monotonic() > give_up:
            raise ServicesRunning(
                f"the services are reading {', '.join(reading)}: stop every replica first"
            )
        await asyncio.sleep(0.5)


async def service_consumers(js: JetStreamContext) -> list[ConsumerInfo]:
    """The services' durable consumers on every stream they read."""
    found: list[ConsumerInfo] = []
    for stream in READ:
        offset = 0
        while True:
            try:
                page = await js.consumers_info(stream, offset=offset)
            except nats.js.errors.NotFoundError:
                break
            found += [i for i in page if owner(i.name) is not None]
            if len(page) < 256:
                break
            offset += len(page)
    return found


async def find_ghosts(
    js: JetStreamContext, conn: asyncpg.Connection, stream: str, since: datetime
) -> tuple[list[int], int]:
    """The sequences of the messages of `stream` since `since` that a service published and
    its outbox does not hold, and how many others there are."""

    def place(_subject: str, headers: dict[str, str]) -> tuple[str, str] | None:
        service, event_id = publisher(headers.get("ce-source")), headers.get("ce-id")
        return (service, event_id) if service and event_id else None

    async def held(service: str, event_ids: list[str]) -> set[str]:
        rows = await conn.fetch(
            f"SELECT event_id FROM {service}.outbox WHERE event_id = ANY($1::text[])",
            event_ids,
        )
        return {r["event_id"] for r in rows}

    return await _unknown(js, stream, since, place, held)


async def find_dead_letters(
    js: JetStreamContext, conn: asyncpg.Connection, stream: str, since: datetime
) -> tuple[list[int], int]:
    """The sequences of the dead letters of `stream` (DLQ, `dlq.<service>`) since `since`
    that the service's `dead_letters` does not list (by consumer and event), and how many
    others there are."""

    def place(subject: str, headers: dict[str, str]) -> tuple[str, tuple[str, str]] | None:
        service = subject.removeprefix("dlq.")
        consumer, event_id = headers.get("Gridloop-Dlq-Consumer"), headers.get("ce-id")
        if service not in SERVICES or not consumer or not event_id:
            return None
        return service, (consumer, event_id)

    async def listed(service: str, letters: list[tuple[str, str]]) -> set[tuple[str, str]]:
        rows = await conn.fetch(
            f"SELECT consumer, event_id FROM {service}.dead_letters "
            "WHERE event_id = ANY($1::text[])",
            [event_id for _, event_id in letters],
        )
        return {(r["consumer"], r["event_id"]) for r in rows}

    return await _unknown(js, stream, since, place, listed)


async def _unknown(
    js: JetStreamContext,
    stream: str,
    since: datetime,
    place: Callable[[str, dict[str, str]], tuple[str, K] | None],
    known: Callable[[str, list[K]], Awaitable[set[K]]],
) -> tuple[list[int], int]:
    """The sequences of the messages of `stream` since `since` that `place` gives to a
    service under a key the service does not know (`known`: the keys its restored tables
    hold), and how many others there are (unplaced, or known)."""
    by_service: dict[str, dict[K, list[int]]] = defaultdict(lambda: defaultdict(list))
    kept = 0
    for seq, subject, headers in await read_since(js, stream, since):
        placed = place(subject, headers)
        if placed is None:
            kept += 1
        else:
            by_service[placed[0]][placed[1]].append(seq)
    ghosts: list[int] = []
    for service, found in by_service.items():
        have = await known(service, list(found))
        for key, seqs in found.items():
            if key in have:
                kept += len(seqs)
            else:
                ghosts += seqs
    return sorted(ghosts), kept


async def read_since(
    js: JetStreamContext, stream: str, since: datetime
) -> list[tuple[int, str, dict[str, str]]]:
    """Each message of `stream` stored since `since`: its sequence, subject and headers."""
    return await read_stored(
        js,
        stream,
        lambda m: (m.metadata.sequence.stream, m.subject, dict(m.headers or {})),
        since=since,
    )


async def rewind(js: JetStreamContext, info: ConsumerInfo, since: datetime) -> None:
    """The consumer made anew with its own settings, starting at `since`. A service keeps
    that start when it declares the consumer again (consumer.py)."""
    cfg = replace(
        info.config,
        deliver_policy=DeliverPolicy.BY_START_TIME,
        opt_start_time=since.astimezone(UTC),
        opt_start_seq=None,
    )
    await js.delete_consumer(info.stream_name, info.name)
    await js.add_consumer(info.stream_name, cfg)


def parse_point(text: str) -> datetime:
    """An ISO 8601 moment with its offset (2026-12-07T09:30:00+08:00)."""
    point = datetime.fromisoformat(text)
    if point.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs its UTC offset, e.g. +08:00")
    return point


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gridloop_runtime.restore",
        description=(
            "After PostgreSQL was restored to POINT, with every service stopped: delete from "
            "the streams the events the restored outboxes do not hold, and move the services' "
            "consumers back to POINT - margin. Reads NATS_URL, NATS_USER, NATS_PASSWORD (a "
            "user that may manage streams and consumers: admin) and DATABASE_URL (a role that "
            "may read every service's outbox)."
        ),
    )
    parser.add_argument("--point", required=True, type=parse_point, help="the restore point")
    parser.add_argument(
        "--margin-minutes", type=float, default=MARGIN.total_seconds() / 60, help="default 10"
    )
    parser.add_argument("--dry-run", action="store_true", help="say what it would do")
    args = parser.parse_args(argv)

    async def run() -> Outcome:
        nc = await nats.connect(
            os.environ.get("NATS_URL", "nats://127.0.0.1:4222").split(","),
            user=os.environ.get("NATS_USER") or None,
            password=os.environ.get("NATS_PASSWORD") or None,
        )
        conn = await asyncpg.connect(
            os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/gridloop")
        )
        try:
            return await bring_back(
                nc.jetstream(),
                conn,
                args.point,
                margin=timedelta(minutes=args.margin_minutes),
                dry_run=args.dry_run,
            )
        finally:
            await conn.close()
            await nc.close()

    try:
        outcome = asyncio.run(run())
    except ServicesRunning as exc:
        print(f"restore: {exc}", file=sys.stderr)
        return 1
    print("\n".join(outcome.lines()) + ("\n(dry run: nothing changed)" if args.dry_run else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
