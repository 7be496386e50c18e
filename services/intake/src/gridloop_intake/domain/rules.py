"""The case file's rules, pure: what an event of another service, an operator's decision, a
rating or a new report does to one case (`CaseFile`). No I/O: a rule changes the state in
memory, `step.emit`s intake's own case events and the status notices to the reporters'
sources (进度回告), and the store writes it all back (store.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gridloop_city import City, WorkingCalendar
from gridloop_city.models import Category
from gridloop_contracts import (
    Actor,
    AttachmentRef,
    CaseStatus,
    Location,
    MaskedReporter,
)
from gridloop_contracts import cases as ev
from gridloop_contracts.common import level_of
from gridloop_contracts.inbound import CaseStatusV1
from gridloop_runtime.mail import schedule_mail
from gridloop_runtime.step import Step

from . import acceptance, casefile, notices, privacy
from .case import CaseFile, CaseRow, Entry, RatingRow, ReporterRow, ReportRow
from .duplicates import Match
from .inbound import IncomingReport
from .placement import Placement
from .problems import Problem, Refused

SYSTEM = Actor(id="intake", role="system", name="受理规则 / intake rules")


@dataclass(frozen=True)
class Operator:
    """Who decides at the acceptance desk (an authenticated operator or shift leader)."""

    user_id: str
    roles: frozenset[str]
    name: str | None = None

    @property
    def may_review(self) -> bool:
        """A shift leader's decision needs no review (nor an administrator's)."""
        return bool(self.roles & {"shift-leader", "admin"})

    def actor(self) -> Actor:
        role = "shift-leader" if "shift-leader" in self.roles else "operator"
        return Actor(id=self.user_id, role=role, name=self.name or None)


def dims(case: CaseRow) -> dict[str, Any]:
    """The dimensions every case event carries (docs/flow.md)."""
    return {
        "case_id": case.case_id,
        "category_code": case.category_code,
        "cell_code": case.cell_code,
        "community_code": case.community_code,
        "subdistrict_code": case.subdistrict_code,
    }


def line_of(event_id: str, event: ev.CaseEvent, status: CaseStatus | None, at: datetime) -> Entry:
    """The timeline line of a case event (an acceptance's line without the report it carries,
    a closing's without the verdict: each has a line of its own)."""
    data = event.to_json_dict()
    if (found := ev.CARRIED.get(type(event))) is not None:
        data.pop(found[0], None)
    return Entry(
        case_id=event.case_id,
        type=event.type_name,
        occurred_at=event.occurred_at,
        summary=casefile.summary(event),
        data=data,
        recorded_at=at,
        event_id=event_id,
        actor=event.actor.model_dump(exclude_none=True) if event.actor else None,
        status=status.value if status else None,
    )


def tell(
    step: Step,
    case_id: str,
    targets: Sequence[Sequence[str]],
    status: CaseStatus,
    notes: str | None,
    at: datetime,
) -> None:
    """进度回告: the new status to the source of every report on the case."""
    for source, external_id in targets:
        step.emit(
            CaseStatusV1(
                external_id=external_id or None,
                case_id=case_id,
                status=status,
                status_notes=notes,
                updated_at=at,
            ),
            subject=f"notify.{source}",
            case_id=case_id,
        )


@dataclass(frozen=True)
class Move:
    """What a decision does: the timeline lines (with the events emitted), the status after,
    the reporter's notes and the columns to set."""

    entries: list[Entry]
    status: CaseStatus
    notes: str
    columns: dict[str, Any]


class CaseRules:
    """The rules, bound to the city they decide for (its categories, cells, calendar)."""

    def __init__(
        self,
        city: City,
        calendar: WorkingCalendar,
        residents: notices.Residents | None = None,
        *,
        accepted_v2: bool = True,
    ) -> None:
        self.city = city
        self.calendar = calendar
        self.residents = residents or notices.Residents()
        # a report accepted as it comes in: one case.accepted v2 carrying its 上报
        self.accepted_v2 = accepted_v2

    def tell(
        self,
        step: Step,
        case_id: str,
        targets: Sequence[Sequence[str]],
        status: CaseStatus,
        notes: str | None,
        at: datetime,
    ) -> None:
        """进度回告 to the reporters' sources that want to hear of this status (their
        `notify` in the city's sources; every status when not given)."""
        told = [t for t in targets if (src := self.city.source(t[0])) is None or src.told(status)]
        if told:
            tell(step, case_id, told, status, notes, at)

    def use_city(self, city: City, calendar: WorkingCalendar) -> None:
        """Live reload: decide on this version of the city from the next message on."""
        self.city, self.calendar = city, calendar

    def dept_name(self, code: str) -> str:
        dept = self.city.department(code)
        return dept.name if dept else code

    # -- the case file: events of the other services -----------------------------------------
    def record(self, state: CaseFile, event: ev.CaseEvent, step: Step) -> None:
        """Another service's case event into the case file; the reporters hear of status
        changes; 结单归档 on closing; 核实结果 decides again. An event that carries another
        (case.closed v2 the verdict that closed it) is two lines: the carried one's first."""
        assert step.trigger is not None
        if (inner := ev.carried(event)) is not None:
            self._record(state, inner, step, f"{step.trigger.id}#{inner.subject_token}")
        self._record(state, event, step, step.trigger.id)

    def _record(self, state: CaseFile, event: ev.CaseEvent, step: Step, event_id: str) -> None:
        assert step.trigger is not None
        now = step.now()
        case = state.case
        change = casefile.change_for(event, self.dept_name, case)
        status = change.status
        if case is not None and status is not None and not casefile.moves(case.case_status, change):
            # a late or replayed event does not reopen what is settled; a department's news
            # does not take a case out of the manual queue
            status = None
        state.add(line_of(event_id, event, status, now))
        if case is None:
            return  # not (yet) ours: the line is kept so the file is complete when it shows up
        notes = change.notes if status else None
        state.update(at=now, status=status, notes=notes, columns=change.columns)
        if status is not None:
            self.tell(step, case.case_id, case.targets or [], status, notes, now)
        if isinstance(event, ev.CaseClosed) and status is not None:
            state.archive(event.occurred_at)
            self.mail(case, step, "closed", step.trigger.id)
        elif isinstance(event, ev.CaseReopened) and status is not None:
            self.mail(case, step, "reopened", step.trigger.id, reason=event.reason)
        elif isinstance(event, ev.CaseConfirmed):
            self.confirmed(state, event, step)

    def confirmed(self, state: CaseFile, event: ev.CaseConfirmed, step: Step) -> None:
        """核实结果: confirmed → the acceptance rules again (now with the supervisor's word);
        not found on site → 不予立案."""
        case = state.case
        if case is None or case.case_status != CaseStatus.PENDING_CONFIRMATION:
            return  # late or repeated: the case has moved on
        decision = acceptance.decide(self.facts(case, confirmed=event.confirmed), self.city.intake)
        actor = Actor(id=event.supervisor_id, role="supervisor")
        self.advance(state, decision, step, actor=actor, auto=True)

    # -- moving a case on ----------------------------------------------------------------------
    def facts(self, case: CaseRow, confirmed: bool | None = None) -> acceptance.Facts:
        city = self.city
        source = city.source(case.source)
        cell = city.cell(case.cell_code)
        assert source is not None and cell is not None
        return acceptance.Facts(
            channel=case.channel,  # type: ignore[arg-type]
            category=city.category(case.category_code) if case.category_code else None,
            cell=cell,
            source=source,
            reporter=city.user(case.reporter_user_id) if case.reporter_user_id else None,
            confidence=case.confidence,
            confirmed=confirmed,
        )

    def emit(self, step: Step, event: ev.CaseEvent) -> Entry:
        """Publish one of intake's own case events and return its timeline line (intake does
        not consume its own events: this is where they enter the file)."""
        env = step.emit(event)
        return self.line(env.id, event, step)

    def line(self, event_id: str, event: ev.CaseEvent, step: Step) -> Entry:
        status = casefile.change_for(event, self.dept_name).status
        return line_of(event_id, event, status, step.now())

    def move(
        self,
        case: CaseRow,
        decision: acceptance.Decision,
        step: Step,
        *,
        actor: Actor,
        auto: bool,
        approved_by: str | None = None,
        report: ev.CaseReported | None = None,
    ) -> Move:
        """The decision's events, lines and status, after `report`, the 上报 of a new case: a
        report accepted as it came in travels inside the acceptance (case.accepted v2, where
        `accepted_v2`); else it is published first, as case.reported."""
        now = step.now()
        base = dims(case)
        if report is not None and (decision.action != "accept" or not self.accepted_v2):
            entries = [self.emit(step, report)]
            rest = self.move(case, decision, step, actor=actor, auto=auto, approved_by=approved_by)
            return dataclasses.replace(rest, entries=[*entries, *rest.entries])
        if decision.action == "accept":
            assert case.category_code is not None
            model = ev.CaseAccepted if report is None else ev.CaseAcceptedV2
            accepted = model(
                **{**base, "category_code": case.category_code},
                occurred_at=now,
                actor=actor,
                urgency=case.urgency,
                description=case.description,
                location=Location(lat=case.lat, lon=case.lon),
                address=case.address,
                part_code=case.part_code,
                part_owner_dept=case.part_owner_dept,
                channel=case.channel,
                source=case.source,
                reporter=MaskedReporter.model_validate(case.reporter) if case.reporter else None,
                attachments=case.attachments,
                files=[AttachmentRef.model_validate(f) for f in case.files] or None,
                auto=auto,
                reported_at=case.reported_at,
                reporter_user_id=case.reporter_user_id,
                **({} if report is None else {"report": report}),
            )
            notes = casefile.change_for(accepted, self.dept_name).notes or ""
            if approved_by:
                notes += f"（值班长 {approved_by} 审核）"
            if report is None:
                lines = [self.emit(step, accepted)]
            else:  # the 上报 and the 立案: two lines, one event
                event_id = step.emit(accepted).id
                lines = [
                    self.line(f"{event_id}#{report.subject_token}", report, step),
                    self.line(event_id, accepted, step),
                ]
            return Move(
                lines,
                CaseStatus.ACCEPTED,
                notes,
                {"accepted_at": now, "queue_reason": None, "proposal": None},
            )
        if decision.action == "confirm":
            # The supervisor's time to confirm, on the working calendar (calendar.yaml).
            due = self.calendar.add_duration(now, self.city.calendar.confirmation.limit)
            asked = ev.CaseConfirmationRequested(
                **base,
                occurred_at=now,
                actor=actor,
                reason=decision.reason,
                description=case.description,
                location=Location(lat=case.lat, lon=case.lon),
                address=case.address,
                due=due,
            )
            return Move(
                [self.emit(step, asked)],
                CaseStatus.PENDING_CONFIRMATION,
                casefile.change_for(asked, self.dept_name).notes or "",
                {"queue_reason": None, "proposal": None},
            )
        if decision.action == "reject":
            rejected = ev.CaseRejected(
                **base,
                occurred_at=now,
                actor=actor,
                reason_code=decision.code,
                reason=decision.reason,
            )
            return Move(
                [self.emit(step, rejected)],
                CaseStatus.REJECTED,
                casefile.change_for(rejected, self.dept_name).notes or "",
                {"queue_reason": None, "proposal": None},
            )
        # queue: no bus event (nothing changes for the other services), a timeline line only.
        entry = Entry(
            case_id=case.case_id,
            type="intake.queued",
            occurred_at=now,
            summary=f"进入待立案队列 ({decision.code}): {decision.reason}",
            data={"queue_reason": decision.code, "reason": decision.reason},
            recorded_at=now,
            actor=actor.model_dump(exclude_none=True),
            status=CaseStatus.PENDING_ACCEPTANCE.value,
        )
        return Move(
            [entry],
            CaseStatus.PENDING_ACCEPTANCE,
            f"待受理员立案：{decision.reason} / awaiting an operator",
            {"queue_reason": decision.code, "proposal": None},
        )

    def advance(
        self,
        state: CaseFile,
        decision: acceptance.Decision,
        step: Step,
        *,
        actor: Actor,
        auto: bool,
        columns: dict[str, Any] | None = None,
        approved_by: str | None = None,
    ) -> CaseRow:
        """Apply a decision to a case on file: events, status, timeline, reporters told."""
        assert state.case is not None
        if columns:
            state.update(at=None, columns=columns)
        move = self.move(
            state.case, decision, step, actor=actor, auto=auto, approved_by=approved_by
        )
        now = step.now()
        case = state.update(at=now, status=move.status, notes=move.notes, columns=move.columns)
        state.add(*move.entries)
        self.tell(step, case.case_id, case.targets or [], move.status, move.notes, now)
        self.mail_move(case, step, move, decision)
        return case

    # -- mail to reporters (告知) ---------------------------------------------------------------
    def mail_move(
        self, case: CaseRow, step: Step, move: Move, decision: acceptance.Decision
    ) -> None:
        """立案 or 不予立案: the reporters who left an e-mail hear of it."""
        kind = {CaseStatus.ACCEPTED: "accepted", CaseStatus.REJECTED: "rejected"}.get(move.status)
        event_id = next((e.event_id for e in move.entries if e.event_id), None)
        if kind is not None and event_id is not None:
            self.mail(case, step, kind, event_id, reason=decision.reason)

    def mail(
        self, case: CaseRow, step: Step, kind: str, event_id: str, *, reason: str | None = None
    ) -> None:
        """A mail of `kind` to every reporter of the case who left an e-mail, in their
        language, keyed by the event that caused it (so it is one mail, whatever happens)."""
        if not case.subscribers:
            return
        res = self.residents
        category = self.city.category(case.category_code) if case.category_code else None
        dept = self.city.department(case.dept) if case.dept else None
        for ref, lang in case.subscribers:
            en = lang == "en"
            values: dict[str, Any] = {
                "case_id": case.case_id,
                "category": _name(category, en),
                "description": case.description,
                "reason": reason,
                "result": case.result,
                "dept": dept.name if dept else case.dept,
                "status_notes": case.status_notes,
                "case_url": res.case_url(case.case_id),
            }
            if kind == "closed" and case.closed_at is not None:
                link = notices.RatingLink(
                    case.case_id, case.closed_at, ref, step.now() + res.link_ttl
                )
                values["rating_url"] = res.rating_url(notices.rating_token(res.link_secret, link))
            mail = notices.compose(self.city, kind, lang, ref, values)
            if mail is not None:
                schedule_mail(step, f"{case.case_id}/{event_id}/{ref}", mail)

    # -- the acceptance desk (commands on one case) ------------------------------------------
    def accept(
        self,
        state: CaseFile,
        step: Step,
        who: Operator,
        *,
        category_code: str | None,
        urgency: str | None,
        note: str | None,
    ) -> dict[str, Any]:
        """立案 by an operator (or the shift leader's approval where configured)."""
        case = pending(state)
        code = category_code or case.category_code
        if code is None:
            raise Refused(Problem("category_code", "a category is needed to accept", "required"))
        if self.city.category(code) is None:
            raise Refused(Problem("category_code", f"unknown category {code!r}", "unknown"))
        cell = self.city.cell(case.cell_code)
        assert cell is not None
        if not acceptance.on_entry_list(code, cell):
            raise Refused(
                Problem(
                    "category_code",
                    f"{code} is not on the entry list of cell {cell.code}",
                    "not-in-entry-list",
                    409,
                )
            )
        columns: dict[str, Any] = {"category_code": code, "urgency": urgency or case.urgency}
        proposal = {"action": "accept", **columns, "note": note}
        return self.decide(state, step, who, proposal, columns)

    def reject(
        self, state: CaseFile, step: Step, who: Operator, *, reason_code: str, reason: str | None
    ) -> dict[str, Any]:
        """不予立案 with a reason code from intake.yaml."""
        reasons = {r.code: r for r in self.city.intake.reject_reasons}
        if reason_code not in reasons:
            raise Refused(
                Problem(
                    "reason_code",
                    f"unknown reason code {reason_code!r}; one of {sorted(reasons)}",
                    "unknown",
                )
            )
        pending(state, also_confirmation=True)
        text = reason or reasons[reason_code].zh
        proposal = {"action": "reject", "reason_code": reason_code, "reason": text}
        return self.decide(state, step, who, proposal, {})

    def decide(
        self,
        state: CaseFile,
        step: Step,
        who: Operator,
        proposal: dict[str, Any],
        columns: dict[str, Any],
    ) -> dict[str, Any]:
        case = state.case
        assert case is not None
        code = columns.get("category_code", case.category_code)
        if acceptance.needs_review(code, self.city.intake) and not who.may_review:
            # 值班长审核: the operator's decision waits for the shift leader.
            now = step.now()
            proposal = {**proposal, "by": who.user_id, "at": now.isoformat()}
            state.update(
                at=now,
                columns={"proposal": proposal, "queue_reason": acceptance.QUEUE_LEADER_REVIEW},
            )
            state.add(
                Entry(
                    case_id=case.case_id,
                    type="intake.proposed",
                    occurred_at=now,
                    summary=f"受理员 {who.user_id} 提议{_verb(proposal)}，待值班长审核",
                    data=proposal,
                    recorded_at=now,
                    actor=who.actor().model_dump(exclude_none=True),
                )
            )
            return {
                "case_id": case.case_id,
                "status": case.status,
                "awaiting": "shift-leader",
                "proposal": proposal,
            }
        updated = self.execute(state, step, proposal, who.actor(), columns)
        return {"case_id": updated.case_id, "status": updated.status}

    def execute(
        self,
        state: CaseFile,
        step: Step,
        proposal: dict[str, Any],
        actor: Actor,
        columns: dict[str, Any],
        approved_by: str | None = None,
    ) -> CaseRow:
        if proposal["action"] == "accept":
            decision = acceptance.Decision(
                "accept", proposal.get("note") or "受理员立案", "operator"
            )
        else:
            decision = acceptance.Decision("reject", proposal["reason"], proposal["reason_code"])
        return self.advance(
            state, decision, step, actor=actor, auto=False, columns=columns, approved_by=approved_by
        )

    def review(
        self, state: CaseFile, step: Step, who: Operator, *, approve: bool, note: str | None
    ) -> dict[str, Any]:
        """值班长审核: carry out the operator's proposal, or send the case back to the queue."""
        case = pending(state, also_confirmation=True)
        if not case.proposal:
            raise Refused(
                Problem(
                    "case_id", f"case {case.case_id} has no decision to review", "no-proposal", 409
                )
            )
        proposal = dict(case.proposal)
        operator = Actor(id=str(proposal.get("by", "")), role="operator")
        if approve:
            columns = {
                k: proposal[k] for k in ("category_code", "urgency") if proposal.get(k) is not None
            }
            updated = self.execute(
                state, step, proposal, operator, columns, approved_by=who.user_id
            )
            return {"case_id": case.case_id, "status": updated.status, "approved": True}
        now = step.now()
        state.update(
            at=now, columns={"proposal": None, "queue_reason": acceptance.QUEUE_REVIEW_DECLINED}
        )
        state.add(
            Entry(
                case_id=case.case_id,
                type="intake.review_declined",
                occurred_at=now,
                summary=f"值班长 {who.user_id} 未同意{_verb(proposal)}：{note or ''}".rstrip("："),
                data={"proposal": proposal, "note": note},
                recorded_at=now,
                actor=who.actor().model_dump(exclude_none=True),
            )
        )
        return {"case_id": case.case_id, "status": case.status, "approved": False}

    def request_confirmation(
        self, state: CaseFile, step: Step, who: Operator, *, reason: str | None
    ) -> dict[str, Any]:
        """An operator sends a supervisor to look before deciding (核实)."""
        pending(state)
        decision = acceptance.Decision(
            "confirm", reason or f"受理员 {who.user_id} 要求现场核实", "confirmation"
        )
        updated = self.advance(state, decision, step, actor=who.actor(), auto=False)
        return {"case_id": updated.case_id, "status": updated.status}

    # -- the public list --------------------------------------------------------------------
    def set_public(
        self, state: CaseFile, step: Step, who: Operator, *, public: bool, note: str | None
    ) -> dict[str, Any]:
        """An operator decides whether Open311's public list shows the case (公开): a case
        from an internal channel the public should follow, or a public report that says
        what should not be shown. Not a change of the case's progress: no event, no new
        `updated_at`; a timeline line says who decided."""
        case = state.case
        if case is None:
            raise Refused(Problem("case_id", f"no case {state.case_id!r}", "not-found", 404))
        now = step.now()
        state.update(at=None, columns={"public": public})
        verb = "公开" if public else "不公开"
        state.add(
            Entry(
                case_id=case.case_id,
                type="intake.publicity",
                occurred_at=now,
                summary=f"受理员 {who.user_id} 设为{verb} / {'public' if public else 'internal'}"
                + (f"：{note}" if note else ""),
                data={"public": public, "note": note},
                recorded_at=now,
                actor=who.actor().model_dump(exclude_none=True),
            )
        )
        return {"case_id": case.case_id, "public": public, "listed": case.listed_publicly}

    # -- ratings -----------------------------------------------------------------------------
    def rate(
        self,
        state: CaseFile,
        step: Step,
        who: Actor,
        *,
        rating: str,
        comment: str | None,
        via: str,
        rated_at: datetime | None = None,
    ) -> dict[str, Any]:
        """满意度评价: once per closing, only after closing (the store loads `rated`). `rating`
        is a level A–D (seed 002) or a v1 rating, mapped (B, C, D); gridloop.case.rated.v2."""
        try:
            level = level_of(rating)
        except ValueError as exc:
            raise Refused(Problem("rating", str(exc), "invalid", 422)) from None
        case = state.case
        if case is None:
            raise Refused(Problem("case_id", f"no case {state.case_id!r}", "not-found", 404))
        if case.case_status != CaseStatus.CLOSED or case.closed_at is None:
            raise Refused(
                Problem(
                    "case_id",
                    f"case {case.case_id} is {case.status}, not closed",
                    "not-closed",
                    409,
                )
            )
        assert state.rated is not None, "ratings need a store that loads them"
        if case.closed_at in state.rated:
            raise Refused(
                Problem("rating", f"case {case.case_id} is already rated", "already-rated", 409)
            )
        now = step.now()
        state.rated.add(case.closed_at)
        state.ratings.append(
            RatingRow(case.case_id, case.closed_at, level, comment, via, rated_at=now)
        )
        rated = ev.CaseRatedV2(
            **dims(case),
            occurred_at=rated_at or now,
            actor=who,
            level=level,
            comment=comment,
            source=case.source,
            dept=case.dept,
            via=via,
        )
        entry = self.emit(step, rated)
        state.update(at=now, columns={"rating": level})
        state.add(entry)
        if case.archived:
            state.archive_rating = level
        return {"case_id": case.case_id, "rating": level}

    # -- new reports (the duplicate search and the case number are the handler's) --------------
    def open(
        self,
        state: CaseFile,
        step: Step,
        report: IncomingReport,
        *,
        report_id: str,
        placement: Placement,
        category_code: str | None,
        data: dict[str, Any],
    ) -> Move:
        """A new case (`state.case_id` is its fresh number): reported, and decided on at
        once where the rules allow."""
        now = step.now()
        reporter = keep_reporter(state, report, report_id, now)
        subscriber = subscriber_of(state, report)
        cell = placement.cell
        case = CaseRow(
            case_id=state.case_id,
            status=CaseStatus.RECEIVED.value,
            status_notes=None,
            channel=report.channel,
            source=report.source,
            external_id=report.external_id,
            report_id=report_id,
            category_code=category_code,
            urgency=report.urgency,
            description=report.description,
            cell_code=cell.code,
            community_code=cell.community_code,
            subdistrict_code=cell.subdistrict_code,
            lon=placement.lon,
            lat=placement.lat,
            located_by=placement.located_by,
            address=placement.address,
            part_code=placement.part.code if placement.part else None,
            part_owner_dept=placement.part.owner_dept if placement.part else None,
            camera_id=report.camera_id,
            confidence=report.confidence,
            reporter=reporter.model_dump(exclude_none=True) if reporter else None,
            reporter_user_id=report.reporter_user_id,
            attachments=[a.model_dump(mode="json") for a in report.attachments],
            files=[f.model_dump(mode="json", exclude_none=True) for f in report.files],
            reported_at=report.reported_at,
            received_at=now,
            updated_at=now,
            detections=1 if report.camera_id else 0,
            targets=[[report.source, report.external_id or ""]],
            subscribers=[subscriber] if subscriber else [],
        )
        reported = ev.CaseReported(
            **dims(case),
            occurred_at=now,
            actor=SYSTEM,
            report_id=report_id,
            channel=report.channel,
            source=report.source,
            external_id=report.external_id,
            description=report.description,
            location=placement.location,
            address=placement.address,
            part_code=case.part_code,
            urgency=report.urgency,
            reporter=reporter,
            reporter_user_id=report.reporter_user_id,
            attachments=list(report.attachments),
            files=list(report.files) or None,
            reported_at=report.reported_at,
            confidence=report.confidence,
        )
        decision = acceptance.decide(self.facts(case), self.city.intake)
        move = self.move(case, decision, step, actor=SYSTEM, auto=True, report=reported)
        entries = move.entries
        opened = dataclasses.replace(
            case, status=move.status.value, status_notes=move.notes, **move.columns
        )
        state.open(opened)
        state.reports.append(_report_row(report, report_id, state.case_id, "new", now, data))
        state.add(*entries)
        self.tell(step, state.case_id, case.targets or [], move.status, move.notes, now)
        self.mail_move(opened, step, move, decision)
        return move

    def merge(
        self,
        state: CaseFile,
        step: Step,
        report: IncomingReport,
        *,
        report_id: str,
        match: Match,
        data: dict[str, Any],
    ) -> str:
        """合并: the report joins the open case; its sender is told now and on every change.
        Returns the notes told."""
        case = state.case
        assert case is not None
        now = step.now()
        reporter = keep_reporter(state, report, report_id, now)
        subscriber = subscriber_of(state, report)
        if subscriber is not None:  # from now on they hear of the case they joined
            case.subscribers = [*(case.subscribers or []), subscriber]
        state.reports.append(_report_row(report, report_id, case.case_id, "merged", now, data))
        # Folded detections add no target (below): a camera hears of its first detection only.
        target = [report.source, report.external_id or ""]
        case.reports += 1
        case.targets = [*(case.targets or []), target]
        state.changed = True
        event = ev.CaseMerged(
            **dims(case),
            occurred_at=now,
            actor=SYSTEM,
            report_id=report_id,
            source=report.source,
            external_id=report.external_id,
            channel=report.channel,
            reporter=reporter,
            reporter_user_id=report.reporter_user_id,
            distance_m=match.distance_m,
        )
        state.add(self.emit(step, event))
        if report.files:
            # the merged report's photos are the case's evidence too
            self.add_files(state, step, report_id, report.files, SYSTEM)
        notes = casefile.merged_notes(case.case_id, case.case_status, case.status_notes)
        self.tell(step, case.case_id, [target], CaseStatus.MERGED, notes, now)
        return notes

    def add_files(
        self,
        state: CaseFile,
        step: Step,
        report_id: str,
        files: Sequence[AttachmentRef],
        actor: Actor,
    ) -> None:
        """补充证据: photos or voice notes join the case after its report (sent without
        them while the store was down, or merged from another report)."""
        case = state.case
        assert case is not None
        known = {f.get("attachment_id") for f in case.files}
        new = [f for f in files if f.attachment_id not in known]
        if not new:
            return
        case.files = [*case.files, *(f.model_dump(mode="json", exclude_none=True) for f in new)]
        case.updated_at = step.now()
        state.changed = True
        event = ev.CaseEvidenceAdded(
            **dims(case), occurred_at=step.now(), actor=actor, report_id=report_id, files=new
        )
        state.add(self.emit(step, event))

    def fold(
        self,
        state: CaseFile,
        step: Step,
        report: IncomingReport,
        *,
        report_id: str,
        data: dict[str, Any],
    ) -> None:
        """The camera still sees the same scene: one more detection on the case, nothing sent."""
        case = state.case
        assert case is not None
        state.reports.append(
            _report_row(report, report_id, case.case_id, "folded", step.now(), data)
        )
        case.detections += 1
        state.changed = True


def pending(state: CaseFile, *, also_confirmation: bool = False) -> CaseRow:
    """The case, waiting for a decision at the desk."""
    case = state.case
    if case is None:
        raise Refused(Problem("case_id", f"no case {state.case_id!r}", "not-found", 404))
    allowed = {"pending_acceptance"} | ({"pending_confirmation"} if also_confirmation else set())
    if case.status not in allowed:
        raise Refused(
            Problem(
                "case_id",
                f"case {case.case_id} is {case.status}, not waiting for a decision",
                "not-pending",
                409,
            )
        )
    return case


def keep_reporter(
    state: CaseFile, report: IncomingReport, report_id: str, at: datetime
) -> MaskedReporter | None:
    """The identity stays in `reporters`; the case and its events get the masked form."""
    r = report.reporter
    name, phone = (r.name, r.phone) if r is not None else (None, None)
    if not (name or phone or report.reporter_email):
        return None
    ref = "rp-" + report_id
    lang = report.reporter_lang if report.reporter_email else None
    state.reporters.append(
        ReporterRow(ref, report_id, name, phone, report.reporter_email, at, lang=lang)
    )
    return privacy.masked(ref, name, phone)


def subscriber_of(state: CaseFile, report: IncomingReport) -> list[str] | None:
    """[ref, lang] of a reporter who left an e-mail (kept by `keep_reporter` just before)."""
    if not report.reporter_email or not state.reporters:
        return None
    return [state.reporters[-1].ref, report.reporter_lang]


def _report_row(
    report: IncomingReport,
    report_id: str,
    case_id: str,
    outcome: str,
    at: datetime,
    data: dict[str, Any],
) -> ReportRow:
    return ReportRow(
        report_id=report_id,
        source=report.source,
        external_id=report.external_id,
        channel=report.channel,
        case_id=case_id,
        outcome=outcome,
        reported_at=report.reported_at,
        received_at=at,
        camera_id=report.camera_id,
        confidence=report.confidence,
        data=data,
    )


def _name(category: Category | None, en: bool) -> str:
    if category is None:
        return ""
    return (category.name_en or category.name) if en else category.name


def _verb(proposal: dict[str, Any]) -> str:
    if proposal.get("action") == "accept":
        return f"立案（{proposal.get('category_code')}）"
    return f"不予立案（{proposal.get('reason_code')}）"
