"""核查与结案: the case as verify sees it, and what a verdict, an approval or a rating does.

A case moves waiting → verifying (a result arrived) → closed, or → awaiting_approval (the
category needs the shift leader) → closed, or → reworking (failed) → verifying again when the
department reports a new result. A dissatisfied rating can take a closed case back to
reworking. Only these transitions exist; everything else is refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from gridloop_contracts.problems import Refusal

from .policy import Policy


class Stage(StrEnum):
    WAITING = "waiting"  # known, no result to verify yet (dispatched, recalled)
    VERIFYING = "verifying"  # 核查中
    AWAITING_APPROVAL = "awaiting_approval"  # 待值班长批准结案
    REWORKING = "reworking"  # 返工
    CLOSED = "closed"  # 已结案


@dataclass
class Case:
    """Verify's projection of one case, plus its own counters."""

    case_id: str
    stage: Stage = Stage.WAITING
    category_code: str | None = None
    cell_code: str | None = None
    community_code: str | None = None
    subdistrict_code: str | None = None
    urgency: str | None = None
    description: str | None = None
    address: str | None = None
    location: dict[str, float] | None = None
    dept: str | None = None
    dept_task_id: str | None = None
    deadline: datetime | None = None  # the department's deadline: decides 按期结案
    result: str | None = None
    evidence: list[dict[str, Any]] = field(default_factory=list)
    failures: int = 0  # failed verifications, ever
    reworks: int = 0  # times sent back to the department, for any reason
    reopenings: int = 0
    task_seq: int = 0
    passed_by: str | None = None  # the verifier whose pass awaits the shift leader
    closed_at: datetime | None = None
    closed_by: str | None = None
    approved_by: str | None = None
    falsifications: int = 0  # 弄虚作假 found in the department's results, ever

    # -- identity and dimensions -----------------------------------------------------
    def dims(self) -> dict[str, Any]:
        """What every event about this case carries (flow.md: dimensions travel)."""
        return {
            "case_id": self.case_id,
            "category_code": self.category_code,
            "cell_code": self.cell_code,
            "community_code": self.community_code,
            "subdistrict_code": self.subdistrict_code,
        }

    def task_dims(self) -> dict[str, Any]:
        return {
            **self.dims(),
            "dept": self.dept,
            "task_id": self.dept_task_id,
            "deadline": self.deadline,
        }

    def next_task_id(self, purpose: str) -> str:
        """Task ids are `<case>:V<n>` / `<case>:C<n>`: readable, and prefixed by the case so
        a case's timers are found by prefix."""
        self.task_seq += 1
        return f"{self.case_id}:{'V' if purpose == 'verification' else 'C'}{self.task_seq}"

    # -- transitions -----------------------------------------------------------------
    def result_reported(self) -> bool:
        """处置反馈 arrived: verify it — unless the case is already closed (a late or
        repeated result after closing changes nothing)."""
        if self.stage == Stage.CLOSED:
            return False
        self.stage = Stage.VERIFYING
        self.passed_by = None
        return True

    def verdict(
        self, *, passed: bool, supervisor_id: str, requires_approval: bool, policy: Policy
    ) -> Outcome:
        """核查结论: pass closes (or waits for the shift leader); fail sends it back."""
        if self.stage != Stage.VERIFYING:
            raise Refusal(
                f"case {self.case_id} is {self.stage}, not awaiting verification",
                field="case_id",
                code="not-verifying",
            )
        if passed:
            if requires_approval:
                self.stage = Stage.AWAITING_APPROVAL
                self.passed_by = supervisor_id
                return Outcome(await_approval=True)
            return Outcome(close=True, closed_by=supervisor_id)
        self.failures += 1
        self.reworks += 1
        self.stage = Stage.REWORKING
        return Outcome(
            rework_count=self.reworks,
            escalation_level=policy.escalation_level(self.failures),
        )

    def approval(self, *, approved: bool, approver: str) -> Outcome:
        """值班长审批结案: approve closes; refuse sends the case back for rework."""
        if self.stage != Stage.AWAITING_APPROVAL or self.passed_by is None:
            raise Refusal(
                f"case {self.case_id} is {self.stage}, not awaiting the shift leader's approval",
                field="case_id",
                code="not-awaiting-approval",
            )
        if approver == self.passed_by:
            raise Refusal(
                "the supervisor who verified a case may not also approve closing it",
                field="Authorization",
                code="separation-of-duties",
                status=403,
            )
        if approved:
            return Outcome(close=True, closed_by=self.passed_by, approved_by=approver)
        self.reworks += 1
        self.stage = Stage.REWORKING
        self.passed_by = None
        return Outcome(rework_count=self.reworks)

    def close(self, at: datetime, closed_by: str, approved_by: str | None = None) -> bool:
        """结案; returns on_time against the department's deadline."""
        self.stage = Stage.CLOSED
        self.closed_at = at
        self.closed_by = closed_by
        self.approved_by = approved_by
        self.passed_by = None
        return self.deadline is None or at <= self.deadline

    def closed_elsewhere(self, at: datetime, closed_by: str) -> None:
        if self.stage != Stage.CLOSED:
            self.close(at, closed_by)

    def recalled(self) -> None:
        """撤回: the command centre took the task back; nothing to verify until a new result."""
        if self.stage != Stage.CLOSED:
            self.stage = Stage.WAITING
            self.passed_by = None

    def rated(self, *, level: str, policy: Policy) -> int | None:
        """满意度评价: D (不满意) reopens a closed case where configured; returns the rework
        count when it does."""
        if level != "D" or self.stage != Stage.CLOSED:
            return None
        if not policy.reopens(self.category_code):
            return None
        self.reopenings += 1
        self.reworks += 1
        self.stage = Stage.REWORKING
        self.closed_at = None
        self.closed_by = None
        self.approved_by = None
        return self.reworks


@dataclass(frozen=True)
class Outcome:
    """What a verdict or an approval leads to (at most one of close / approval / rework)."""

    close: bool = False
    closed_by: str | None = None
    approved_by: str | None = None
    await_approval: bool = False
    rework_count: int | None = None
    escalation_level: int | None = None

    @property
    def kind(self) -> str:
        if self.close:
            return "closed"
        if self.await_approval:
            return "awaiting_approval"
        return "escalated" if self.escalation_level else "reworked"
