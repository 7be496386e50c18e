"""What happens on each event, timer and command verify takes — the one table to read first.

Bus (CASES stream, durable `verify-cases`):
  case.handled                → 核查任务 to the cell's supervisor (the backup when the primary
                                is absent): case.verification_assigned; reminder + overdue timers.
                                The event names the department, its task and deadline (按期结案),
                                so case.dispatched is not consumed
  case.confirmation_requested → 核实任务 the same way (purpose=confirmation)
  case.accepted (v2, v1) / rejected → open 核实 tasks are settled elsewhere: cancelled
  case.extension_decided      → a granted extension moves that deadline (before a result)
  case.recalled               → open 核查 tasks cancelled
  case.closed (by others)     → every open task cancelled
  case.rated (v2, and v1)     → D 不满意 (v1: dissatisfied), where configured: case.reopened
                                + case.reworked
Timers:
  verify-reminder             → case.reminded  (stage verification|confirmation, 催办)
  verify-overdue              → case.overdue   (stage verification|confirmation, 超期)
  verify-absence              → an absence begins: the absent supervisor's tasks go to the backup
Commands (REST, `api.py`):
  verify   → passed and closing at once: case.closed v2 carrying the verdict (case.verified
             v2) in `verdict`; else case.verified (v2; falsified with evidence where the
             supervisor found it so), then (shift leader's approval) | case.reworked
             (+ case.escalated at the Nth failure)
  confirm  → case.confirmed
  approve  → case.closed | case.reworked (refused as falsified: case.verified v2 first)
  assign, add_absence, end_absence → case.verification_assigned for tasks that change hands

In the verification events `task_id`, `dept` and `deadline` are the department's task and its
deadline, copied forward (flow.md); in case.reminded / case.overdue of a verification stage
`deadline` is the verification task's own due time, the deadline in question.

How: the events, the reminder and overdue timers and the commands on one case (verify,
confirm, approve, assign) are pure rules over one case's state (domain/rules.py), applied by
the runtime a batch at a time over the store (store.py): `Rules` below is the table. What is
not about one case stays here: an absence (its timer is keyed by the absence, not a case)
finds the cases where the absent supervisor holds open tasks and applies the hand-over rule
to each, through the same store.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gridloop_contracts import cases as ev
from gridloop_contracts.problems import Refusal
from gridloop_runtime.casework import CaseCommands, Rules
from gridloop_runtime.outbox import Work
from gridloop_runtime.service import Runtime
from gridloop_runtime.step import Timer

from . import repository as repo
from .context import Verify
from .domain.rules import ABSENCE, OVERDUE, REMINDER, Caller, VerifyRules, timer_case
from .domain.state import CaseState
from .domain.tasks import check_shift_leader
from .domain.views import absence_view
from .store import VerifyStore


@dataclass
class VerifyService:
    """The per-process state of verify (`Runtime.state`): the city, the rules, the store and
    the handler table."""

    def __init__(self, verify: Verify) -> None:
        self.ctx = verify
        self.rules = VerifyRules(verify)
        self.store = VerifyStore()
        self.commands: CaseCommands[CaseState] | None = None  # once started
        r = self.rules
        self.table = Rules(
            store=self.store,
            events={
                ev.CaseHandled: r.on_handled,
                ev.CaseConfirmationRequested: r.on_confirmation_requested,
                ev.CaseAccepted: r.on_accepted,
                ev.CaseAcceptedV2: r.on_accepted,
                ev.CaseRejected: r.on_rejected,
                ev.CaseExtensionDecided: r.on_extension_decided,
                ev.CaseRecalled: r.on_recalled,
                ev.CaseClosed: r.on_closed,
                ev.CaseClosedV2: r.on_closed,
                ev.CaseRated: r.on_rated,
                ev.CaseRatedV2: r.on_rated,
            },
            timers={REMINDER: r.on_reminder_due, OVERDUE: r.on_overdue},
            timer_case=timer_case,
        )
        # Not per case: on the runtime's timer path of handlers with a connection.
        self.timers = {ABSENCE: self.on_absence_begins}

    async def started(self, rt: Runtime) -> None:
        """The store reads absences and stamps rows by the runtime's clock; the commands on
        one case run in groups on the API's units of work."""
        self.store.clock = rt.clock
        assert rt.uow is not None
        self.commands = CaseCommands(rt.uow, self.store.lean, limit=self.ctx.settings.command_group)

    # -- absences: not about one case ----------------------------------------------------
    async def on_absence_begins(self, work: Work, timer: Timer) -> None:
        await self.hand_over(work, [str(timer.payload["user_id"])])

    async def add_absence(
        self,
        work: Work,
        who: Caller,
        *,
        user_id: str,
        starts_at: datetime,
        ends_at: datetime,
        reason: str | None,
    ) -> dict[str, Any]:
        """请假: while absent, the supervisor's cells go to their backups (AB 角)."""
        check_shift_leader(who.roles, "record absences")
        if not self.ctx.is_supervisor(user_id):
            raise Refusal(
                f"{user_id!r} is not a supervisor (users.yaml)",
                field="user_id",
                code="not-a-supervisor",
                status=422,
            )
        if ends_at <= starts_at:
            raise Refusal("must be after starts_at", field="ends_at", code="invalid", status=422)
        now = work.now()
        absence = await repo.add_absence(
            work.conn,
            user_id=user_id,
            starts_at=starts_at,
            ends_at=ends_at,
            reason=reason,
            set_by=who.user_id,
            at=now,
        )
        moved: list[str] = []
        if absence.covers(now):
            moved = await self.hand_over(work, [user_id])
        elif starts_at > now:
            work.schedule(ABSENCE, f"absence:{absence.id}", starts_at, {"user_id": user_id})
        return {**absence_view(absence), "tasks_handed_over": moved}

    async def end_absence(self, work: Work, who: Caller, absence_id: int) -> dict[str, Any]:
        check_shift_leader(who.roles, "record absences")
        absence = await repo.end_absence(work.conn, absence_id, work.now())
        if absence is None:
            raise Refusal(
                f"no absence {absence_id}", field="absence_id", code="not-found", status=404
            )
        work.cancel(f"absence:{absence_id}", kinds=[ABSENCE])
        return absence_view(absence)

    async def hand_over(self, work: Work, user_ids: list[str]) -> list[str]:
        """AB 角: the open tasks of supervisors who are absent now go to the present one of
        their cell's pair (the hand-over rule on each case where they hold one); returns the
        task ids that changed hands."""
        case_ids = await repo.cases_with_open_tasks_of(work.conn, user_ids)
        if not case_ids:
            return []
        states = await self.store.load(work.conn, case_ids)
        moved = [t for cid in case_ids for t in self.rules.hand_over(states[cid], work, user_ids)]
        await self.store.save(work.conn, list(states.values()))
        return moved
