"""Taking a report (every channel shares it): locate, classify, fold or merge into an open
case (the duplicate search runs over the other cases), or open a new one under the day's
number. What that does to the one case is a rule of the case file (domain/rules.py), applied
to its state here and saved by the store. Nothing here knows whether the input came over
REST, Open311 or NATS."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal, TypeVar

import structlog
from gridloop_contracts import CaseStatus, subjects
from gridloop_runtime.consumer import emit_taken
from gridloop_runtime.db import Conn
from gridloop_runtime.outbox import Work
from gridloop_runtime.step import Step
from gridloop_runtime.writes import Writes, gathered

from . import repository as repo
from .context import Intake
from .domain import duplicates
from .domain.case import CaseFile
from .domain.case_ids import format_case_id, local_day
from .domain.inbound import IncomingReport
from .domain.placement import place
from .domain.problems import Problem, Refused
from .metrics import REPORTS_IN
from .store import CASEFILE, CaseFileStore

log = structlog.get_logger(__name__)

OutcomeKind = Literal["new", "merged", "folded", "duplicate"]
T = TypeVar("T")


@dataclass(frozen=True)
class Outcome:
    """What became of a report: the case it opened or joined, and where that case stands."""

    report_id: str
    case_id: str
    outcome: OutcomeKind
    status: CaseStatus
    status_notes: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "report_id": self.report_id,
            "case_id": self.case_id,
            "outcome": self.outcome,
            "status": self.status.value,
            "status_notes": self.status_notes,
        }


def new_report_id() -> str:
    return "r" + uuid.uuid4().hex[:20]


@dataclass(frozen=True)
class Ahead:
    """What a report names, read before it is taken (from its message or its form): the
    copy to look up, the category to lock (one of the city's, else None), the duplicate
    search it will make (None where it cannot be read ahead: the report then searches on
    its own), and whether it opens a case when that search finds none (a report does; a
    camera's detection may fold into its scene instead)."""

    source: str
    external_id: str | None
    category_code: str | None
    search: duplicates.NearSearch | None
    opens: bool


def ahead(
    intake: Intake,
    source: str,
    external_id: str | None,
    *,
    category_code: str | None,
    part_code: str | None,
    location: tuple[float, float] | None,
    reported_at: datetime | None,
    opens: bool,
) -> Ahead:
    """What a report names, read as taking it will: its category is the one it names, else
    its part's; its search is made where its part is, else at its location (lon, lat)."""
    city = intake.city
    part = city.part(part_code) if part_code is not None else None
    code = category_code or (part.category_code if part is not None else None)
    if code is not None and city.category(code) is None:
        code = None
    where = (part.lon, part.lat) if part is not None else location
    search = None
    if code is not None and where is not None and reported_at is not None:
        search = duplicates.NearSearch.of(code, *where, reported_at, city.intake.duplicate)
    return Ahead(source, external_id, code, search, opens)


def ahead_of(intake: Intake, report: IncomingReport) -> Ahead:
    """What `report` names, as the batch reads it before taking it."""
    where = report.location
    return ahead(
        intake,
        report.source,
        report.external_id,
        category_code=report.category_code,
        part_code=report.part_code,
        location=(where.lon, where.lat) if where is not None else None,
        reported_at=report.reported_at,
        opens=report.camera_id is None,
    )


class ReportBatch:
    """The reports of one transaction (a batch fetched from INTAKE, or one REST report): the
    case files they open or join are kept here and written once, set-based, at the end
    (`save`). A later report of the batch sees what an earlier one did as if it had been
    written: a copy is answered from the batch, the duplicate search adds the batch's new
    cases to those on file, and a camera's scene (a row that joins the cases on file) is
    read only after the batch was written.

    Before its reports are taken (`prepare`), the batch locks the categories they name and
    looks up their (source, external_id) pairs in one statement, then makes their duplicate
    searches and takes the day's numbers for the reports whose search found nothing in
    another: a new report alone is these two statements and its write. A number not used
    is given back with the writes; a new case the batch took no number ahead for takes as
    many as the batch has reports left (`case_number`)."""

    def __init__(self) -> None:
        self.states: dict[str, CaseFile] = {}
        self._locked: set[str] = set()
        self._opened: dict[str, list[str]] = {}  # category → its new cases not yet written
        self._taken: dict[tuple[str, str], tuple[str, str]] = {}  # key → (report_id, case_id)
        self._on_file: dict[tuple[str, str], Outcome | None] = {}  # prefetched lookups
        self._near: list[tuple[duplicates.NearSearch, list[duplicates.OpenCase]]] = []
        self._numbers: dict[date, list[int]] = {}  # day → [next, last] taken, not yet used
        # how many reports of the batch are still to come, this one included
        self.left = 1

    async def prepare(self, conn: Conn, named: Sequence[Ahead | None], day: date) -> None:
        """Ready the batch for its messages (`named`: what each names, None for one that is
        not a report) in two statements: lock the categories they name and look up their
        copies (`lock`, `prefetch`); then make their duplicate searches (`prefetch_near`)
        and take the day's numbers for the reports whose search found nothing on file.

        The numbers are taken ahead only when every message is a report naming a category
        the batch locked: no report can then lock a category after it holds the counter,
        which a REST report holding that category and waiting for the counter would meet
        crosswise. Otherwise the first new case takes them (`case_number`). Numbers a
        report did not use (it joined a case the batch opened) are given back at `save`."""
        keys = [(a.source, a.external_id) for a in named if a and a.external_id is not None]
        await self.lock(conn, (a.category_code for a in named if a and a.category_code), keys)
        searches = [a.search for a in named if a and a.search is not None]
        ahead_numbers = all(a is not None and a.category_code in self._locked for a in named)
        opening: list[duplicates.NearSearch] = []
        if ahead_numbers:
            counted: set[tuple[str, str]] = set()
            for a in named:
                assert a is not None
                if not a.opens or a.search is None:
                    continue
                if a.external_id is not None:
                    key = (a.source, a.external_id)
                    if key in counted or self._on_file.get(key) is not None:
                        continue  # a copy: answered, not opened
                    counted.add(key)
                opening.append(a.search)
        await self.prefetch_near(conn, searches, opening=opening, day=day)

    async def prefetch(self, conn: Conn, keys: Iterable[tuple[str, str]]) -> None:
        """Look up these (source, external_id) pairs at once; `seen` answers them from here."""
        wanted = self._unknown(keys)
        if wanted:
            self._found(wanted, await repo.find_reports(conn, wanted))

    def _unknown(self, keys: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        return list({k for k in keys if k not in self._on_file and all(map(_storable, k))})

    def _found(self, wanted: list[tuple[str, str]], found: dict[tuple[str, str], Any]) -> None:
        for key in wanted:
            row = found.get(key)
            self._on_file[key] = (
                None
                if row is None
                else Outcome(
                    row["report_id"],
                    row["case_id"],
                    "duplicate",
                    CaseStatus(row["status"]),
                    row["status_notes"],
                )
            )

    async def seen(self, conn: Conn, source: str, external_id: str) -> Outcome | None:
        """The first outcome of a report taken before under this (source, external_id)."""
        key = (source, external_id)
        if key in self._taken:
            report_id, case_id = self._taken[key]
            case = self.states[case_id].case
            assert case is not None
            return Outcome(report_id, case_id, "duplicate", case.case_status, case.status_notes)
        await self.prefetch(conn, [key])  # nothing to do when the batch looked it up already
        return self._on_file.get(key)

    async def lock(
        self, conn: Conn, category_codes: Iterable[str], copies: Iterable[tuple[str, str]] = ()
    ) -> None:
        """Lock these categories for the duplicate search, each once, sorted, in one
        statement; with `copies`, look those up in the same statement (`prefetch`). The
        batch locks the categories its reports name first, before anything else (the day's
        case counter): a REST report locks its category, then the counter; a batch that
        locked a category after the counter could wait for it crosswise."""
        codes = sorted({c for c in category_codes if c not in self._locked and _storable(c)})
        if not codes:
            await self.prefetch(conn, copies)
            return
        wanted = self._unknown(copies)
        if wanted:
            self._found(wanted, await repo.lock_categories_and_find_reports(conn, codes, wanted))
        else:
            await repo.lock_categories(conn, codes)
        self._locked.update(codes)

    async def load(self, conn: Conn, case_id: str) -> CaseFile:
        """The case as this batch left it, else as written (its row locked)."""
        state = self.states.get(case_id)
        if state is None:
            state = (await CASEFILE.load(conn, [case_id]))[case_id]
            self.states[case_id] = state
        return state

    async def prefetch_near(
        self,
        conn: Conn,
        searches: Iterable[duplicates.NearSearch],
        *,
        opening: Sequence[duplicates.NearSearch] = (),
        day: date | None = None,
    ) -> None:
        """Make these duplicate searches at once, their categories locked (`lock`): `near`
        answers a search they cover from here until the batch is written. With `opening`
        (the search of each report that opens a case unless its search finds one) and
        `day`: a number of the day for each of those whose search found nothing, taken in
        the same statement, before `case_number` is asked."""
        wanted = [s for s in dict.fromkeys(searches) if s.category_code in self._locked]
        if not wanted:
            return
        place = {s: i for i, s in enumerate(wanted, 1)}
        numbered = [place[s] for s in opening if s in place]
        numbers = (day, numbered) if day is not None and numbered else None
        found, taken = await repo.open_cases_near_many(conn, wanted, numbers)
        self._near = list(zip(wanted, found, strict=True))
        if taken is not None and day is not None:
            last, count = taken
            self._numbers[day] = [last - count + 1, last]

    async def near(self, conn: Conn, search: duplicates.NearSearch) -> list[duplicates.OpenCase]:
        """The open cases on file that `search` finds: from a prefetched search that covers
        it, else read."""
        for made, cases in self._near:
            if made.covers(search):
                return [c for c in cases if search.finds(c)]
        return await repo.open_cases_near(conn, search)

    def opened_near(self, search: duplicates.NearSearch) -> list[duplicates.OpenCase]:
        """The batch's new cases not yet written that `near` would find."""
        out = []
        for case_id in self._opened.get(search.category_code, ()):
            case = self.states[case_id].case
            assert case is not None
            if case.status in repo.CLOSED_STATES:
                continue
            found = duplicates.OpenCase(
                case.case_id, case.lon, case.lat, case.reported_at, case.part_code
            )
            if search.finds(found):
                out.append(found)
        return out

    async def case_number(self, conn: Conn, day: date) -> int:
        """The day's next number: taken from the counter for all the reports left at the
        first new case, so a batch queues at the counter once."""
        taken = self._numbers.get(day)
        if taken is None or taken[0] > taken[1]:
            count = max(1, self.left)
            last = await repo.take_case_numbers(conn, day, count)
            taken = self._numbers[day] = [last - count + 1, last]
        number = taken[0]
        taken[0] += 1
        return number

    def took(
        self, state: CaseFile, report: IncomingReport, report_id: str, *, opened: bool = False
    ) -> None:
        """`report` (kept as `report_id`) changed `state`, or opened it."""
        self.states[state.case_id] = state
        if report.external_id is not None:
            self._taken[(report.source, report.external_id)] = (report_id, state.case_id)
        if opened and state.case is not None and state.case.category_code is not None:
            self._opened.setdefault(state.case.category_code, []).append(state.case_id)

    async def before_scene(self, conn: Conn) -> None:
        if self._opened:
            await self.save(conn)

    async def save(self, conn: Conn, writes: Writes | None = None) -> None:
        """Write what the batch changed and give back the numbers it did not use; from here
        on its reports are found on file (with `writes`: once they have run)."""
        async with gathered(conn, writes) as out:
            await CASEFILE.save(conn, list(self.states.values()), out)
            for day, (next_number, last) in self._numbers.items():
                if next_number <= last:
                    repo.give_back_case_numbers(out, day, last, last - next_number + 1)
        self._numbers.clear()
        self._opened.clear()
        self._taken.clear()
        self._on_file.clear()
        self._near.clear()

    def forget(self) -> None:
        """Another rule is about to change cases on its own: read them afresh after it."""
        self.states.clear()
        self._near.clear()


def _storable(text: str) -> bool:
    """A text PostgreSQL takes: no U+0000 and nothing UTF-8 cannot encode (a message with
    such an id is refused before its report is looked up)."""
    if "\x00" in text:
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


async def on_case(
    work: Work, store: CaseFileStore, case_id: str, rule: Callable[[CaseFile, Step], T]
) -> T:
    """A rule on one case inside an open unit of work: load (locked), apply, save."""
    states = await store.load(work.conn, [case_id])
    answer = rule(states[case_id], work)
    await store.save(work.conn, [states[case_id]])
    return answer


# -- taking a report ---------------------------------------------------------------------------
async def take_report(
    work: Work, intake: Intake, report: IncomingReport, batch: ReportBatch | None = None
) -> Outcome:
    """A report from any channel becomes exactly one case (new, merged or folded) or a
    refusal naming the field. The same (source, external_id) again answers the first outcome.
    With a `batch`, what it changes is written with the batch (`ReportBatch.save`); without
    one, with the unit of work's writes, in the statement that ends it."""
    if batch is None:
        batch = ReportBatch()
        day = local_day(work.now(), intake.city.district.timezone)
        await batch.prepare(work.conn, [ahead_of(intake, report)], day)
        outcome = await take_report(work, intake, report, batch)
        await batch.save(work.conn, work.writes)
        return outcome
    conn = work.conn
    city = intake.city
    REPORTS_IN.labels(report.channel).inc()
    if report.external_id is not None:
        seen = await batch.seen(conn, report.source, report.external_id)
        if seen is not None:
            return seen
    source = city.source(report.source)
    if source is None:
        raise Refused(Problem("source", f"unknown source {report.source!r}", "unknown-source"))
    placement = place(
        city,
        location=report.location,
        address=report.address,
        part_code=report.part_code,
        camera_id=report.camera_id,
    )
    if isinstance(placement, Problem):
        raise Refused(placement)
    if report.camera_id is not None:
        camera = city.camera(report.camera_id)
        if camera is not None and camera.source != report.source:
            raise Refused(
                Problem(
                    "camera_id",
                    f"camera {report.camera_id!r} belongs to source {camera.source!r}",
                    "wrong-camera",
                )
            )
    category_code = report.category_code or (
        placement.part.category_code if placement.part else None
    )
    category = city.category(category_code) if category_code else None
    if category_code is not None and category is None:
        raise Refused(
            Problem("category_code", f"unknown category {category_code!r}", "not-city-management")
        )
    report_id = new_report_id()
    data = _report_data(report)
    rules = intake.rules

    if category is not None:
        await batch.lock(conn, [category.code])
        if report.camera_id is not None:
            await batch.before_scene(conn)
            scene = await repo.camera_scene(conn, report.camera_id, category.code)
            if scene is not None and duplicates.folds_into(
                scene[1], report.reported_at, source.cooldown_minutes
            ):
                # The camera still sees the same scene: one more detection, nothing sent.
                state = await batch.load(conn, scene[0])
                rules.fold(state, work, report, report_id=report_id, data=data)
                batch.took(state, report, report_id)
                await repo.see_scene(
                    conn, report.camera_id, category.code, scene[0], report.reported_at
                )
                assert state.case is not None
                case = state.case
                return Outcome(
                    report_id, case.case_id, "folded", case.case_status, case.status_notes
                )
        rule = city.intake.duplicate
        search = duplicates.NearSearch.of(
            category.code, placement.lon, placement.lat, report.reported_at, rule
        )
        candidates = await batch.near(conn, search)
        candidates += batch.opened_near(search)
        match = duplicates.find_duplicate(
            candidates,
            lon=placement.lon,
            lat=placement.lat,
            reported_at=report.reported_at,
            rule=rule,
            part_code=placement.part.code if placement.part else None,
        )
        if match is not None:
            state = await batch.load(conn, match.case_id)
            notes = rules.merge(state, work, report, report_id=report_id, match=match, data=data)
            batch.took(state, report, report_id)
            if report.camera_id is not None:
                await repo.see_scene(
                    conn, report.camera_id, category.code, match.case_id, report.reported_at
                )
            return Outcome(report_id, match.case_id, "merged", CaseStatus.MERGED, notes)

    # A new case, numbered: the day's counter is the one queue every opener shares.
    day = local_day(work.now(), city.district.timezone)
    case_id = format_case_id(city.district.code, day, await batch.case_number(conn, day))
    state = CaseFile(case_id)
    move = rules.open(
        state,
        work,
        report,
        report_id=report_id,
        placement=placement,
        category_code=category_code,
        data=data,
    )
    batch.took(state, report, report_id, opened=True)
    if report.camera_id is not None and category_code is not None:
        await repo.see_scene(conn, report.camera_id, category_code, case_id, report.reported_at)
    log.info("case opened", case_id=case_id, status=move.status.value)
    return Outcome(report_id, case_id, "new", move.status, move.notes)


def _report_data(report: IncomingReport) -> dict[str, Any]:
    """The report as kept with the case: everything but who the reporter is."""
    out: dict[str, Any] = {
        "channel": report.channel,
        "source": report.source,
        "external_id": report.external_id,
        "description": report.description,
        "reported_at": report.reported_at.isoformat(),
        "location": report.location.model_dump() if report.location else None,
        "address": report.address,
        "part_code": report.part_code,
        "category_code": report.category_code,
        "urgency": report.urgency,
        "reporter_user_id": report.reporter_user_id,
        "attachments": [a.model_dump(mode="json") for a in report.attachments],
        "files": [f.model_dump(mode="json", exclude_none=True) for f in report.files],
        "camera_id": report.camera_id,
        "confidence": report.confidence,
        "attributes": dict(report.attributes),
    }
    return {k: v for k, v in out.items() if v not in (None, [], {})}


# The durable consumer of the INTAKE stream (bootstrap.py): the one that takes reports.
REPORTS_CONSUMER = "intake-reports"


def keep_taken(work: Work, report: IncomingReport, outcome: Outcome) -> None:
    """A report taken over REST or Open311 goes on the INTAKE stream as taken
    (`ReportTakenV1`), in the transaction that took it, with the reports consumer's inbox
    row saying it is taken: the consumer passes over it. A database restored to a moment
    before the report has neither row, and the consumer, moved back to that moment, takes it
    again, as it takes again what came over NATS. A report answered as the one its
    `external_id` named before changed nothing and is not kept again."""
    if outcome.outcome == "duplicate":
        return
    subject = subjects.intake_taken(report.source)
    emit_taken(work, report.taken(), subject=subject, consumer=REPORTS_CONSUMER)
