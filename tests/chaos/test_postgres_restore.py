"""PostgreSQL restored to an earlier moment, the loop running: a dump is taken halfway through
a run (the restore point), the run goes on, then the services stop and the database is put
back as the dump has it, losing everything written since. The operator brings the bus back
in line (`python -m gridloop_runtime.restore`: the events the restored outboxes do not hold
leave the streams, the services' consumers move back to the point) and starts the services.
Nobody sends anything again: the reports that came over NATS are still in INTAKE, and those
that came over REST too (intake keeps each on the stream as it takes it, `ReportTakenV1`); the
commands of the department that works over REST (urban-mgmt), which does not send again what
was answered, are in HANDLING (`CommandTakenV1`), as the NATS department's are.
Every report ends where its script says, once, and the streams and every service's tables
agree: nothing lost, nothing duplicated."""

from __future__ import annotations

import asyncio
import os
import random
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from gridloop_city import load_city
from gridloop_devkit.launcher import Stack
from gridloop_devkit.testing import wait_for
from gridloop_handling.domain.commands import command_key

from .judgement import judge, settle
from .load import REST_DEPT, ROOT, Counts, People, plan, send_all

REPORTS = 90
RATE = 6.0


def restore_database(stack: Stack, name: str, dump: Path) -> None:
    """Every service stopped, the database dropped and loaded from the dump."""
    for instance in reversed(stack.instances()):
        stack.stop_service(instance)
    pg = stack.postgres
    assert pg is not None
    pg.drop_database(name)
    pg.create_database(name)
    pg.restore_dump(name, dump)


def bring_back(stack: Stack, point: datetime) -> str:
    """The operator's command, as the runbook has it."""
    assert stack.nats_url and stack.database_url
    env = {**os.environ, "NATS_URL": stack.nats_url, "DATABASE_URL": stack.database_url}
    proc = subprocess.run(
        [sys.executable, "-m", "gridloop_runtime.restore", "--point", point.isoformat()],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


@pytest.mark.timeout(480)
@pytest.mark.parametrize(
    "shape",
    [
        "chaos_stack",
        # the production shape: a 3-node JetStream cluster (R3 streams), two replicas of
        # every service sharing each durable consumer
        "cluster_chaos_stack",
    ],
)
async def test_a_database_restored_to_an_earlier_moment_loses_nothing(
    shape: str, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    stack: Stack = request.getfixturevalue(shape)
    pg = stack.postgres
    assert pg is not None and stack.database_url
    city = load_city(ROOT / "data" / "demo-city")
    # no overdue script: this run moves no clock
    reports = [p for p in plan(city, random.Random(11), REPORTS, "pitr") if p.script != "overdue"]
    counts = Counts()
    people = People.start(stack, counts)
    halfway = asyncio.Event()

    def progress(sent: int) -> None:
        if sent == len(reports) // 2:
            halfway.set()

    dump = stack.state_dir / "gridloop.dump"
    name = stack.database_url.rsplit("/", 1)[1]
    try:
        sending = asyncio.create_task(send_all(stack, reports, RATE, counts, progress))
        await halfway.wait()
        # The restore point, then the backup: everything committed by the point is in it.
        point = datetime.now(UTC)
        await asyncio.to_thread(pg.dump, name, dump)
        dumped = time.monotonic()
        await sending
        # a command of the REST department answered after the backup: the restore loses it
        await wait_for(
            lambda: any(at > dumped for at in counts.department_answered.values()),
            timeout=120,
            what="a REST department command answered after the backup",
        )
        # The disaster, late enough that the second half has moved along its loop.
        await asyncio.to_thread(restore_database, stack, name, dump)
        conn = await asyncpg.connect(stack.database_url)
        try:
            kept = {
                (r["source"], r["external_id"])
                for r in await conn.fetch("SELECT source, external_id FROM intake.reports")
            }
            commands_kept = {
                r["command_id"]
                for r in await conn.fetch("SELECT command_id FROM handling.commands")
            }
            commands_lost = [
                c
                for c in list(counts.department_answered)
                if command_key(REST_DEPT, c) not in commands_kept
            ]
            said = await asyncio.to_thread(bring_back, stack, point)
            for instance in stack.instances():
                stack.start_service(instance)
            await asyncio.to_thread(stack.wait_ready, 120)
            started = time.monotonic()
            await settle(conn, reports, timeout=180)
            summary = await judge(stack, conn, reports, counts, chased=False)
        finally:
            await conn.close()
    finally:
        await people.leave()
    assert summary["lost"] == 0 and summary["duplicated"] == 0
    # the run did lose something to the restore, and the bus held ghosts of it
    taken = [p for p in reports if p.script != "rejected"]
    lost = [p for p in taken if (p.source, p.external_id) not in kept]
    assert lost
    # ... reports that had come over REST among them: taken again from the stream, as those
    # over NATS were
    lost_over_rest = [p for p in lost if p.via == "http"]
    assert lost_over_rest
    # ... and commands the department sent over REST, which it does not send again: run again
    # from the bus (their cases closed all the same)
    assert commands_lost
    ghosts = re.search(r"CASES: (\d+) ghosts deleted", said)
    assert ghosts and int(ghosts.group(1)) > 0, said
    with capsys.disabled():
        print(
            f"\npostgres restore ({shape}): reports_sent={len(reports)} "
            f"lost_in_the_restore={len(lost)} of_them_over_rest={len(lost_over_rest)} "
            f"rest_department_commands_lost={len(commands_lost)} "
            f"closed={summary['closed']} converged_in_s={time.monotonic() - started:.0f}\n"
            f"{said}",
            flush=True,
        )
