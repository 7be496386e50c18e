"""Case lifecycle events (案卷生命周期), on `case.<token>`, type `gridloop.case.<token>.v1`.

Every event carries the case id, when it happened (`occurred_at`, which decides the scoring
period), who did it, and the dimensions consumers need without calling back (category,
cell, community, sub-district, department, task, deadline) where the emitter knows them.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import AwareDatetime, Field, model_validator

from .base import Event, register
from .common import (
    Actor,
    Attachment,
    AttachmentRef,
    Level,
    Location,
    MaskedReporter,
    NonBlank,
    Rating,
    Urgency,
    Value,
)


class CaseEvent(Event):
    """Fields every case event has."""

    case_id: str = Field(min_length=1)
    occurred_at: AwareDatetime
    actor: Actor | None = None
    category_code: str | None = None
    cell_code: str | None = None
    community_code: str | None = None
    subdistrict_code: str | None = None


class _TaskEvent(CaseEvent):
    """Events about one department's task on a case."""

    dept: str | None = None
    task_id: str | None = None
    deadline: AwareDatetime | None = None


@register
class CaseReported(CaseEvent):
    """上报: a report became a case candidate (located and classified, not yet accepted)."""

    type_name: ClassVar[str] = "gridloop.case.reported.v1"
    subject_token: ClassVar[str] = "reported"
    summary: ClassVar[str] = "A report became a case candidate (上报)"

    report_id: str
    channel: Literal["hotline", "video", "patrol", "web"]
    source: str
    external_id: str | None = None
    description: str
    location: Location | None = None
    address: str | None = None
    part_code: str | None = None
    urgency: Urgency = "normal"
    reporter: MaskedReporter | None = None
    reporter_user_id: str | None = None  # a supervisor's own report (patrol)
    attachments: list[Attachment] = Field(default_factory=list)
    # evidence uploaded to gridloop's store (POST /attachments): ids, sha256, types; absent
    # when there is none
    files: list[AttachmentRef] | None = None
    reported_at: AwareDatetime
    confidence: float | None = None  # video detections


@register
class CaseMerged(CaseEvent):
    """合并: a further report of the same problem was merged into an open case."""

    type_name: ClassVar[str] = "gridloop.case.merged.v1"
    subject_token: ClassVar[str] = "merged"
    summary: ClassVar[str] = "A duplicate report was merged into an open case (合并)"

    report_id: str
    source: str
    external_id: str | None = None
    channel: Literal["hotline", "video", "patrol", "web"]
    reporter: MaskedReporter | None = None
    reporter_user_id: str | None = None
    distance_m: float | None = None


@register
class CaseConfirmationRequested(CaseEvent):
    """核实: intake asks a supervisor to confirm on site before acceptance."""

    type_name: ClassVar[str] = "gridloop.case.confirmation_requested.v1"
    subject_token: ClassVar[str] = "confirmation_requested"
    summary: ClassVar[str] = "On-site confirmation requested before acceptance (核实)"

    reason: str
    description: str | None = None
    location: Location | None = None
    address: str | None = None
    due: AwareDatetime | None = None


@register
class CaseConfirmed(CaseEvent):
    """核实结果: the supervisor's on-site confirmation (true) or refutation (false)."""

    type_name: ClassVar[str] = "gridloop.case.confirmed.v1"
    subject_token: ClassVar[str] = "confirmed"
    summary: ClassVar[str] = "Result of the on-site confirmation (核实结果)"

    confirmed: bool
    supervisor_id: str
    notes: str | None = None
    photos: list[Attachment] = Field(default_factory=list)
    # site photos uploaded to gridloop's store (POST /attachments): ids, sha256, types
    files: list[AttachmentRef] | None = None
    on_time: bool | None = None
    position: Location | None = None  # where the supervisor stood when confirming


@register
class CaseAccepted(CaseEvent):
    """立案: the report is accepted as a case under a category's standard."""

    type_name: ClassVar[str] = "gridloop.case.accepted.v1"
    subject_token: ClassVar[str] = "accepted"
    summary: ClassVar[str] = "The report was accepted as a case (立案)"

    category_code: str
    cell_code: str
    urgency: Urgency = "normal"
    description: str
    location: Location | None = None
    address: str | None = None
    part_code: str | None = None
    part_owner_dept: str | None = None
    channel: Literal["hotline", "video", "patrol", "web"] | None = None
    source: str | None = None
    reporter: MaskedReporter | None = None
    attachments: list[Attachment] = Field(default_factory=list)
    # evidence uploaded to gridloop's store (POST /attachments): ids, sha256, types; absent
    # when there is none
    files: list[AttachmentRef] | None = None
    auto: bool = False  # accepted by a rule (trusted supervisor, video) rather than an operator
    reported_at: AwareDatetime | None = None
    reporter_user_id: str | None = None
    category_name: str | None = None
    standard: str | None = None  # the category's acceptance standard (立案条件) applied
    approved_by: str | None = None  # the shift leader (值班长) who reviewed the acceptance


@register
class CaseAcceptedV2(CaseAccepted):
    """立案 (v2): as v1; a report accepted the moment it came in (a trusted supervisor's, a
    camera's detection above its threshold) carries its 上报 in `report`, and no separate
    case.reported is published for it: one event and one delivery fewer per case. Same
    subject as v1 (`case.accepted`); consumers read both side by side, and read `report` as
    the case.reported it stands for (it happened first, at the same instant)."""

    type_name: ClassVar[str] = "gridloop.case.accepted.v2"
    subject_token: ClassVar[str] = "accepted"
    summary: ClassVar[str] = "The report was accepted as a case (立案), with its 上报 when at once"

    report: CaseReported | None = None


@register
class CaseRejected(CaseEvent):
    """不予立案: the report is not accepted, with a reason code and text."""

    type_name: ClassVar[str] = "gridloop.case.rejected.v1"
    subject_token: ClassVar[str] = "rejected"
    summary: ClassVar[str] = "The report was not accepted (不予立案)"

    reason_code: str
    reason: str


@register
class CaseQueued(CaseEvent):
    """待人工派遣: the case waits in the command centre's manual dispatch queue (nothing routes
    it, a department returned it and no other unit is left, or the command centre recalled it),
    with the reason; chased until a dispatcher places it."""

    type_name: ClassVar[str] = "gridloop.case.queued.v1"
    subject_token: ClassVar[str] = "queued"
    summary: ClassVar[str] = "The case waits in the manual dispatch queue (待人工派遣)"

    reason: str
    # unroutable: routing found no unit; returned: a department returned it and no other unit
    # is left; recalled: the command centre took it back; no-task: no department holds it
    reason_code: Literal["unroutable", "returned", "recalled", "no-task"] = "unroutable"
    suggestions: list[str] = Field(default_factory=list)  # units routing would consider
    returned_by: list[str] = Field(default_factory=list)  # units that returned it already


@register
class CaseQueueChased(CaseEvent):
    """待派遣催办: a case left in the manual dispatch queue too long is chased up the queue's
    ladder (dispatcher, then shift leader; `calendar.yaml` `queue_chase`)."""

    type_name: ClassVar[str] = "gridloop.case.queue_chased.v1"
    subject_token: ClassVar[str] = "queue_chased"
    summary: ClassVar[str] = "A case waiting for manual dispatch was chased (待派遣催办)"

    level: int = Field(ge=1)
    to_role: str
    queued_at: AwareDatetime
    reason: str


@register
class CaseDispatched(_TaskEvent):
    """派遣: a task sent to a responsible unit, with co-handlers, a lead and a deadline."""

    type_name: ClassVar[str] = "gridloop.case.dispatched.v1"
    subject_token: ClassVar[str] = "dispatched"
    summary: ClassVar[str] = "A task was dispatched to a department (派遣)"

    dept: str
    task_id: str
    deadline: AwareDatetime
    co_handlers: list[str] = Field(default_factory=list)
    lead: str | None = None
    sign_in_due: AwareDatetime | None = None
    kind: Literal["initial", "redispatch", "rework", "split", "manual"] = "initial"
    urgency: Urgency = "normal"
    reason: str | None = None


@register
class CaseRecalled(_TaskEvent):
    """撤回: the command centre took a task back."""

    type_name: ClassVar[str] = "gridloop.case.recalled.v1"
    subject_token: ClassVar[str] = "recalled"
    summary: ClassVar[str] = "A task was recalled by the command centre (撤回)"

    reason: str


@register
class CaseUnqueued(_TaskEvent):
    """The case left the manual dispatch queue without a new dispatch: the department's result
    (case.handled, reported before the recall reached handling) crossed the command centre's
    recall, so the recall is overtaken: the task counts as handled and verification's turn
    comes, as it would have without the recall."""

    type_name: ClassVar[str] = "gridloop.case.unqueued.v1"
    subject_token: ClassVar[str] = "unqueued"
    summary: ClassVar[str] = "The case left the manual dispatch queue: the recall was overtaken"

    reason: str
    # recall-overtaken: the department's result crossed the recall
    reason_code: Literal["recall-overtaken"] = "recall-overtaken"
    recalled_at: AwareDatetime  # when the overtaken recall was made


@register
class CaseSupervised(CaseEvent):
    """挂牌督办: the case is put under listed supervision."""

    type_name: ClassVar[str] = "gridloop.case.supervised.v1"
    subject_token: ClassVar[str] = "supervised"
    summary: ClassVar[str] = "The case was put under listed supervision (挂牌督办)"

    reason: str
    dept: str | None = None


@register
class CaseSigned(_TaskEvent):
    """签收: the department signed for its task."""

    type_name: ClassVar[str] = "gridloop.case.signed.v1"
    subject_token: ClassVar[str] = "signed"
    summary: ClassVar[str] = "The department signed for the task (签收)"

    sign_in_due: AwareDatetime | None = None
    on_time: bool | None = None


@register
class CaseReturned(_TaskEvent):
    """退回: the department returned the task as not theirs."""

    type_name: ClassVar[str] = "gridloop.case.returned.v1"
    subject_token: ClassVar[str] = "returned"
    summary: ClassVar[str] = "The department returned the task as not theirs (退回)"

    reason: str


@register
class CaseExtensionRequested(_TaskEvent):
    """延期申请: the department asks for more time."""

    type_name: ClassVar[str] = "gridloop.case.extension_requested.v1"
    subject_token: ClassVar[str] = "extension_requested"
    summary: ClassVar[str] = "The department asked for an extension (延期申请)"

    reason: str
    proposed_deadline: AwareDatetime
    request_id: str | None = None


@register
class CaseExtensionDecided(_TaskEvent):
    """延期审批: the dispatcher granted or refused the extension."""

    type_name: ClassVar[str] = "gridloop.case.extension_decided.v1"
    subject_token: ClassVar[str] = "extension_decided"
    summary: ClassVar[str] = "The dispatcher granted or refused an extension (延期审批)"

    granted: bool
    new_deadline: AwareDatetime | None = None
    reason: str | None = None
    request_id: str | None = None


@register
class CaseProgress(_TaskEvent):
    """处置进展: a progress note, or a co-handler's contribution."""

    type_name: ClassVar[str] = "gridloop.case.progress.v1"
    subject_token: ClassVar[str] = "progress"
    summary: ClassVar[str] = "A progress note or co-handler contribution (处置进展)"

    note: str
    contribution: bool = False
    evidence: list[Attachment] = Field(default_factory=list)


class Contribution(Value):
    """A co-handling unit's part in the result."""

    dept: str
    note: str
    evidence: list[Attachment] = Field(default_factory=list)


@register
class CaseHandled(_TaskEvent):
    """处置反馈: the department reports the result with evidence."""

    type_name: ClassVar[str] = "gridloop.case.handled.v1"
    subject_token: ClassVar[str] = "handled"
    summary: ClassVar[str] = "The department reported the result (处置反馈)"

    result: str
    evidence: list[Attachment] = Field(default_factory=list)
    # evidence uploaded to gridloop's store (POST /attachments): ids, sha256, types; absent
    # when there is none
    files: list[AttachmentRef] | None = None
    completed_at: AwareDatetime
    on_time: bool | None = None
    contributions: list[Contribution] = Field(default_factory=list)


@register
class CaseReminded(_TaskEvent):
    """催办: a reminder before a deadline (handling, sign-in or verification)."""

    type_name: ClassVar[str] = "gridloop.case.reminded.v1"
    subject_token: ClassVar[str] = "reminded"
    summary: ClassVar[str] = "A reminder before the deadline (催办)"

    stage: Literal["sign_in", "handling", "verification", "confirmation"] = "handling"
    level: int = 1
    supervisor_id: str | None = None
    # 人工催办: a dispatcher or shift leader chased the department by hand (the actor says
    # who); automatic reminders leave it false
    manual: bool = False
    note: str | None = None


@register
class CaseOverdue(_TaskEvent):
    """超期: a deadline passed (handling, sign-in or verification)."""

    type_name: ClassVar[str] = "gridloop.case.overdue.v1"
    subject_token: ClassVar[str] = "overdue"
    summary: ClassVar[str] = "A deadline passed (超期)"

    stage: Literal["sign_in", "handling", "verification", "confirmation"] = "handling"
    supervisor_id: str | None = None


@register
class CaseEscalated(_TaskEvent):
    """督办: escalated up the ladder (dispatcher → sub-district leader → efficiency office)."""

    type_name: ClassVar[str] = "gridloop.case.escalated.v1"
    subject_token: ClassVar[str] = "escalated"
    summary: ClassVar[str] = "Escalated up the supervision ladder (督办)"

    level: int = Field(ge=1)
    to_role: str
    reason: str
    # the people the rung names, where the city's data names them (the grid heads of the
    # case's cell for a `grid-head` rung); empty for a rung addressed to a role
    to_user_ids: list[str] = Field(default_factory=list)


@register
class CaseOverdueWithdrawn(_TaskEvent):
    """超期撤回: a 签收超时 or 超期 judged while the department's on-time signature or result was
    still on its way (in handling's outbox, on the bus) is withdrawn, with the 督办 levels the
    ladder reached after it. `deadline` is the deadline judged; `answered_at` when handling took
    the signature or the result (by which it is on time)."""

    type_name: ClassVar[str] = "gridloop.case.overdue_withdrawn.v1"
    subject_token: ClassVar[str] = "overdue_withdrawn"
    summary: ClassVar[str] = "A passed deadline withdrawn: the department was on time (超期撤回)"

    stage: Literal["sign_in", "handling"]
    overdue_at: AwareDatetime
    answered_at: AwareDatetime
    escalation_levels: list[int] = Field(default_factory=list)


@register
class CaseVerificationAssigned(_TaskEvent):
    """核查派发: a verification task went to the supervisor of the cell."""

    type_name: ClassVar[str] = "gridloop.case.verification_assigned.v1"
    subject_token: ClassVar[str] = "verification_assigned"
    summary: ClassVar[str] = "A verification task went to the cell's supervisor (核查派发)"

    supervisor_id: str
    backup_used: bool = False
    due: AwareDatetime
    purpose: Literal["verification", "confirmation"] = "verification"
    # the supervisor's task itself (verify's `/tasks/{id}`), so the handheld that hears of it
    # can answer it without listing its tasks first; absent in events from before it was added
    verification_task_id: str | None = None


@register
class CaseVerified(_TaskEvent):
    """核查: the supervisor's on-site verdict on the department's result."""

    type_name: ClassVar[str] = "gridloop.case.verified.v1"
    subject_token: ClassVar[str] = "verified"
    summary: ClassVar[str] = "The supervisor's verdict on the result (核查)"

    passed: bool
    supervisor_id: str
    notes: str | None = None
    photos: list[Attachment] = Field(default_factory=list)
    # evidence uploaded to gridloop's store (POST /attachments): ids, sha256, types; absent
    # when there is none
    files: list[AttachmentRef] | None = None
    position: Location | None = None
    on_time: bool | None = None
    failures: int = 0
    # 弄虚作假: the supervisor found the reported result falsified (nothing done, staged
    # photos); scoring deducts it (Jinhua rules).
    falsified: bool | None = None


class Falsification(Value):
    """弄虚作假: what shows that the department's reported result is false (work not done, a
    photo of another place), and who found it — a supervisor on site or the shift leader
    reviewing the evidence before closing."""

    notes: NonBlank = Field(max_length=2000)
    evidence: list[Attachment] = Field(min_length=1, max_length=20)
    marked_by: str = Field(min_length=1)
    role: Literal["supervisor", "shift-leader"]


@register
class CaseVerifiedV2(CaseVerified):
    """核查 (v2): the verdict on the department's result, and whether the result was falsified
    (弄虚作假) with the evidence for it. Same subject as v1 (`case.verified`); consumers read
    both side by side. A verdict whose actor is the shift leader (审批结案 refused as
    falsified) is a review of the supervisor's: it counts against the department and the
    area, and is no verification of the supervisor's own."""

    type_name: ClassVar[str] = "gridloop.case.verified.v2"
    subject_token: ClassVar[str] = "verified"
    summary: ClassVar[str] = "The verdict on the result, falsification included (核查)"

    falsified: bool = False
    falsification: Falsification | None = None

    @model_validator(mode="after")
    def _falsified_with_evidence(self) -> CaseVerifiedV2:
        if self.falsified and self.falsification is None:
            raise ValueError("falsification: a falsified result needs its evidence")
        if self.falsified and self.passed:
            raise ValueError("passed: a falsified result cannot pass verification")
        return self


@register
class CaseReworked(_TaskEvent):
    """返工: the result failed verification (or the reporter was dissatisfied); back to the
    same department."""

    type_name: ClassVar[str] = "gridloop.case.reworked.v1"
    subject_token: ClassVar[str] = "reworked"
    summary: ClassVar[str] = "Back to the department for rework (返工)"

    count: int = Field(ge=1)
    reason: str
    new_deadline: AwareDatetime | None = None


@register
class CaseClosed(_TaskEvent):
    """结案: verified and closed; only the supervision side closes."""

    type_name: ClassVar[str] = "gridloop.case.closed.v1"
    subject_token: ClassVar[str] = "closed"
    summary: ClassVar[str] = "The case was closed (结案)"

    closed_by: str
    on_time: bool
    approved_by: str | None = None
    reworks: int = 0


@register
class CaseClosedV2(CaseClosed):
    """结案 (v2): as v1; a case the supervisor's passing verdict closes at once (no shift
    leader's approval) carries that verdict in `verdict`, and no separate case.verified is
    published for it: one event and two deliveries fewer per case. Same subject as v1
    (`case.closed`); consumers read both side by side, and read `verdict` as the
    case.verified (v2) it stands for (it happened first, at the same instant)."""

    type_name: ClassVar[str] = "gridloop.case.closed.v2"
    subject_token: ClassVar[str] = "closed"
    summary: ClassVar[str] = "The case was closed (结案), with the verdict that closed it"

    verdict: CaseVerifiedV2 | None = None


@register
class CaseRated(CaseEvent):
    """满意度评价: the reporter's rating of the result."""

    type_name: ClassVar[str] = "gridloop.case.rated.v1"
    subject_token: ClassVar[str] = "rated"
    summary: ClassVar[str] = "The reporter rated the result (满意度评价)"

    rating: Rating
    comment: str | None = None
    source: str | None = None
    dept: str | None = None


@register
class CaseEvidenceAdded(CaseEvent):
    """补充证据: photos or voice notes added to a report after it was sent (the store was
    down when the reporter sent it, or the photo was taken later)."""

    type_name: ClassVar[str] = "gridloop.case.evidence_added.v1"
    subject_token: ClassVar[str] = "evidence_added"
    summary: ClassVar[str] = "Evidence added to a report after it was sent (补充证据)"

    report_id: str
    files: list[AttachmentRef] = Field(min_length=1)


@register
class CaseRatedV2(CaseEvent):
    """满意度评价 on seed 002's four levels (A 非常满意 … D 不满意) with a free comment; read
    side by side with v1, whose three ratings map to B, C, D (`common.LEVEL_OF_RATING`)."""

    type_name: ClassVar[str] = "gridloop.case.rated.v2"
    subject_token: ClassVar[str] = "rated"
    summary: ClassVar[str] = "The reporter rated the result (满意度评价, A–D)"

    level: Level
    comment: str | None = None
    source: str | None = None
    dept: str | None = None
    # how the rating came: the reporter (mail link, Open311, an integrator) or the call-back
    via: str | None = None


@register
class CaseCalledBack(CaseEvent):
    """回访: the operators' call-back of a closed case's reporter, concluded — reached (a
    rating, when given, comes as case.rated) or not reached after the allowed tries."""

    type_name: ClassVar[str] = "gridloop.case.called_back.v1"
    subject_token: ClassVar[str] = "called_back"
    summary: ClassVar[str] = "The reporter was called back (回访)"

    reached: bool
    tries: int = Field(ge=1)
    closed_at: AwareDatetime  # the closing called back about
    dept: str | None = None
    note: str | None = None


@register
class CaseReopened(_TaskEvent):
    """重新打开: a closed case is reopened (dissatisfied rating where configured)."""

    type_name: ClassVar[str] = "gridloop.case.reopened.v1"
    subject_token: ClassVar[str] = "reopened"
    summary: ClassVar[str] = "A closed case was reopened (重新打开)"

    reason: str


CASE_EVENTS: tuple[type[CaseEvent], ...] = (
    CaseReported,
    CaseMerged,
    CaseConfirmationRequested,
    CaseConfirmed,
    CaseAccepted,
    CaseRejected,
    CaseQueued,
    CaseQueueChased,
    CaseDispatched,
    CaseRecalled,
    CaseUnqueued,
    CaseSupervised,
    CaseSigned,
    CaseReturned,
    CaseExtensionRequested,
    CaseExtensionDecided,
    CaseProgress,
    CaseHandled,
    CaseReminded,
    CaseOverdue,
    CaseEscalated,
    CaseVerificationAssigned,
    CaseVerified,
    CaseReworked,
    CaseClosed,
    CaseRated,
    CaseRatedV2,
    CaseCalledBack,
    CaseReopened,
    CaseOverdueWithdrawn,
)
"""The lifecycle: every service that folds the whole life of a case (scoring) reads these.
`CaseEvidenceAdded` is not one: it moves nothing, the case file records it."""

# Newer versions of types above, on the same subject: consumers take them side by side with
# the older version (a case event's lifecycle place is its subject's, `CASE_EVENTS`).
CASE_EVENT_VERSIONS: tuple[type[CaseEvent], ...] = (CaseVerifiedV2, CaseAcceptedV2, CaseClosedV2)

# Events that carry another published at the same instant instead of it: the field that holds
# it and its type. Consumers read the carried event as if it had come first, on its own.
CARRIED: dict[type[CaseEvent], tuple[str, type[CaseEvent]]] = {
    CaseAcceptedV2: ("report", CaseReported),
    CaseClosedV2: ("verdict", CaseVerifiedV2),
}


def carried(event: CaseEvent) -> CaseEvent | None:
    """The event `event` carries (case.accepted v2 its case.reported, case.closed v2 its
    verdict), or None."""
    found = CARRIED.get(type(event))
    inner = getattr(event, found[0]) if found else None
    return inner if isinstance(inner, CaseEvent) else None
