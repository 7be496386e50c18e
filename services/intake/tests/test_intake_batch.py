"""The reports of one fetched batch share one transaction and write their case files once at
the end (casework.ReportBatch): a later report of the batch still sees what an earlier one
did, exactly as if each had been written at once — a copy is answered as the duplicate it
is, a report near a case opened earlier in the batch joins it, a camera's next frame folds
into the case its first frame opened — and what the batch took is on file after it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from gridloop_contracts import Location
from gridloop_intake.bootstrap import definition
from gridloop_intake.casework import Outcome, ReportBatch, take_report
from gridloop_intake.domain.inbound import IncomingReport
from gridloop_intake.settings import IntakeSettings

from .conftest import DEMO_CITY
from .test_intake_rules import a_report as rules_report

if TYPE_CHECKING:
    from gridloop_intake.context import Intake

    from .conftest import Harness

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)


def a_report(external_id: str, **kw: Any) -> IncomingReport:
    """test_intake_rules' patrol report (P0301 by a trusted supervisor) under this id."""
    return rules_report(external_id=external_id, **kw)


async def in_one_batch(
    intake: Harness, intake_state: Intake, reports: list[IncomingReport]
) -> list[Outcome]:
    """Take the reports in one transaction with one batch, as the INTAKE consumer does (their
    ids looked up first, in one statement)."""
    assert intake.rt.uow is not None
    async with intake.rt.uow() as work:
        batch = ReportBatch()
        await batch.prefetch(
            work.conn, [(r.source, r.external_id) for r in reports if r.external_id is not None]
        )
        outcomes = [await take_report(work, intake_state, r, batch) for r in reports]
        await batch.save(work.conn)
    return outcomes


async def test_a_copy_in_the_same_batch_is_answered_as_the_first(
    intake: Harness, intake_state: Intake
) -> None:
    first, copy = await in_one_batch(intake, intake_state, [a_report("b-1"), a_report("b-1")])
    assert first.outcome == "new" and copy.outcome == "duplicate"
    assert (copy.case_id, copy.report_id) == (first.case_id, first.report_id)
    assert await intake.value("SELECT count(*) FROM cases") == 1
    assert await intake.value("SELECT count(*) FROM reports") == 1
    # in a later batch, a copy is answered from the lookup made before it; a new id is new
    again, fresh = await in_one_batch(
        intake,
        intake_state,
        [a_report("b-1"), a_report("b-9", location=Location(lat=39.93, lon=116.43))],
    )
    assert (again.outcome, again.case_id, again.report_id) == (
        "duplicate",
        first.case_id,
        first.report_id,
    )
    assert again.status == first.status and fresh.outcome == "new"
    assert await intake.value("SELECT count(*) FROM reports") == 2


async def test_a_report_near_a_case_opened_earlier_in_the_batch_joins_it(
    intake: Harness, intake_state: Intake
) -> None:
    elsewhere = a_report("b-3", category_code="E0104", location=Location(lat=39.91, lon=116.41))
    near = a_report("b-2", location=Location(lat=39.9001, lon=116.4003))
    opened, other, joined = await in_one_batch(
        intake, intake_state, [a_report("b-1"), elsewhere, near]
    )
    assert (opened.outcome, other.outcome, joined.outcome) == ("new", "new", "merged")
    assert joined.case_id == opened.case_id != other.case_id
    rows = await intake.fetch("SELECT case_id, reports FROM cases ORDER BY case_id")
    assert {r["case_id"]: r["reports"] for r in rows} == {opened.case_id: 2, other.case_id: 1}
    reports = await intake.fetch("SELECT external_id, case_id, outcome FROM reports")
    assert {r["external_id"]: (r["case_id"], r["outcome"]) for r in reports} == {
        "b-1": (opened.case_id, "new"),
        "b-2": (opened.case_id, "merged"),
        "b-3": (other.case_id, "new"),
    }
    # the case's timeline has both reports
    types = await intake.fetch("SELECT type FROM timeline WHERE case_id = $1", opened.case_id)
    assert {"gridloop.case.reported.v1", "gridloop.case.merged.v1"} <= {t["type"] for t in types}


async def test_a_cameras_next_frame_in_the_batch_folds_into_the_case_its_first_opened(
    intake: Harness, intake_state: Intake
) -> None:
    frames = [
        a_report(
            f"det-{n}",
            channel="video",
            source="video-ai",
            camera_id="cam-0001",
            confidence=0.9,
            category_code="E0104",
            location=None,
            reporter_user_id=None,
            reported_at=T0 + timedelta(seconds=30 * n),
        )
        for n in range(3)
    ]
    outcomes = await in_one_batch(intake, intake_state, frames)
    assert [o.outcome for o in outcomes] == ["new", "folded", "folded"]
    assert len({o.case_id for o in outcomes}) == 1
    row = (await intake.fetch("SELECT detections FROM cases"))[0]
    assert row["detections"] == 3


async def test_the_batch_locks_its_categories_first_in_one_order(
    intake: Harness, intake_state: Intake
) -> None:
    """Before a report of the batch takes the day's case counter, every category the batch
    names is locked (sorted, one statement); a REST report waits for its category, not
    crosswise with the counter."""
    assert intake.rt.pool is not None
    async with intake.rt.pool.acquire() as conn, conn.transaction():
        batch = ReportBatch()
        await batch.lock(conn, ["P0301", "E0104", "P0301"])
        held = await conn.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND pid = pg_backend_pid()"
        )
        assert held == 2
        async with intake.rt.pool.acquire() as other:
            # another transaction cannot take either category while the batch holds them
            for code in ("E0104", "P0301"):
                got = await other.fetchval(
                    "SELECT pg_try_advisory_xact_lock(hashtext('intake-dedupe'), hashtext($1))",
                    code,
                )
                assert got is False


def test_reports_are_fetched_in_batches_of_their_own_size() -> None:
    """INTAKE_REPORT_BATCH bounds the reports taken in one transaction (a report's work holds
    more than a case event's); the case file's consumer keeps the runtime's CONSUMER_BATCH."""
    settings = IntakeSettings.model_validate(
        {"CITY_DATA_DIR": str(DEMO_CITY), "INTAKE_REPORT_BATCH": 8}
    )
    service, _ = definition(settings)
    batch = {c.durable: c.batch for c in service.consumers}
    assert batch == {"intake-reports": 8, "intake-casefile": None}  # None: CONSUMER_BATCH
    assert IntakeSettings.model_validate({"CITY_DATA_DIR": str(DEMO_CITY)}).report_batch == 64
