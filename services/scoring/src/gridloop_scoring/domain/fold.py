"""The fold (汇总): one case's events → the items it contributes to every measure.

A pure function of the case's set of facts: the facts are sorted by `occurred_at` (then by
lifecycle rank and event id), so duplicates, redeliveries and any arrival order give the
same items; the live projection and `rebuild` call the same function. Each item names its
subject (department, area = cell, person), its measure, and the instant that decides its
period (the `occurred_at` of the deciding event, documented per measure in `measures.py`).

Conventions (documented because they decide numbers):
- A case belongs to one area: the last cell/community/sub-district it was seen with (the
  accepted case's cell, as the later events copy it forward).
- A department's part in a case is counted once per case: its first dispatch, first
  signature, first result, first rework, first return; reworks do not re-count `handled`.
- Timeliness comes from the event's own `on_time` where the emitter judged it; otherwise it
  is judged here against the deadline in force (dispatch, granted extension, rework).
- A withdrawn 超期 (case.overdue_withdrawn, stage handling: the result was on time, only
  late on its way) is no overdue, and the 督办 since it are no escalations.
- Persons: reports and verdicts belong to the user id on the event; a cell's problems
  (missed reports, ratings) belong to its primary supervisor and to the grid heads whose
  territory covers the cell.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from gridloop_contracts import cases as ev
from gridloop_contracts.common import LEVEL_OF_RATING

from .facts import LIFECYCLE_RANK, Fact, parse_time
from .measures import AreaLevel, SubjectKind

OPERATOR_ROLES = frozenset({"operator", "shift-leader"})
# 满意度 (seed 002): each level counts as its own measure; a v1 rating as its level.
LEVEL_MEASURE = {"A": "very_satisfied", "B": "satisfied", "C": "fair", "D": "dissatisfied"}


class Item(NamedTuple):
    """One counted occasion: the row behind every number and its drill-down."""

    case_id: str
    subject_kind: SubjectKind
    subject_code: str
    measure: str
    at: dt.datetime
    value: float
    community_code: str | None
    subdistrict_code: str | None


@dataclass(frozen=True)
class FoldContext:
    """What the fold needs from the city (loaded once): the territory of every cell, the
    supervisors' roster (AB 角), the grid heads answering for each cell, and how near the
    case a verdict must be given to count as given on site (scoring.yaml)."""

    cells: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # cell → (community, sub)
    roster: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # cell → (primary, backup)
    grid_heads: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # cell → heads
    on_site_radius_m: float = 150.0

    def responsible(self, cell: str | None) -> tuple[str, ...]:
        """Who answers for a cell's problems: its primary supervisor, then its grid heads."""
        if not cell:
            return ()
        primary = self.roster.get(cell)
        return ((primary[0],) if primary else ()) + self.grid_heads.get(cell, ())


@dataclass
class _Task:
    """One department's part in the case."""

    dispatched: dt.datetime | None = None
    live: bool = True  # False once returned or recalled (until dispatched again)
    deadline: dt.datetime | None = None
    sign_in_due: dt.datetime | None = None
    signed: tuple[dt.datetime, bool] | None = None
    handled: tuple[dt.datetime, bool] | None = None
    overdue: dt.datetime | None = None
    reworked: dt.datetime | None = None
    returned: dt.datetime | None = None
    reminders: list[dt.datetime] = field(default_factory=list)
    extension_requests: list[dt.datetime] = field(default_factory=list)
    extensions: list[dt.datetime] = field(default_factory=list)
    escalations: list[dt.datetime] = field(default_factory=list)


@dataclass
class _Case:
    case_id: str
    cell: str | None = None
    community: str | None = None
    subdistrict: str | None = None
    reported: dt.datetime | None = None
    first_reporter: str | None = None
    reports: list[tuple[dt.datetime, str, bool]] = field(default_factory=list)
    merged: list[dt.datetime] = field(default_factory=list)
    accepted: dt.datetime | None = None
    accepted_by: str | None = None
    rejected: dt.datetime | None = None
    rejected_by: str | None = None
    closed: tuple[dt.datetime, bool] | None = None
    tasks: dict[str, _Task] = field(default_factory=dict)
    current_dept: str | None = None
    last_handler: str | None = None
    assignments: list[tuple[dt.datetime, str, str]] = field(default_factory=list)
    due: dict[tuple[str, str], dt.datetime] = field(default_factory=dict)  # (purpose, sup)
    overdue_tasks: set[tuple[str, str]] = field(default_factory=set)
    confirmations: list[tuple[dt.datetime, str, bool]] = field(default_factory=list)
    # (at, supervisor, on time, passed, falsified, where it was given, the shift leader's review)
    verdicts: list[tuple[dt.datetime, str, bool, bool, bool, tuple[float, float] | None, bool]] = (
        field(default_factory=list)
    )
    person_overdue: list[tuple[dt.datetime, str]] = field(default_factory=list)
    ratings: list[tuple[dt.datetime, str, str | None]] = field(default_factory=list)
    callbacks: list[tuple[dt.datetime, bool, str | None]] = field(default_factory=list)
    category: str | None = None
    channel: str | None = None
    location: tuple[float, float] | None = None
    # each dispatch sending the case to a unit (not rework): time, task, unit, the dispatcher
    dispatches: list[tuple[dt.datetime, str, str, str | None]] = field(default_factory=list)
    returned_tasks: set[str] = field(default_factory=set)  # task ids, or `dept:<code>`
    falsified: list[tuple[dt.datetime, str | None]] = field(default_factory=list)  # (at, dept)
    queued: dt.datetime | None = None  # the latest time the case went to the manual queue
    waits: list[tuple[dt.datetime, str, float]] = field(default_factory=list)  # placed by hand

    def task(self, dept: str | None) -> _Task | None:
        dept = dept or self.current_dept
        if not dept:
            return None
        return self.tasks.setdefault(dept, _Task())

    def dept_of(self, data: Mapping[str, Any]) -> str | None:
        dept = data.get("dept")
        return dept if isinstance(dept, str) and dept else self.current_dept


def _operator(data: Mapping[str, Any]) -> str | None:
    """The operator who decided, when a person did (auto rules and systems are no one)."""
    actor = data.get("actor")
    if actor is None or data.get("auto"):
        return None
    # A JSON object from the facts table, or the contract's Actor in the replay's fast path.
    role = actor.get("role") if isinstance(actor, dict) else getattr(actor, "role", None)
    if role not in OPERATOR_ROLES:
        return None
    return str(actor["id"] if isinstance(actor, dict) else actor.id)


def _role(data: Mapping[str, Any]) -> str | None:
    actor = data.get("actor")
    if actor is None:
        return None
    role = actor.get("role") if isinstance(actor, dict) else getattr(actor, "role", None)
    return str(role) if role is not None else None


def _actor_id(data: Mapping[str, Any]) -> str | None:
    actor = data.get("actor")
    if actor is None:
        return None
    who = actor.get("id") if isinstance(actor, dict) else getattr(actor, "id", None)
    return str(who) if who is not None else None


def _point(value: object) -> tuple[float, float] | None:
    """(lat, lon) of a location as JSON or as the contract's model (the replay's fast path)."""
    if value is None:
        return None
    if isinstance(value, dict):
        lat, lon = value.get("lat"), value.get("lon")
    else:
        lat, lon = getattr(value, "lat", None), getattr(value, "lon", None)
    if isinstance(lat, int | float) and isinstance(lon, int | float):
        return (float(lat), float(lon))
    return None


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Metres between two WGS-84 points (haversine; ample at the scale of a cell)."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 6_371_000 * math.asin(math.sqrt(h))


def _hours(start: dt.datetime | None, end: dt.datetime) -> float | None:
    if start is None or end < start:
        return None
    return round((end - start).total_seconds() / 3600, 6)


def _judged(on_time: object, at: dt.datetime, due: dt.datetime | None) -> bool:
    """The emitter's verdict when it gave one; else against the due time (none: on time)."""
    if isinstance(on_time, bool):
        return on_time
    return due is None or at <= due


# The event types `_absorb` reads beyond the area fields: only these can add, drop or move an
# item. Any other type changes the items only through the case's area (`AREA_FIELDS`).
FOLDED_TYPES = frozenset(
    {
        "reported",
        "merged",
        "accepted",
        "rejected",
        "dispatched",
        "recalled",
        "returned",
        "signed",
        "extension_requested",
        "extension_decided",
        "handled",
        "overdue",
        "escalated",
        "overdue_withdrawn",
        "verification_assigned",
        "confirmed",
        "verified",
        "reworked",
        "closed",
        "rated",
        "called_back",
        "reminded",
        "queued",
        "unqueued",
    }
)
AREA_FIELDS = ("cell_code", "community_code", "subdistrict_code")
# Events that carry another (a v2 published instead of two events at one instant): the field
# and the carried event's token. case.accepted v2 carries its case.reported; case.closed v2
# the case.verified that closed it.
CARRIED: dict[str, tuple[str, str]] = {
    outer.subject_token: (field_, inner.subject_token)
    for outer, (field_, inner) in ev.CARRIED.items()
}


def _absorb(c: _Case, f: Fact) -> None:
    d = f.data
    at = f.occurred_at
    get = d.get
    if v := get("cell_code"):
        c.cell = v
    if v := get("community_code"):
        c.community = v
    if v := get("subdistrict_code"):
        c.subdistrict = v
    t = f.type
    if (carries := CARRIED.get(t)) is not None and (inner := d.get(carries[0])) is not None:
        # the event it carries, which happened first (at the same instant): folded first
        data = inner if isinstance(inner, Mapping) else inner.__dict__
        at_ = parse_time(data["occurred_at"]) or at
        _absorb(c, Fact(f"{f.event_id}#{carries[1]}", f.case_id, carries[1], at_, data))
    if t == "reported":
        user = d.get("reporter_user_id")
        if c.reported is None:
            c.reported = at
            c.first_reporter = user
            c.channel = d.get("channel") or c.channel
        if user:
            c.reports.append((at, user, True))
    elif t == "merged":
        c.merged.append(at)
        if d.get("reporter_user_id"):
            c.reports.append((at, d["reporter_user_id"], False))
    elif t == "accepted":
        c.category = d.get("category_code") or c.category
        c.location = _point(d.get("location")) or c.location
        if c.reported is None:
            c.channel = d.get("channel") or c.channel
        if c.accepted is None:
            c.accepted = at
            c.accepted_by = _operator(d)
        if c.reported is None and c.first_reporter is None:
            c.first_reporter = d.get("reporter_user_id")
    elif t == "rejected":
        if c.rejected is None:
            c.rejected = at
            c.rejected_by = _operator(d)
    elif t == "dispatched":
        dept = d["dept"]
        c.category = d.get("category_code") or c.category
        if d.get("kind") != "rework":
            by = _actor_id(d) if _role(d) == "dispatcher" else None
            c.dispatches.append((at, str(d.get("task_id") or ""), dept, by))
            if by and c.queued is not None:
                waited = _hours(c.queued, at)
                if waited is not None:
                    c.waits.append((at, by, waited))
                c.queued = None
        task = c.tasks.setdefault(dept, _Task())
        if task.dispatched is None:
            task.dispatched = at
        task.live = True
        task.deadline = parse_time(d.get("deadline"))
        task.sign_in_due = parse_time(d.get("sign_in_due")) or task.sign_in_due
        c.current_dept = dept
    elif t in ("recalled", "returned"):
        task_ = c.task(d.get("dept"))
        if task_ is not None:
            task_.live = False
            if t == "returned" and task_.returned is None:
                task_.returned = at
        if t == "returned":
            c.returned_tasks.add(d.get("task_id") or f"dept:{d.get('dept') or c.current_dept}")
    elif t == "signed":
        task_ = c.task(d.get("dept"))
        if task_ is not None and task_.signed is None:
            due = parse_time(d.get("sign_in_due")) or task_.sign_in_due
            task_.signed = (at, _judged(d.get("on_time"), at, due))
    elif t == "extension_requested":
        task_ = c.task(d.get("dept"))
        if task_ is not None:
            task_.extension_requests.append(at)
    elif t == "extension_decided":
        task_ = c.task(d.get("dept"))
        if task_ is not None and d.get("granted"):
            task_.extensions.append(at)
            task_.deadline = parse_time(d.get("new_deadline")) or task_.deadline
    elif t == "handled":
        c.category = d.get("category_code") or c.category
        dept = c.dept_of(d)
        task_ = c.task(dept)
        if task_ is not None:
            if task_.handled is None:
                done = parse_time(d.get("completed_at")) or at
                due = parse_time(d.get("deadline")) or task_.deadline
                task_.handled = (at, _judged(d.get("on_time"), done, due))
            c.last_handler = dept
    elif t == "overdue":
        stage = d.get("stage") or "handling"
        if stage == "handling":
            task_ = c.task(d.get("dept"))
            if task_ is not None and task_.overdue is None:
                task_.overdue = at
        elif stage in ("verification", "confirmation") and d.get("supervisor_id"):
            c.person_overdue.append((at, d["supervisor_id"]))
            c.overdue_tasks.add((stage, d["supervisor_id"]))
    elif t == "escalated":
        task_ = c.task(d.get("dept")) if d.get("dept") else None
        if task_ is not None:
            task_.escalations.append(at)
    elif t == "overdue_withdrawn":
        # 超期撤回: the department's result was on time after all (it was on its way when the
        # deadline was judged). Its 超期 from `overdue_at` on is void, and so is every 督办 of
        # the task since (an earlier one, e.g. of a deadline before an extension, stays).
        # Always later than what it withdraws, so folded after it; a 签收超时 withdrawn
        # changes nothing here (sign-in timeliness is the case.signed's own).
        if (d.get("stage") or "handling") == "handling":
            task_ = c.tasks.get(c.dept_of(d) or "")
            since = parse_time(d.get("overdue_at"))
            if task_ is not None and since is not None:
                if task_.overdue is not None and task_.overdue >= since:
                    task_.overdue = None
                task_.escalations = [e for e in task_.escalations if e < since]
    elif t == "verification_assigned":
        purpose = d.get("purpose") or "verification"
        sup = d["supervisor_id"]
        c.assignments.append((at, sup, purpose))
        due = parse_time(d.get("due"))
        if due is not None:
            c.due[(purpose, sup)] = due
    elif t == "confirmed":
        sup = d["supervisor_id"]
        due = c.due.get(("confirmation", sup))
        late = ("confirmation", sup) in c.overdue_tasks
        c.confirmations.append((at, sup, _judged(d.get("on_time"), at, due) and not late))
    elif t == "verified":
        if d.get("falsified"):
            c.falsified.append((at, d.get("dept") or c.last_handler or c.current_dept))
        if _role(d) == "shift-leader":
            # the shift leader's review (审批结案 refused as falsified): the area's failed
            # verification, no verification of the supervisor's own
            c.verdicts.append((at, "", False, False, bool(d.get("falsified")), None, True))
            return
        sup = d["supervisor_id"]
        due = c.due.get(("verification", sup))
        on_time = _judged(d.get("on_time"), at, due)
        if d.get("on_time") is None and ("verification", sup) in c.overdue_tasks:
            on_time = False
        c.verdicts.append(
            (
                at,
                sup,
                on_time,
                bool(d.get("passed")),
                bool(d.get("falsified")),
                _point(d.get("position")),
                False,
            )
        )
    elif t == "reworked":
        dept = d.get("dept") or c.last_handler or c.current_dept
        task_ = c.task(dept)
        if task_ is not None:
            if task_.reworked is None:
                task_.reworked = at
            task_.deadline = parse_time(d.get("new_deadline")) or task_.deadline
    elif t == "closed":
        if c.closed is None:
            c.closed = (at, bool(d.get("on_time")))
    elif t == "called_back":
        dept = d.get("dept") or c.last_handler or c.current_dept
        c.callbacks.append((at, bool(d.get("reached")), dept))
    elif t == "queued":
        c.queued = at
    elif t == "unqueued":
        # the department's result overtook the recall: its task is back in its count, and
        # the case's wait in the queue is over without a manual dispatch
        c.queued = None
        task_ = c.task(d.get("dept"))
        if task_ is not None:
            task_.live = True
    elif t == "reminded":
        if (d.get("stage") or "handling") in ("sign_in", "handling") and d.get("dept"):
            task_ = c.task(d["dept"])
            if task_ is not None:
                task_.reminders.append(at)
    elif t == "rated":
        level = d.get("level") or LEVEL_OF_RATING.get(d.get("rating") or "")
        measure = LEVEL_MEASURE.get(level or "")
        if measure is not None:
            dept = d.get("dept") or c.last_handler or c.current_dept
            c.ratings.append((at, measure, dept))


def _order(f: Fact) -> tuple[dt.datetime, int, str]:
    return (f.occurred_at, LIFECYCLE_RANK.get(f.type, 99), f.event_id)


def fold_case(facts: Iterable[Fact], ctx: FoldContext) -> list[Item]:
    """Every item one case contributes, from its facts in any order (duplicates by event id
    are counted once)."""
    unique = {f.event_id: f for f in facts}
    ordered = sorted(unique.values(), key=_order)
    if not ordered:
        return []
    c = _Case(ordered[0].case_id)
    for f in ordered:
        _absorb(c, f)
    return _items(c, ctx)


def _items(c: _Case, ctx: FoldContext) -> list[Item]:
    if c.cell and c.cell in ctx.cells:
        known_community, known_subdistrict = ctx.cells[c.cell]
        c.community = c.community or known_community
        c.subdistrict = c.subdistrict or known_subdistrict
    out: list[Item] = []
    cell, community, subdistrict = c.cell or "", c.community, c.subdistrict

    case_id, append, new = c.case_id, out.append, tuple.__new__

    def add(kind: SubjectKind, code: str, measure: str, at: dt.datetime) -> None:
        # Item(…) without the named tuple's Python-level __new__: a replay makes millions.
        append(new(Item, (case_id, kind, code, measure, at, 1.0, community, subdistrict)))

    def add_value(
        kind: SubjectKind, code: str, measure: str, at: dt.datetime, value: float
    ) -> None:
        """A distribution's item: one occasion and its value (hours)."""
        append(new(Item, (case_id, kind, code, measure, at, value, community, subdistrict)))

    def area(measure: str, at: dt.datetime | None) -> None:
        if at is not None:
            add("area", cell, measure, at)

    # -- areas (cell; community, sub-district and district group the same rows) ----------
    area("reported", c.reported)
    for at in c.merged:
        area("merged", at)
    area("accepted", c.accepted)
    area("rejected", c.rejected)
    if c.closed is not None:
        area("closed", c.closed[0])
        if c.closed[1]:
            area("closed_on_time", c.closed[0])
    for at, _sup, _on_time, passed, falsified, _where, _review in c.verdicts:
        if not passed:
            area("failed_verifications", at)
        if falsified:
            area("falsifications", at)
    if c.accepted is not None:
        if c.first_reporter is not None:
            area("discovered", c.accepted)
        hours = _hours(c.reported, c.accepted)
        if hours is not None:
            add_value("area", cell, "accept_hours", c.accepted, hours)
        if c.dispatches:
            first_dispatch = min(at for at, *_ in c.dispatches)
            hours = _hours(c.accepted, first_dispatch)
            if hours is not None:
                add_value("area", cell, "dispatch_hours", first_dispatch, hours)
    for at, task_id, unit, by in c.dispatches:
        returned = task_id in c.returned_tasks or f"dept:{unit}" in c.returned_tasks
        area("dispatches", at)
        if returned:
            area("misdispatches", at)
        if by:
            add("person", by, "dispatches", at)
            if returned:
                add("person", by, "misdispatches", at)
    for at, by, waited in c.waits:
        add_value("person", by, "queue_hours", at, waited)
    responsible = ctx.responsible(c.cell)
    for at, rating, dept in c.ratings:
        area("rated", at)
        area(rating, at)
        if dept:
            add("department", dept, "rated", at)
            add("department", dept, rating, at)
        for person in responsible:
            add("person", person, "rated", at)
            add("person", person, rating, at)

    for at, reached, dept in c.callbacks:  # 回访: each concluded call-back
        area("callbacks", at)
        if reached:
            area("callbacks_reached", at)
        if dept:
            add("department", dept, "callbacks", at)
            if reached:
                add("department", dept, "callbacks_reached", at)

    # -- departments -------------------------------------------------------------------
    for dept, task in c.tasks.items():
        if task.dispatched is not None:
            add("department", dept, "dispatched", task.dispatched)
            if task.live:
                add("department", dept, "to_handle", task.dispatched)
        if task.signed is not None:
            add("department", dept, "signed", task.signed[0])
            if task.signed[1]:
                add("department", dept, "signed_on_time", task.signed[0])
            hours = _hours(task.dispatched, task.signed[0])
            if hours is not None:
                add_value("department", dept, "sign_hours", task.signed[0], hours)
        if task.handled is not None:
            add("department", dept, "handled", task.handled[0])
            if task.handled[1]:
                add("department", dept, "handled_on_time", task.handled[0])
            hours = _hours(task.dispatched, task.handled[0])
            if hours is not None:
                add_value("department", dept, "handling_hours", task.handled[0], hours)
                if c.category:
                    add_value("category", c.category, "handling_hours", task.handled[0], hours)
        overdue = task.overdue
        if overdue is None and task.handled is not None and not task.handled[1]:
            overdue = task.handled[0]
        if overdue is not None:
            add("department", dept, "overdue", overdue)
        if task.reworked is not None:
            add("department", dept, "reworked", task.reworked)
        if task.returned is not None:
            add("department", dept, "returned", task.returned)
        for at in task.extension_requests:
            add("department", dept, "extension_requests", at)
        for at in task.extensions:
            add("department", dept, "extensions", at)
        for at in task.escalations:
            add("department", dept, "escalations", at)
        for at in task.reminders:
            add("department", dept, "reminders", at)
    for at, falsified_dept in c.falsified:
        if falsified_dept:
            add("department", falsified_dept, "falsified", at)

    # -- channels: the case's flow, once per case ---------------------------------------
    if c.channel:
        ch = c.channel
        dispatched = [t.dispatched for t in c.tasks.values() if t.dispatched is not None]
        late = [
            o
            for t in c.tasks.values()
            if (o := t.overdue or (t.handled[0] if t.handled and not t.handled[1] else None))
        ]
        for measure, when in (
            ("reported", c.reported),
            ("accepted", c.accepted),
            ("dispatched", min(dispatched) if dispatched else None),
            ("closed", c.closed[0] if c.closed else None),
            ("overdue", min(late) if late else None),
        ):
            if when is not None:
                add("channel", ch, measure, when)

    # -- people ------------------------------------------------------------------------
    for at, user, first in c.reports:
        add("person", user, "reports", at)
        if first and c.accepted is not None:
            add("person", user, "valid_reports", at)
    if c.accepted is not None and c.cell and c.cell in ctx.roster:
        primary, backup = ctx.roster[c.cell]
        add("person", primary, "cell_cases", c.accepted)
        if c.first_reporter not in (primary, backup):
            add("person", primary, "missed", c.accepted)
    for at, sup, purpose in c.assignments:
        add("person", sup, f"{purpose}_tasks", at)
    for at, sup, on_time in c.confirmations:
        add("person", sup, "confirmations", at)
        if on_time:
            add("person", sup, "confirmations_on_time", at)
    for at, sup, on_time, _passed, _falsified, where, review in c.verdicts:
        if review:
            continue
        add("person", sup, "verifications", at)
        if on_time:
            add("person", sup, "verifications_on_time", at)
            if (
                where is not None
                and c.location is not None
                and distance_m(where, c.location) <= ctx.on_site_radius_m
            ):
                add("person", sup, "verifications_on_site", at)
        assigned = [
            a for a, s_, p in c.assignments if s_ == sup and p == "verification" and a <= at
        ]
        if assigned:
            hours = _hours(max(assigned), at)
            if hours is not None:
                add_value("person", sup, "verify_hours", at, hours)
    for at, sup in c.person_overdue:
        add("person", sup, "missed_first_responses", at)
    for when, who, measure in (
        (c.accepted, c.accepted_by, "accepted_cases"),
        (c.rejected, c.rejected_by, "rejected_cases"),
    ):
        if when is not None and who:
            add("person", who, "decisions", when)
            add("person", who, measure, when)
    return out


def fold_all(facts: Iterable[Fact], ctx: FoldContext) -> list[Item]:
    """Every case's items (the replay path): facts grouped by case, each case folded once."""
    by_case: dict[str, dict[str, Fact]] = {}
    for f in facts:
        by_case.setdefault(f.case_id, {})[f.event_id] = f
    out: list[Item] = []
    for case_facts in by_case.values():
        out.extend(fold_case(case_facts.values(), ctx))
    return out


def subject_of(item: Item, level: AreaLevel | None, district: str) -> str | None:
    """The subject an item counts for: areas at the asked level (cell, community, sub-district
    or the whole district), departments and people by their code."""
    if item.subject_kind != "area" or level in (None, "cell"):
        return item.subject_code or None
    if level == "community":
        return item.community_code
    if level == "subdistrict":
        return item.subdistrict_code
    return district


def totals(
    items: Iterable[Item],
    kind: SubjectKind,
    start: dt.datetime,
    end: dt.datetime,
    *,
    level: AreaLevel | None = None,
    district: str = "",
) -> dict[str, dict[str, float]]:
    """subject → measure → sum over [start, end): what the repository's SQL computes, in
    memory (tests, previews and the rebuild check)."""
    out: dict[str, dict[str, float]] = {}
    for i in items:
        if i.subject_kind != kind or not start <= i.at < end:
            continue
        code = subject_of(i, level, district)
        if code is None:
            continue
        m = out.setdefault(code, {})
        m[i.measure] = m.get(i.measure, 0.0) + i.value
    return out
