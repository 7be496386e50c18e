"""What happens on each event, command and timer handling takes — the one table to read first.

Bus (CASES stream, durable `handling-cases`):
  case.accepted          → the case summary a department sees (what, where, the report's evidence)
  case.dispatched        → a task per unit: the responsible unit, each co-handler (协办), the
                           lead (牵头); the same task id again renews its terms (rework,
                           re-dispatch); another open task of that unit on the case is
                           superseded; commands parked for it run now
  case.recalled          → the addressed tasks end as recalled (撤回)
  case.extension_decided → the pending 延期申请 is settled; a grant moves the deadline
  case.reworked          → the handled (or closed) tasks go back to sign-in (返工)
  case.escalated         → the 督办 level shows on the open tasks
  case.supervised        → 挂牌督办 shows on the open tasks
  case.closed            → every task of the case ends as closed (结案)
Bus (HANDLING stream, durable `handling-commands`):
  handling.<dept>.<action> → `execute` (below), answered with gridloop.dispatch.answer.v1 on
                           dispatch.<dept>.answer (outbox) and, when the command names a
                           `replyto` subject (CloudEvents extension), there after commit
REST (`api.py`): the same `execute`; the answer is the HTTP response.
Timers:
  handling-parked        → a parked command's wait is over: answered (refused as unknown)
Commands → events:
  signed → case.signed · returned → case.returned · extension_requested →
  case.extension_requested · progress → case.progress (a co-handler's is a contribution) ·
  handled → case.handled (with the co-handlers' contributions)
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

import structlog
from gridloop_contracts import Actor, Envelope, EnvelopeError, subjects, to_binary
from gridloop_contracts import cases as ev
from gridloop_contracts.department import (
    COMMANDS,
    CommandAnswerV1,
    DepartmentCommand,
    ExtensionCommand,
    HandledCommand,
    ProgressCommand,
    ReturnCommand,
    SignCommand,
)
from gridloop_contracts.envelope import validation_errors
from gridloop_runtime import audit, timers
from gridloop_runtime.commands import Refusal, record_command, seen_command
from gridloop_runtime.consumer import Permanent
from gridloop_runtime.outbox import Work
from gridloop_runtime.timers import Timer
from nats.aio.msg import Msg
from pydantic import ValidationError

from . import repository as repo
from .context import Handling
from .domain import commands as cmds
from .domain.tasks import Task, addressed, task_for, team, units_of
from .views import task_view

log = structlog.get_logger(__name__)

E = TypeVar("E", bound=ev.CaseEvent)
CaseHandler = Callable[[Work, Envelope], Awaitable[None]]

PARKED = "handling-parked"
# A subject a department may ask to be answered on: plain tokens, no wildcards.
_REPLY_SUBJECT = re.compile(r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$")


def parse(env: Envelope, model: type[E]) -> E:
    """The event's data as its contract model; invalid data can never succeed: DLQ at once."""
    try:
        return model.model_validate(env.data)
    except ValidationError as exc:
        raise Permanent(f"{env.type} {env.id}: {exc}") from exc


@dataclass(frozen=True)
class Executed:
    """A command's outcome: its answer, the task as it stands after it, and whether this was a
    resend of a command already executed (same answer, nothing changed)."""

    answer: CommandAnswerV1
    task: dict[str, Any]
    replay: bool = False


class Handlers:
    def __init__(self, ctx: Handling) -> None:
        self.ctx = ctx
        self.city = ctx.city
        self.calendar = ctx.calendar
        self.settings = ctx.settings
        consumed: list[tuple[type[ev.CaseEvent], CaseHandler]] = [
            (ev.CaseAccepted, self.on_accepted),
            (ev.CaseDispatched, self.on_dispatched),
            (ev.CaseRecalled, self.on_recalled),
            (ev.CaseExtensionDecided, self.on_extension_decided),
            (ev.CaseReworked, self.on_reworked),
            (ev.CaseEscalated, self.on_escalated),
            (ev.CaseSupervised, self.on_supervised),
            (ev.CaseClosed, self.on_closed),
        ]
        self.events: dict[str, CaseHandler] = {m.type_name: h for m, h in consumed}
        # The consumer's filter: only these subjects reach handling.
        self.subjects = sorted(f"case.{m.subject_token}" for m, _ in consumed)
        self.command_subjects = ["handling.>"]
        self.timers: dict[str, Callable[[Work, Timer], Awaitable[None]]] = {
            PARKED: self.on_parked_expired,
        }

    async def on_case_event(self, work: Work, env: Envelope) -> None:
        handler = self.events.get(env.type)
        if handler is not None:
            await handler(work, env)

    # -- events ----------------------------------------------------------------------
    async def on_accepted(self, work: Work, env: Envelope) -> None:
        """立案: what the department will need to see — description, place, the report's
        photos, the masked reporter."""
        e = parse(env, ev.CaseAccepted)
        await repo.save_case(
            work.conn,
            work.now(),
            **_dims(e),
            urgency=e.urgency,
            description=e.description,
            address=e.address,
            location=e.location.model_dump() if e.location else None,
            part_code=e.part_code,
            attachments=[a.model_dump(mode="json") for a in e.attachments],
            reporter=e.reporter.model_dump(exclude_none=True) if e.reporter else None,
            reported_at=e.reported_at,
            accepted_at=e.occurred_at,
        )

    async def on_dispatched(self, work: Work, env: Envelope) -> None:
        """派遣: the department's inbox gets the task (and each co-handler theirs)."""
        e = parse(env, ev.CaseDispatched)
        now = work.now()
        await repo.lock_case(work.conn, e.case_id)
        await repo.save_case(work.conn, now, **_dims(e), urgency=e.urgency)
        tasks = await repo.tasks_of_case(work.conn, e.case_id, for_update=True)
        by_id = {t.task_id: t for t in tasks}
        lead = e.lead or e.dept
        changed: list[Task] = []
        entries: list[repo.LogEntry] = []
        actor = e.actor.id if e.actor else None
        for unit in units_of(e.task_id, e.dept, e.co_handlers, e.lead):
            terms: dict[str, Any] = {
                "role": unit.role,
                "group_id": e.task_id,
                "lead": lead,
                "co_handlers": tuple(e.co_handlers),
                "kind": e.kind,
                "deadline": e.deadline,
                "sign_in_due": e.sign_in_due,
                "urgency": e.urgency,
            }
            task = by_id.get(unit.task_id)
            if task is not None:
                task.redispatch(now=e.occurred_at, **terms)
            else:
                for old in tasks:
                    if old.dept == unit.dept and old.supersede(
                        e.occurred_at, f"superseded by task {unit.task_id}"
                    ):
                        changed.append(old)
                        entries.append(repo.LogEntry(old, now, "superseded", actor))
                task = Task(
                    task_id=unit.task_id,
                    case_id=e.case_id,
                    dept=unit.dept,
                    dispatched_at=e.occurred_at,
                    **terms,
                )
                tasks.append(task)
            changed.append(task)
            entries.append(
                repo.LogEntry(
                    task,
                    now,
                    "dispatched",
                    actor,
                    e.reason,
                    data={"kind": e.kind, "deadline": e.deadline.isoformat(), "role": unit.role},
                )
            )
        await repo.save_tasks(work.conn, changed, now)
        await repo.log(work.conn, entries)
        await self._run_parked(work, e.case_id, sorted({t.dept for t in changed if t.is_open}))

    async def on_recalled(self, work: Work, env: Envelope) -> None:
        e = parse(env, ev.CaseRecalled)
        await self._apply_to(
            work,
            e,
            lambda t: t.recall(e.occurred_at, e.reason),
            "recalled",
            note=e.reason,
        )

    async def on_extension_decided(self, work: Work, env: Envelope) -> None:
        e = parse(env, ev.CaseExtensionDecided)
        data: dict[str, Any] = {"granted": e.granted, "request_id": e.request_id}
        if e.new_deadline is not None:
            data["new_deadline"] = e.new_deadline.isoformat()
        await self._apply_to(
            work,
            e,
            lambda t: t.extension_decided(e.request_id, e.granted, e.new_deadline),
            "extension_decided",
            note=e.reason,
            data=data,
        )

    async def on_reworked(self, work: Work, env: Envelope) -> None:
        e = parse(env, ev.CaseReworked)
        await self._apply_to(
            work,
            e,
            lambda t: t.rework(e.occurred_at, e.count, e.new_deadline),
            "reworked",
            note=e.reason,
            data={"count": e.count},
        )

    async def on_escalated(self, work: Work, env: Envelope) -> None:
        e = parse(env, ev.CaseEscalated)

        def raise_level(t: Task) -> bool:
            if not t.is_open or t.escalation_level >= e.level:
                return False
            t.escalation_level = e.level
            return True

        await self._apply_to(
            work,
            e,
            raise_level,
            "escalated",
            note=e.reason,
            data={"level": e.level, "to": e.to_role},
        )

    async def on_supervised(self, work: Work, env: Envelope) -> None:
        e = parse(env, ev.CaseSupervised)

        def supervise(t: Task) -> bool:
            if not t.is_open or t.supervised:
                return False
            t.supervised = True
            return True

        tasks = await repo.tasks_of_case(work.conn, e.case_id, for_update=True)
        await self._change(
            work, addressed(tasks, None, e.dept), supervise, "supervised", e, e.reason
        )

    async def on_closed(self, work: Work, env: Envelope) -> None:
        e = parse(env, ev.CaseClosed)
        await repo.save_case(work.conn, work.now(), **_dims(e), closed_at=e.occurred_at)
        tasks = await repo.tasks_of_case(work.conn, e.case_id, for_update=True)
        await self._change(work, tasks, lambda t: t.close(e.occurred_at), "closed", e, None)

    async def _apply_to(
        self,
        work: Work,
        e: ev.CaseEvent,
        change: Callable[[Task], bool],
        action: str,
        *,
        note: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        """Apply `change` to the tasks a task event addresses (its task and team, or its
        department's, or the whole case's)."""
        tasks = await repo.tasks_of_case(work.conn, e.case_id, for_update=True)
        chosen = addressed(tasks, getattr(e, "task_id", None), getattr(e, "dept", None))
        await self._change(work, chosen, change, action, e, note, data)

    async def _change(
        self,
        work: Work,
        tasks: list[Task],
        change: Callable[[Task], bool],
        action: str,
        e: ev.CaseEvent,
        note: str | None,
        data: dict[str, Any] | None = None,
    ) -> None:
        now = work.now()
        changed = [t for t in tasks if change(t)]
        by = e.actor.id if e.actor else None
        await repo.save_tasks(work.conn, changed, now)
        await repo.log(
            work.conn, [repo.LogEntry(t, now, action, by, note, data=data) for t in changed]
        )

    # -- commands over NATS -----------------------------------------------------------
    async def on_bus_command(self, work: Work, env: Envelope) -> None:
        """handling.<dept>.<action>: validate as the REST API does, execute, always answer."""
        dept, action = self._subject(work)
        reply_to = _reply_subject(env.extensions.get("replyto"))
        data = env.data if isinstance(env.data, dict) else {}
        command_id = data.get("command_id")
        if not isinstance(command_id, str) or not command_id:
            command_id = env.id
        case_id = data.get("case_id") if isinstance(data.get("case_id"), str) else None

        async def refuse(field: str, reason: str, code: str) -> None:
            answer = cmds.refused(
                command_id=command_id,
                dept=dept,
                case_id=case_id,
                action=action,
                errors=[{"field": field, "reason": reason, "code": code}],
            )
            await self._answer(work, answer, reply_to)

        model = COMMANDS.get(action)
        if model is None:
            await refuse(
                "subject",
                f"unknown action {action!r}; one of {sorted(COMMANDS)} (handling.<dept>.<action>)",
                "unknown-action",
            )
            return
        if env.type != model.type_name:
            await refuse(
                "type",
                f"a command on handling.{dept}.{action} has type {model.type_name}",
                "invalid",
            )
            return
        try:
            cmd = model.model_validate(env.data)
        except ValidationError as exc:
            errors = [{**err, "code": "invalid"} for err in validation_errors(exc)]
            answer = cmds.refused(
                command_id=command_id, dept=dept, case_id=case_id, action=action, errors=errors
            )
            await self._answer(work, answer, reply_to)
            return
        if cmd.dept != dept:
            await refuse(
                "data.dept",
                f"says {cmd.dept!r} but the command came on handling.{dept}.{action}: a "
                "department acts only for itself",
                "wrong-department",
            )
            return
        await self.run_bus_command(work, cmd, reply_to, park=True)

    async def on_invalid_command(self, work: Work, msg: Msg, err: EnvelopeError) -> None:
        """Not a CloudEvent: still answered, naming what is wrong."""
        dept, action = self._subject(work)
        headers = msg.headers or {}
        command_id = headers.get("Nats-Msg-Id") or f"HANDLING:{msg.metadata.sequence.stream}"
        answer = cmds.refused(
            command_id=command_id,
            dept=dept,
            action=action,
            errors=[{"field": err.field, "reason": err.reason, "code": "invalid-envelope"}],
        )
        await self._answer(work, answer, None)

    async def run_bus_command(
        self, work: Work, cmd: DepartmentCommand, reply_to: str | None, *, park: bool
    ) -> None:
        """Execute in a savepoint: a refusal undoes the command's writes, not the batch's."""
        mark = work.mark()
        try:
            async with work.conn.transaction():
                done = await self.execute(work, cmd, park=park, reply_to=reply_to)
        except Refusal as r:
            work.rollback_to(mark)
            answer = cmds.refused(
                command_id=cmd.command_id,
                dept=cmd.dept,
                case_id=cmd.case_id,
                action=cmd.subject_token,
                errors=cmds.refusal_errors(r, "data."),
                status=r.extra.get("status"),
            )
            await self._answer(work, answer, reply_to)
            return
        if done is not None:
            await self._answer(work, done.answer, reply_to)

    def _subject(self, work: Work) -> tuple[str, str]:
        """(dept, action) of handling.<dept>.<action>; a malformed action is answered as
        unknown, only a subject without a usable department code has nobody to answer."""
        parts = (work.subject or "").split(".")
        try:
            if len(parts) < 2 or parts[0] != "handling":
                raise ValueError(f"not a handling subject: {work.subject!r}")
            subjects.check_code(parts[1], "dept")
        except ValueError as exc:
            # Nowhere to answer: the operators see it in the DLQ.
            raise Permanent(str(exc)) from exc
        return parts[1], ".".join(parts[2:])

    async def _answer(self, work: Work, answer: CommandAnswerV1, reply_to: str | None) -> None:
        """回执: on dispatch.<dept>.answer through the outbox, and to the reply subject after
        commit."""
        assert answer.dept is not None
        if not answer.accepted:
            # 审计: a refused bus command, in the batch's transaction (the refused command's
            # own writes were rolled back to its savepoint).
            data = work.trigger.data if work.trigger is not None else None
            by = data.get("by") if isinstance(data, dict) else None
            first = answer.errors[0] if answer.errors else None
            await audit.record_work(
                work,
                answer.action or "unknown",
                "refused",
                command_id=answer.command_id,
                case_id=answer.case_id,
                user_id=by if isinstance(by, str) else None,
                roles=("department",),
                dept=answer.dept,
                code=first.code if first else None,
                field=first.field if first else None,
                reason=first.reason if first else None,
            )
        env = work.emit(
            answer, subject=subjects.dispatch(answer.dept, "answer"), case_id=answer.case_id
        )
        if reply_to:
            headers, body = to_binary(env)
            await repo.add_reply(work.conn, reply_to, headers, body)

    # -- parking: a command that overtook its dispatch ---------------------------------
    async def _park(self, work: Work, cmd: DepartmentCommand, reply_to: str | None) -> None:
        now = work.now()
        parked_id = await repo.park(
            work.conn,
            case_id=cmd.case_id,
            dept=cmd.dept,
            action=cmd.subject_token,
            command=cmd.model_dump(mode="json"),
            reply_to=reply_to,
            at=now,
        )
        due = now + timedelta(seconds=self.settings.park_s)
        await timers.schedule(work.conn, PARKED, _parked_key(parked_id), due, {"id": parked_id})
        log.info("command parked until its dispatch arrives", case_id=cmd.case_id, dept=cmd.dept)

    async def _run_parked(self, work: Work, case_id: str, depts: list[str]) -> None:
        for p in await repo.unpark(work.conn, case_id=case_id, depts=depts):
            await timers.cancel(work.conn, _parked_key(p.id))
            await self.run_bus_command(work, _command(p), p.reply_to, park=False)

    async def on_parked_expired(self, work: Work, timer: Timer) -> None:
        for p in await repo.unpark(work.conn, parked_id=int(timer.payload["id"])):
            await self.run_bus_command(work, _command(p), p.reply_to, park=False)

    # -- the one command path (REST and NATS) -------------------------------------------
    async def execute(
        self,
        work: Work,
        cmd: DepartmentCommand,
        *,
        by_name: str | None = None,
        park: bool = False,
        reply_to: str | None = None,
    ) -> Executed | None:
        """Validate and execute a department command in the caller's transaction; raise a
        Refusal naming the field; None when it was parked to wait for its dispatch."""
        if not self.ctx.is_department(cmd.dept):
            raise Refusal(
                f"unknown department {cmd.dept!r} (departments.yaml)",
                field="dept",
                code="unknown-department",
                status=404,
            )
        # Lock the case first: a concurrent resend of the same command waits here and then
        # finds the first one's answer, and a dispatch arriving meanwhile sees what we park.
        await repo.lock_case(work.conn, cmd.case_id)
        tasks = await repo.tasks_of_case(work.conn, cmd.case_id, for_update=True)
        key = cmds.command_key(cmd.dept, cmd.command_id)
        digest = cmds.fingerprint(cmd)
        seen = await seen_command(work.conn, key)
        who = {"user_id": cmd.by, "roles": ("department",), "dept": cmd.dept}
        if seen is not None:
            if seen.get("fingerprint") != digest:
                raise cmds.duplicate(cmd)
            await audit.record_work(
                work, cmd.subject_token, "replayed", command_id=key, case_id=cmd.case_id, **who
            )
            return Executed(CommandAnswerV1.model_validate(seen["answer"]), seen["task"], True)
        task = task_for(tasks, cmd.dept, cmd.task_id)
        if task is None:
            if park and not any(t.dept == cmd.dept for t in tasks):
                await self._park(work, cmd, reply_to)
                return None
            if tasks:
                raise Refusal(
                    f"case {cmd.case_id} is not a task of department {cmd.dept!r}",
                    field="case_id",
                    code="wrong-department",
                    status=403,
                )
            raise Refusal(
                f"no case {cmd.case_id!r} has been dispatched to {cmd.dept!r}",
                field="case_id",
                code="not-found",
                status=404,
            )
        now = work.now()
        case = await repo.get_case(work.conn, cmd.case_id)
        try:
            if cmd.task_id and cmd.task_id not in (task.task_id, task.group_id):
                raise Refusal(
                    f"is not the department's current task on this case ({task.task_id})",
                    field="task_id",
                    code="task-mismatch",
                )
            actor = Actor(id=cmd.by, role="department", dept=cmd.dept, name=by_name)
            await self._apply(work, cmd, task, tasks, case, actor, now)
        except Refusal as r:
            r.extra.setdefault("status", str(cmds.status_of(task)))
            raise
        answer = cmds.accepted(cmd, task)
        view = task_view(task, case, now=now, calendar=self.calendar, city=self.city)
        stored = {"answer": answer.to_json_dict(), "task": view, "fingerprint": digest}
        if not await record_command(work.conn, key, cmd.subject_token, stored):
            # The same id, stored for another case in a concurrent transaction.
            raise cmds.duplicate(cmd)
        await audit.record_work(
            work,
            cmd.subject_token,
            "accepted",
            command_id=key,
            case_id=cmd.case_id,
            task_id=task.task_id,
            **who,
        )
        return Executed(answer, view)

    async def _apply(
        self,
        work: Work,
        cmd: DepartmentCommand,
        task: Task,
        tasks: list[Task],
        case: dict[str, Any] | None,
        actor: Actor,
        now: datetime,
    ) -> None:
        dims = _task_dims(cmd.case_id, case, task)
        changed = [task]
        entries: list[repo.LogEntry] = []
        if isinstance(cmd, SignCommand):
            task.sign(now, cmd.by)
            work.emit(
                ev.CaseSigned(
                    **dims,
                    occurred_at=now,
                    actor=actor,
                    sign_in_due=task.sign_in_due,
                    on_time=task.sign_on_time,
                )
            )
            entries.append(repo.LogEntry(task, now, "signed", cmd.by))
        elif isinstance(cmd, ReturnCommand):
            task.return_(now, cmd.by, cmd.reason)
            work.emit(ev.CaseReturned(**dims, occurred_at=now, actor=actor, reason=cmd.reason))
            entries.append(repo.LogEntry(task, now, "returned", cmd.by, cmd.reason))
            reason = f"the lead unit {task.dept} returned the case (退回)"
            for mate in team(tasks, task):
                if mate.supersede(now, reason):
                    changed.append(mate)
                    entries.append(repo.LogEntry(mate, now, "superseded", cmd.by, reason))
        elif isinstance(cmd, ExtensionCommand):
            # Command ids are the department's own: scoped, they are unique for the dispatcher.
            request_id = cmds.command_key(cmd.dept, cmd.command_id)
            ext = task.request_extension(
                now, cmd.by, cmd.reason, cmd.proposed_deadline, request_id=request_id
            )
            work.emit(
                ev.CaseExtensionRequested(
                    **dims,
                    occurred_at=now,
                    actor=actor,
                    reason=cmd.reason,
                    proposed_deadline=cmd.proposed_deadline,
                    request_id=ext.request_id,
                )
            )
            entries.append(
                repo.LogEntry(
                    task, now, "extension_requested", cmd.by, cmd.reason, data=ext.as_json()
                )
            )
        elif isinstance(cmd, ProgressCommand):
            contribution = task.add_progress(now)
            evidence = [a.model_dump(mode="json") for a in cmd.evidence]
            work.emit(
                ev.CaseProgress(
                    **dims,
                    occurred_at=now,
                    actor=actor,
                    note=cmd.note,
                    contribution=contribution,
                    evidence=cmd.evidence,
                )
            )
            action = "contribution" if contribution else "progress"
            entries.append(repo.LogEntry(task, now, action, cmd.by, cmd.note, evidence))
        elif isinstance(cmd, HandledCommand):
            evidence = [a.model_dump(mode="json") for a in cmd.evidence]
            on_time = task.handle(
                now,
                cmd.by,
                result=cmd.result,
                evidence=evidence,
                completed_at=cmd.completed_at,
                require_evidence=self.settings.require_evidence,
                clock_skew=self.ctx.clock_skew,
            )
            mates = team(tasks, task)
            parts = await repo.contributions(work.conn, mates)
            for mate in mates:
                if mate.group_handled(now):
                    changed.append(mate)
                    entries.append(repo.LogEntry(mate, now, "handled", cmd.by, "by the lead unit"))
            work.emit(
                ev.CaseHandled(
                    **dims,
                    occurred_at=now,
                    actor=actor,
                    result=cmd.result,
                    evidence=cmd.evidence,
                    completed_at=cmd.completed_at,
                    on_time=on_time,
                    contributions=[ev.Contribution.model_validate(p) for p in parts],
                )
            )
            entries.append(
                repo.LogEntry(
                    task,
                    now,
                    "handled",
                    cmd.by,
                    cmd.result,
                    evidence,
                    {"completed_at": cmd.completed_at.isoformat(), "on_time": on_time},
                )
            )
        else:  # pragma: no cover - COMMANDS lists exactly the five above
            raise Refusal(f"unknown command {cmd.type_name}", field="type", status=422)
        await repo.save_tasks(work.conn, changed, now)
        await repo.log(work.conn, entries)

    # -- reading (REST) ------------------------------------------------------------------
    async def task_detail(self, work: Work, dept: str, case_id: str) -> dict[str, Any] | None:
        tasks = await repo.tasks_of_case(work.conn, case_id)
        task = task_for(tasks, dept)
        if task is None:
            return None
        case = await repo.get_case(work.conn, case_id)
        mine = [t.task_id for t in tasks if t.dept == dept]
        history = await repo.history(work.conn, mine)
        return task_view(
            task, case, now=work.now(), calendar=self.calendar, city=self.city, history=history
        )


def _dims(e: ev.CaseEvent) -> dict[str, Any]:
    return {
        "case_id": e.case_id,
        "category_code": e.category_code,
        "cell_code": e.cell_code,
        "community_code": e.community_code,
        "subdistrict_code": e.subdistrict_code,
    }


def _task_dims(case_id: str, case: dict[str, Any] | None, task: Task) -> dict[str, Any]:
    """Dimensions travel with the event (flow.md): the case's, and the task's."""
    case = case or {}
    return {
        "case_id": case_id,
        "category_code": case.get("category_code"),
        "cell_code": case.get("cell_code"),
        "community_code": case.get("community_code"),
        "subdistrict_code": case.get("subdistrict_code"),
        "dept": task.dept,
        "task_id": task.task_id,
        "deadline": task.deadline,
    }


def _command(p: repo.Parked) -> DepartmentCommand:
    return COMMANDS[p.action].model_validate(p.command)


def _parked_key(parked_id: int) -> str:
    # A terminator, so that cancelling parked:1 never touches parked:10.
    return f"parked:{parked_id}#"


def _reply_subject(value: str | None) -> str | None:
    if value and _REPLY_SUBJECT.fullmatch(value):
        return value
    return None
