"""The reports of one fetched batch share one transaction and write their case files once at
the end (casework.ReportBatch): a later report of the batch still sees what an earlier one
did, exactly as if each had been written at once — a copy is answered as the duplicate it
is, a report near a case opened earlier in the batch joins it, a camera's next frame folds
into the case its first frame opened — and what the batch took is on file after it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from asyncpg.connection import LoggedQuery
from gridloop_contracts import Envelope, Location
from gridloop_contracts.inbound import DetectionV1, RatingV1, ReportV1
from gridloop_intake.bootstrap import _ahead, definition
from gridloop_intake.casework import Ahead, Outcome, ReportBatch, ahead_of, take_report
from gridloop_intake.domain.case_ids import local_day
from gridloop_intake.domain.duplicates import NearSearch
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


def a_frame(external_id: str, **kw: Any) -> IncomingReport:
    """A detection of camera cam-0001 (E0104, placed by the camera)."""
    values: dict[str, Any] = {
        "channel": "video",
        "source": "video-ai",
        "camera_id": "cam-0001",
        "confidence": 0.9,
        "category_code": "E0104",
        "location": None,
        "reporter_user_id": None,
    }
    return a_report(external_id, **(values | kw))


def introspection(query: str) -> bool:
    """asyncpg's own statements: the types of a statement's parameters, read once a
    connection."""
    return "typeinfo_tree" in query or "set_config('jit'" in query


async def in_one_batch(
    intake: Harness,
    intake_state: Intake,
    reports: list[IncomingReport],
    sent: list[str] | None = None,
) -> list[Outcome]:
    """Take the reports in one transaction with one batch, as the INTAKE consumer does: their
    categories locked and their ids looked up in one statement, their duplicate searches
    made and their numbers taken in another (`sent`: the statements, when given)."""
    assert intake.rt.uow is not None

    def log(record: LoggedQuery) -> None:
        if sent is not None and not introspection(record.query):
            sent.append(record.query)

    async with intake.rt.uow() as work:
        work.conn.add_query_logger(log)
        batch = ReportBatch()
        day = local_day(work.now(), intake_state.city.district.timezone)
        await batch.prepare(work.conn, [ahead_of(intake_state, r) for r in reports], day)
        outcomes = []
        for i, report in enumerate(reports):
            batch.left = len(reports) - i
            outcomes.append(await take_report(work, intake_state, report, batch))
        await batch.save(work.conn)
        work.conn.remove_query_logger(log)
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
    frames = [a_frame(f"det-{n}", reported_at=T0 + timedelta(seconds=30 * n)) for n in range(3)]
    outcomes = await in_one_batch(intake, intake_state, frames)
    assert [o.outcome for o in outcomes] == ["new", "folded", "folded"]
    assert len({o.case_id for o in outcomes}) == 1
    row = (await intake.fetch("SELECT detections FROM cases"))[0]
    assert row["detections"] == 3


async def test_a_batch_searches_for_duplicates_once_and_queues_at_the_counter_once(
    intake: Harness, intake_state: Intake
) -> None:
    """The batch's duplicate searches are one statement and its new cases take their numbers
    from the day's counter at once; what it does is what report after report would do: the
    same merges, and numbers without a gap, the unused ones given back."""
    (first,) = await in_one_batch(intake, intake_state, [a_report("n-1")])
    far = Location(lat=39.91, lon=116.41)
    sent: list[str] = []
    outcomes = await in_one_batch(
        intake,
        intake_state,
        [
            a_report("n-2", location=Location(lat=39.9001, lon=116.4003)),  # near n-1: merged
            a_report("n-3", category_code="E0104", location=far),  # new
            a_report("n-4", category_code="E0104", location=far),  # near n-3 (in the batch)
            a_report("n-5", location=far),  # new: another category
            a_report("n-2"),  # the copy of n-2
        ],
        sent,
    )
    assert [o.outcome for o in outcomes] == ["merged", "new", "merged", "new", "duplicate"]
    assert outcomes[0].case_id == first.case_id and outcomes[2].case_id == outcomes[1].case_id
    numbers = sorted(int(o.case_id[-6:]) for o in [first, outcomes[1], outcomes[3]])
    day_of_first = first.case_id.rsplit("-", 1)[0]
    assert numbers == [1, 2, 3] and outcomes[3].case_id.startswith(day_of_first)
    assert await intake.value("SELECT last FROM case_numbers") == 3  # one of three given back
    searches = [q for q in sent if "reported_at BETWEEN" in q]
    counter = [q for q in sent if "case_numbers" in q]
    # taken once, with the searches: one number for each report whose search found nothing
    # on file (n-3, n-4, n-5); the one n-4 did not use given back with the batch's writes
    assert len(searches) == 1 and len(counter) == 2 and counter[0] == searches[0]
    assert "UPDATE case_numbers" in counter[1] and "INSERT INTO cases" in counter[1]
    # the next batch goes on from there
    elsewhere = Location(lat=39.92, lon=116.42)
    (after,) = await in_one_batch(intake, intake_state, [a_report("n-6", location=elsewhere)])
    assert after.outcome == "new" and after.case_id.endswith("-000004")


async def test_a_new_report_is_three_statements(intake: Harness, intake_state: Intake) -> None:
    """A report that opens a case, alone in its batch or sent over REST: its category locked
    and its copy looked up in one statement, its duplicate search made and its number taken
    in another, its case written in a third."""
    sent: list[str] = []
    (first,) = await in_one_batch(intake, intake_state, [a_report("t-1")], sent)
    assert first.outcome == "new" and first.case_id.endswith("-000001")
    assert len(sent) == 3
    assert "pg_advisory_xact_lock" in sent[0] and "JOIN reports" in sent[0]
    assert "reported_at BETWEEN" in sent[1] and "INSERT INTO case_numbers" in sent[1]
    assert "INSERT INTO cases" in sent[2] and "case_numbers" not in sent[2]
    # the same over REST (a report in its own transaction)
    assert intake.rt.uow is not None
    elsewhere = Location(lat=39.92, lon=116.42)
    rest: list[str] = []
    async with intake.rt.uow() as work:
        work.conn.add_query_logger(lambda record: rest.append(record.query))
        outcome = await take_report(work, intake_state, a_report("t-2", location=elsewhere))
    assert outcome.outcome == "new" and outcome.case_id.endswith("-000002")
    rest = [
        q
        for q in rest
        if q.strip().rstrip(";").upper() not in ("BEGIN", "COMMIT") and not introspection(q)
    ]
    assert len(rest) == 3 and rest[:2] == sent[:2]
    # a copy sent again: one statement answers it, no number taken, nothing written
    again: list[str] = []
    (copy,) = await in_one_batch(intake, intake_state, [a_report("t-1")], again)
    assert (copy.outcome, copy.case_id) == ("duplicate", first.case_id)
    assert not any("case_numbers" in q for q in again)
    assert await intake.value("SELECT last FROM case_numbers") == 2


async def test_a_report_that_joins_a_case_on_file_takes_no_number(
    intake: Harness, intake_state: Intake
) -> None:
    (first,) = await in_one_batch(intake, intake_state, [a_report("j-1")])
    sent: list[str] = []
    near = Location(lat=39.9001, lon=116.4003)
    (joined,) = await in_one_batch(intake, intake_state, [a_report("j-2", location=near)], sent)
    assert (joined.outcome, joined.case_id) == ("merged", first.case_id)
    counter = [q for q in sent if "case_numbers" in q]
    assert len(counter) == 1  # the search's statement, which took none: nothing to give back
    assert await intake.value("SELECT last FROM case_numbers") == 1


async def test_a_batch_locks_the_categories_its_parts_name_before_the_counter(
    intake: Harness, intake_state: Intake
) -> None:
    """A report naming no category has its part's: the batch locks that one too before it
    takes the day's counter, so it never holds the counter while it waits for a category a
    REST report may hold waiting for the counter. A report that names no category at all
    leaves the numbers to the first new case."""
    part = next(
        p for p in intake_state.city.parts.values() if p.category_code not in (None, "P0301")
    )
    sent: list[str] = []
    outcomes = await in_one_batch(
        intake,
        intake_state,
        [
            a_report("c-1"),
            a_report("c-2", category_code=None, location=None, part_code=part.code),
        ],
        sent,
    )
    assert [o.outcome for o in outcomes] == ["new", "new"]
    locks = [i for i, q in enumerate(sent) if "pg_advisory_xact_lock" in q]
    numbered = [i for i, q in enumerate(sent) if "INSERT INTO case_numbers" in q]
    assert locks == [0] and numbered == [1]  # both categories in one statement, first
    assert await intake.value("SELECT last FROM case_numbers") == 2
    sent.clear()
    elsewhere = Location(lat=39.92, lon=116.42)
    unnamed = a_report("c-4", category_code=None, location=elsewhere)
    outcomes = await in_one_batch(intake, intake_state, [a_report("c-3"), unnamed], sent)
    assert [o.outcome for o in outcomes] == ["merged", "new"]  # c-3 joins c-1
    counter = [q for q in sent if "case_numbers" in q]
    assert len(counter) == 1 and "reported_at BETWEEN" not in counter[0]
    assert outcomes[1].case_id.endswith("-000003")
    assert await intake.value("SELECT last FROM case_numbers") == 3


async def test_a_search_made_before_the_batch_wrote_its_cases_is_made_again(
    intake: Harness, intake_state: Intake
) -> None:
    """A camera's frame writes the batch before it reads its scene; a later report near a
    case the batch opened before that must still find the case, which the search made at
    the batch's start could not have seen."""
    frame = a_frame("cam-1")
    opened, seen, near = await in_one_batch(
        intake,
        intake_state,
        [
            a_report("s-1"),
            frame,
            a_report("s-2", location=Location(lat=39.9001, lon=116.4003)),
        ],
    )
    assert (opened.outcome, seen.outcome, near.outcome) == ("new", "new", "merged")
    assert near.case_id == opened.case_id
    assert await intake.value("SELECT last FROM case_numbers") == 2


def test_what_a_report_names_is_read_from_its_message(intake_state: Intake) -> None:
    """What the consumer reads from a batch's messages before taking them, as taking them
    will read it; anything it cannot read is left to the report's own search (None), never
    an error."""
    rule = intake_state.city.intake.duplicate
    subject = "intake.patrol.patrol-app"
    data = {
        "external_id": "x-1",
        "reported_at": "2026-11-23T02:00:00+00:00",
        "location": {"lat": 39.9, "lon": 116.4003},
        "category_code": "P0301",
    }

    def read(type_name: str, data: dict[str, Any]) -> Ahead | None:
        return _ahead(intake_state, subject, Envelope(type_name, "/x", data))

    expected = NearSearch.of("P0301", 116.4003, 39.9, T0, rule)
    assert read(ReportV1.type_name, data) == Ahead("patrol-app", "x-1", "P0301", expected, True)
    detection = {**data, "detected_at": data["reported_at"]}
    del detection["reported_at"]
    seen = read(DetectionV1.type_name, detection)
    assert seen is not None and seen.search == expected and not seen.opens  # it may fold
    # a part names the category (when the report does not) and the place of the search
    part = next(
        p for p in intake_state.city.parts.values() if p.category_code not in (None, "P0301")
    )
    by_part = read(ReportV1.type_name, {**data, "category_code": None, "part_code": part.code})
    assert by_part is not None and by_part.category_code == part.category_code
    assert by_part.search == NearSearch.of(part.category_code, part.lon, part.lat, T0, rule)
    for unread in (
        {**data, "category_code": "X9999"},  # not the city's
        {**data, "location": {"lat": "39.9", "lon": 116.4}},
        {**data, "location": {"lat": True, "lon": 116.4}},
        {**data, "location": {"lat": float("nan"), "lon": 116.4}},
        {**data, "reported_at": "2026-11-23T02:00:00"},  # no offset
        {**data, "reported_at": "yesterday"},
        {k: v for k, v in data.items() if k != "location"},
        {k: v for k, v in data.items() if k != "category_code"},
    ):
        named = read(ReportV1.type_name, unread)
        assert named is not None and named.search is None
    assert read(RatingV1.type_name, data) is None
    assert _ahead(intake_state, None, Envelope(ReportV1.type_name, "/x", data)) is None


async def test_the_batch_locks_its_categories_first_in_one_order(
    intake: Harness, intake_state: Intake
) -> None:
    """Before a report of the batch takes the day's case counter, every category the batch
    names is locked (sorted, one statement, the copies looked up in it); a REST report waits
    for its category, not crosswise with the counter."""
    assert intake.rt.pool is not None
    async with intake.rt.pool.acquire() as conn, conn.transaction():
        batch = ReportBatch()
        # with a copy to look up that is not on file: the locks are taken all the same
        await batch.lock(conn, ["P0301", "E0104", "P0301"], [("patrol-app", "none-such")])
        assert await batch.seen(conn, "patrol-app", "none-such") is None
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
