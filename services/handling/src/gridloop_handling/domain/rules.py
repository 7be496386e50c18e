"""The handling rules on one case, without I/O: what each CASES event, each department command
and the parked-command timer do to a `CaseFile`, and what they emit.

Event and timer rules are `(state, message, step) -> None`; a department command goes through
`execute` (REST, whose runner keeps the idempotency and the audit) or `run_bus_command` (NATS:
idempotent against the answers loaded with the state, always answered). The five commands are
the table `HandlingRules.commands`: command type → rule. Task's commands check everything
before they change anything, so a refused command leaves the state as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from gridloop_contracts import Actor, AttachmentRef, subjects
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
from gridloop_contracts.problems import Refusal
from gridloop_runtime.step import Step, Timer

from . import commands as cmds
from .case import AuditEntry, CaseFile, LogEntry, Parked
from .tasks import Task, addressed, task_for, team, units_of

PARKED = "handling-parked"

# (task, case summary, now) → the task as the department sees it (views.task_view)
View = Callable[[Task, dict[str, Any] | None, datetime], dict[str, Any]]
CommandRule = Callable[[CaseFile, Task, Any, Step, Actor], None]


@dataclass(frozen=True)
class Policy:
    """What the rules need to know of the city and the settings."""

    is_department: Callable[[str], bool]
    view: View
    require_evidence: bool = True
    clock_skew: timedelta = timedelta(minutes=5)
    park_for: timedelta = timedelta(minutes=5)  # HANDLING_PARK_S


@dataclass(frozen=True)
class Executed:
    """A command's outcome: its answer, the task it acted on, the task as the department sees
    it after it (for the REST answer; None over NATS, whose answer does not carry it), and
    whether this was a resend of a command already executed (same answer, nothing changed)."""

    answer: CommandAnswerV1
    task_id: str | None
    task: dict[str, Any] | None
    fingerprint: str
    replay: bool = False

    @property
    def stored(self) -> dict[str, Any]:
        """What the `commands` table keeps: a resend gets this answer again (a REST resend of
        a command first sent over NATS, stored without the task, gets the task as it stands)."""
        kept: dict[str, Any] = {"answer": self.answer.to_json_dict()}
        if self.task is not None:
            kept["task"] = self.task
        kept["fingerprint"] = self.fingerprint
        return kept


def parked_key(case_id: str, dept: str, command_id: str) -> str:
    """The timer of a parked command: the case first (the timer's case), then the command."""
    return f"{case_id}/parked/{dept}/{command_id}"


def dims(e: ev.CaseEvent) -> dict[str, Any]:
    return {
        "category_code": e.category_code,
        "cell_code": e.cell_code,
        "community_code": e.community_code,
        "subdistrict_code": e.subdistrict_code,
    }


def task_dims(state: CaseFile, task: Task) -> dict[str, Any]:
    """Dimensions travel with the event (flow.md): the case's, and the task's."""
    case = state.case or {}
    return {
        "case_id": state.case_id,
        "category_code": case.get("category_code"),
        "cell_code": case.get("cell_code"),
        "community_code": case.get("community_code"),
        "subdistrict_code": case.get("subdistrict_code"),
        "dept": task.dept,
        "task_id": task.task_id,
        "deadline": task.deadline,
    }


class HandlingRules:
    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.commands: dict[type[DepartmentCommand], CommandRule] = {
            SignCommand: self.sign,
            ReturnCommand: self.return_,
            ExtensionCommand: self.request_extension,
            ProgressCommand: self.progress,
            HandledCommand: self.handled,
        }

    # -- CASES events ----------------------------------------------------------------------
    def on_accepted(self, state: CaseFile, e: ev.CaseAccepted, step: Step) -> None:
        """立案: what the department will need to see — description, place, the report's
        photos, the masked reporter."""
        state.note_case(
            **dims(e),
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

    def on_dispatched(self, state: CaseFile, e: ev.CaseDispatched, step: Step) -> None:
        """派遣: the department's inbox gets the task (and each co-handler theirs); commands
        parked for it run now."""
        now = step.now()
        state.note_case(**dims(e), urgency=e.urgency)
        by_id = {t.task_id: t for t in state.tasks}
        lead = e.lead or e.dept
        actor = e.actor.id if e.actor else None
        depts: set[str] = set()
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
                for old in list(state.tasks):
                    if old.dept == unit.dept and old.supersede(
                        e.occurred_at, f"superseded by task {unit.task_id}"
                    ):
                        depts.add(old.dept)
                        state.log.append(LogEntry.of(old, now, "superseded", actor))
                task = Task(
                    task_id=unit.task_id,
                    case_id=e.case_id,
                    dept=unit.dept,
                    dispatched_at=e.occurred_at,
                    **terms,
                )
                state.tasks.append(task)
                by_id[task.task_id] = task
            depts.add(task.dept)
            state.log.append(
                LogEntry.of(
                    task,
                    now,
                    "dispatched",
                    actor,
                    e.reason,
                    data={"kind": e.kind, "deadline": e.deadline.isoformat(), "role": unit.role},
                )
            )
        open_depts = {t.dept for t in state.tasks if t.is_open and t.dept in depts}
        for p in [p for p in state.parked if p.dept in open_depts]:
            state.unpark(p)
            step.cancel(parked_key(p.case_id, p.dept, p.command_id), [PARKED])
            self.run_bus_command(
                state, _command(p), p.reply_to, step, park=False, feed=p.feed, taken=_taken(p)
            )

    def on_recalled(self, state: CaseFile, e: ev.CaseRecalled, step: Step) -> None:
        chosen = addressed(state.tasks, e.task_id, e.dept)
        _change(
            state,
            step,
            chosen,
            lambda t: t.recall(e.occurred_at, e.reason),
            "recalled",
            e,
            e.reason,
        )

    def on_extension_decided(self, state: CaseFile, e: ev.CaseExtensionDecided, step: Step) -> None:
        data: dict[str, Any] = {"granted": e.granted, "request_id": e.request_id}
        if e.new_deadline is not None:
            data["new_deadline"] = e.new_deadline.isoformat()
        chosen = addressed(state.tasks, e.task_id, e.dept)
        _change(
            state,
            step,
            chosen,
            lambda t: t.extension_decided(e.request_id, e.granted, e.new_deadline),
            "extension_decided",
            e,
            e.reason,
            data,
        )

    def on_reworked(self, state: CaseFile, e: ev.CaseReworked, step: Step) -> None:
        chosen = addressed(state.tasks, e.task_id, e.dept)
        _change(
            state,
            step,
            chosen,
            lambda t: t.rework(e.occurred_at, e.count, e.new_deadline),
            "reworked",
            e,
            e.reason,
            {"count": e.count},
        )

    def on_escalated(self, state: CaseFile, e: ev.CaseEscalated, step: Step) -> None:
        def raise_level(t: Task) -> bool:
            if not t.is_open or t.escalation_level >= e.level:
                return False
            t.escalation_level = e.level
            return True

        chosen = addressed(state.tasks, e.task_id, e.dept)
        data = {"level": e.level, "to": e.to_role}
        _change(state, step, chosen, raise_level, "escalated", e, e.reason, data)

    def on_supervised(self, state: CaseFile, e: ev.CaseSupervised, step: Step) -> None:
        def supervise(t: Task) -> bool:
            if not t.is_open or t.supervised:
                return False
            t.supervised = True
            return True

        chosen = addressed(state.tasks, None, e.dept)
        _change(state, step, chosen, supervise, "supervised", e, e.reason)

    def on_closed(self, state: CaseFile, e: ev.CaseClosed, step: Step) -> None:
        state.note_case(**dims(e), closed_at=e.occurred_at)
        _change(state, step, state.tasks, lambda t: t.close(e.occurred_at), "closed", e, None)

    # -- timers ------------------------------------------------------------------------------
    def on_parked_expired(self, state: CaseFile, timer: Timer, step: Step) -> None:
        """A parked command's wait is over and no dispatch of the case to its department came
        (that would have run it at once): refused, saying how long it waited."""
        dept, command_id = timer.payload.get("dept"), timer.payload.get("command_id")
        for p in [p for p in state.parked if (p.dept, p.command_id) == (dept, command_id)]:
            state.unpark(p)
            waited = step.now() - p.parked_at
            self.run_bus_command(
                state,
                _command(p),
                p.reply_to,
                step,
                park=False,
                waited=waited,
                feed=p.feed,
                taken=_taken(p),
            )

    # -- commands ----------------------------------------------------------------------------
    def execute(
        self,
        state: CaseFile,
        cmd: DepartmentCommand,
        step: Step,
        *,
        by_name: str | None = None,
        park: bool = False,
        reply_to: str | None = None,
        files: Sequence[AttachmentRef] = (),
        waited: timedelta | None = None,
        feed: bool = True,
        view: bool = True,
        again: bool = False,
    ) -> Executed | None:
        """Execute a department command on its case (no idempotency: the caller's); raise a
        Refusal naming the field; None when it was parked to wait for its dispatch. `files`:
        photos uploaded to handling and claimed by the caller (REST), for a result. `waited`:
        how long a parked command waited for its dispatch in vain (said in the refusal).
        `feed`: a parked command's answer goes on dispatch.<dept>.answer too, when it comes.
        `view`: the outcome carries the task as the department sees it (REST answers it).
        `again`: a command taken over REST before, run again from the bus after a database
        restore (`Taken`)."""
        self._check_known(cmd.dept)
        task = task_for(state.tasks, cmd.dept, cmd.task_id)
        if task is None:
            if park and not any(t.dept == cmd.dept for t in state.tasks):
                # a command taken over REST keeps its sender's name and photos through it
                taken = Taken(by_name, tuple(files)) if again else None
                self._park(state, cmd, reply_to, step, feed=feed, taken=taken)
                return None
            after = (
                f" (waited {waited.total_seconds():.0f} s for a dispatch to {cmd.dept!r}, "
                "HANDLING_PARK_S; none came)"
                if waited is not None
                else ""
            )
            if state.tasks:
                raise Refusal(
                    f"case {cmd.case_id} is not a task of department {cmd.dept!r}{after}",
                    field="case_id",
                    code="wrong-department",
                    status=403,
                )
            raise Refusal(
                f"no case {cmd.case_id!r} has been dispatched to {cmd.dept!r}{after}",
                field="case_id",
                code="not-found",
                status=404,
            )
        try:
            if cmd.task_id and cmd.task_id not in (task.task_id, task.group_id):
                raise Refusal(
                    f"is not the department's current task on this case ({task.task_id})",
                    field="task_id",
                    code="task-mismatch",
                )
            actor = Actor(id=cmd.by, role="department", dept=cmd.dept, name=by_name)
            if again and isinstance(cmd, HandledCommand) and cmd.completed_at < task.dispatched_at:
                # done against the dispatch the restore lost; the case was dispatched anew
                # since: done by then (the same command: its time is not in its fingerprint)
                cmd = cmd.model_copy(update={"completed_at": task.dispatched_at})
            if files and isinstance(cmd, HandledCommand):
                self.handled(state, task, cmd, step, actor, files=files)
            elif files:
                raise Refusal(
                    "uploaded photos go with a result (处置反馈)",
                    field="attachment_ids",
                    code="invalid",
                    status=422,
                )
            else:
                self.commands[type(cmd)](state, task, cmd, step, actor)
        except Refusal as r:
            r.extra.setdefault("status", str(cmds.status_of(task)))
            raise
        shown = self.policy.view(task, state.case, step.now()) if view else None
        return Executed(cmds.accepted(cmd, task), task.task_id, shown, cmds.fingerprint(cmd))

    def run_bus_command(
        self,
        state: CaseFile,
        cmd: DepartmentCommand,
        reply_to: str | None,
        step: Step,
        *,
        park: bool,
        waited: timedelta | None = None,
        feed: bool = True,
        taken: Taken | None = None,
    ) -> None:
        """A command from NATS (or parked): idempotent by its scoped id, audited, and always
        answered — unless parked, when the answer waits for the dispatch or the timer.
        `feed`: the answer goes on dispatch.<dept>.answer too (False only with `reply_to`).
        `taken`: what a command first taken over REST had besides its data (run again from
        the bus after a database restore)."""
        mark = step.mark()
        try:
            done = self._once(
                state,
                cmd,
                step,
                park=park,
                reply_to=reply_to,
                waited=waited,
                feed=feed,
                taken=taken,
            )
        except Refusal as r:
            step.rollback_to(mark)
            answer = cmds.refused(
                command_id=cmd.command_id,
                dept=cmd.dept,
                case_id=cmd.case_id,
                action=cmd.subject_token,
                errors=cmds.refusal_errors(r, "data."),
                status=r.extra.get("status"),
            )
            self.answer(state, step, answer, reply_to, by=cmd.by, feed=feed)
            return
        if done is not None:
            self.answer(state, step, done.answer, reply_to, by=cmd.by, feed=feed)

    def _once(
        self,
        state: CaseFile,
        cmd: DepartmentCommand,
        step: Step,
        *,
        park: bool,
        reply_to: str | None,
        waited: timedelta | None = None,
        feed: bool = True,
        taken: Taken | None = None,
    ) -> Executed | None:
        self._check_known(cmd.dept)
        key = cmds.command_key(cmd.dept, cmd.command_id)
        who: dict[str, Any] = {"command_id": key, "case_id": cmd.case_id, "user_id": cmd.by}
        stored = state.answers.get(key)
        if stored is not None:
            if not cmds.same_command(stored.get("fingerprint"), cmd):
                raise cmds.duplicate(cmd)
            state.audit.append(self._audit(cmd, "replayed", step, **who))
            answer = CommandAnswerV1.model_validate(stored["answer"])
            task = stored.get("task")
            task_id = task.get("task_id") if task else None
            return Executed(answer, task_id, task, stored["fingerprint"], replay=True)
        # Over NATS the answer is the CommandAnswer alone: the task's view is neither built
        # nor kept (a REST resend of this command builds it then).
        done = self.execute(
            state,
            cmd,
            step,
            park=park,
            reply_to=reply_to,
            waited=waited,
            feed=feed,
            view=False,
            by_name=taken.by_name if taken else None,
            files=taken.files if taken else (),
            again=taken is not None,
        )
        if done is None:
            return None
        # A resend later in the same batch finds it, as one in a later transaction would.
        state.answers[key] = done.stored
        state.recorded.append((key, cmd.subject_token, done.stored))
        state.audit.append(self._audit(cmd, "accepted", step, task_id=done.task_id, **who))
        return done

    def answer(
        self,
        state: CaseFile,
        step: Step,
        answer: CommandAnswerV1,
        reply_to: str | None,
        *,
        by: str | None,
        feed: bool = True,
    ) -> None:
        """回执: on dispatch.<dept>.answer (outbox), and to the reply subject after commit; only
        to the reply subject when the command asked so (`feed` False, its `answerfeed`
        extension `none`); a refusal is audited."""
        assert answer.dept is not None
        if not answer.accepted:
            first = answer.errors[0] if answer.errors else None
            state.audit.append(
                AuditEntry(
                    at=step.now(),
                    command=answer.action or "unknown",
                    outcome="refused",
                    subject=step.subject,
                    command_id=answer.command_id,
                    case_id=answer.case_id,
                    user_id=by,
                    dept=answer.dept,
                    code=first.code if first else None,
                    field=first.field if first else None,
                    reason=first.reason if first else None,
                )
            )
        if reply_to and not feed:
            env = step.envelope(answer, case_id=answer.case_id)
        else:
            env = step.emit(
                answer, subject=subjects.dispatch(answer.dept, "answer"), case_id=answer.case_id
            )
        if reply_to:
            state.replies.append((reply_to, env))

    def _park(
        self,
        state: CaseFile,
        cmd: DepartmentCommand,
        reply_to: str | None,
        step: Step,
        *,
        feed: bool = True,
        taken: Taken | None = None,
    ) -> None:
        """Wait for the dispatch (run by `on_dispatched` the moment it is heard) or until
        `park_for` has passed (`on_parked_expired`). A resend of a parked command (the same id:
        a kit asking again after 20 s) joins the first wait — one park, one timer counted from
        the first, one effect; the same id for another command is refused as a duplicate."""
        for p in state.parked:
            if (p.dept, p.command_id) == (cmd.dept, cmd.command_id):
                if cmds.fingerprint(_command(p)) != cmds.fingerprint(cmd):
                    raise cmds.duplicate(cmd)
                return
        now = step.now()
        state.park(
            Parked(
                case_id=cmd.case_id,
                dept=cmd.dept,
                action=cmd.subject_token,
                command={
                    **cmd.model_dump(mode="json"),
                    **({TAKEN_KEY: taken.as_json()} if taken else {}),
                },
                reply_to=reply_to,
                parked_at=now,
                feed=feed,
            )
        )
        payload = {"case_id": cmd.case_id, "dept": cmd.dept, "command_id": cmd.command_id}
        key = parked_key(cmd.case_id, cmd.dept, cmd.command_id)
        step.schedule(PARKED, key, now + self.policy.park_for, payload)

    def _check_known(self, dept: str) -> None:
        if not self.policy.is_department(dept):
            raise Refusal(
                f"unknown department {dept!r} (departments.yaml)",
                field="dept",
                code="unknown-department",
                status=404,
            )

    @staticmethod
    def _audit(cmd: DepartmentCommand, outcome: str, step: Step, **fields: Any) -> AuditEntry:
        return AuditEntry(
            at=step.now(),
            command=cmd.subject_token,
            outcome=outcome,
            subject=step.subject,
            dept=cmd.dept,
            **fields,
        )

    # -- the five commands: type → rule ----------------------------------------------------
    def sign(self, state: CaseFile, task: Task, cmd: SignCommand, step: Step, actor: Actor) -> None:
        """签收."""
        now = step.now()
        task.sign(now, cmd.by)
        step.emit(
            ev.CaseSigned(
                **task_dims(state, task),
                occurred_at=now,
                actor=actor,
                sign_in_due=task.sign_in_due,
                on_time=task.sign_on_time,
            )
        )
        state.log.append(LogEntry.of(task, now, "signed", cmd.by))

    def return_(
        self, state: CaseFile, task: Task, cmd: ReturnCommand, step: Step, actor: Actor
    ) -> None:
        """退回: the lead's co-handlers stop with it."""
        now = step.now()
        task.return_(now, cmd.by, cmd.reason)
        step.emit(
            ev.CaseReturned(
                **task_dims(state, task), occurred_at=now, actor=actor, reason=cmd.reason
            )
        )
        state.log.append(LogEntry.of(task, now, "returned", cmd.by, cmd.reason))
        reason = f"the lead unit {task.dept} returned the case (退回)"
        for mate in team(state.tasks, task):
            if mate.supersede(now, reason):
                state.log.append(LogEntry.of(mate, now, "superseded", cmd.by, reason))

    def request_extension(
        self, state: CaseFile, task: Task, cmd: ExtensionCommand, step: Step, actor: Actor
    ) -> None:
        """延期申请."""
        now = step.now()
        # Command ids are the department's own: scoped, they are unique for the dispatcher.
        request_id = cmds.command_key(cmd.dept, cmd.command_id)
        ext = task.request_extension(
            now, cmd.by, cmd.reason, cmd.proposed_deadline, request_id=request_id
        )
        step.emit(
            ev.CaseExtensionRequested(
                **task_dims(state, task),
                occurred_at=now,
                actor=actor,
                reason=cmd.reason,
                proposed_deadline=cmd.proposed_deadline,
                request_id=ext.request_id,
            )
        )
        state.log.append(
            LogEntry.of(task, now, "extension_requested", cmd.by, cmd.reason, data=ext.as_json())
        )

    def progress(
        self, state: CaseFile, task: Task, cmd: ProgressCommand, step: Step, actor: Actor
    ) -> None:
        """处置进展: a co-handler's is its contribution to the lead's result."""
        now = step.now()
        contribution = task.add_progress(now)
        evidence = [a.model_dump(mode="json") for a in cmd.evidence]
        step.emit(
            ev.CaseProgress(
                **task_dims(state, task),
                occurred_at=now,
                actor=actor,
                note=cmd.note,
                contribution=contribution,
                evidence=cmd.evidence,
            )
        )
        action = "contribution" if contribution else "progress"
        if contribution:
            # Not written yet: ordered after the written ones, by when it was made here.
            part = {"seq": None, "made": len(state.log), "dept": task.dept, "note": cmd.note}
            task.contributions.append({**part, "evidence": evidence})
        state.log.append(LogEntry.of(task, now, action, cmd.by, cmd.note, evidence))

    def handled(
        self,
        state: CaseFile,
        task: Task,
        cmd: HandledCommand,
        step: Step,
        actor: Actor,
        *,
        files: Sequence[AttachmentRef] = (),
    ) -> None:
        """处置反馈: the result, with the co-handlers' contributions; their part ends. Its
        evidence: links, and photos uploaded here (`files`, carried by reference)."""
        now = step.now()
        evidence = [a.model_dump(mode="json") for a in cmd.evidence]
        on_time = task.handle(
            now,
            cmd.by,
            result=cmd.result,
            evidence=evidence,
            completed_at=cmd.completed_at,
            require_evidence=self.policy.require_evidence and not files,
            clock_skew=self.policy.clock_skew,
        )
        mates = team(state.tasks, task)
        parts = [p for mate in mates for p in mate.contributions]
        # In the order they were made: written ones by their log order, then this batch's.
        parts.sort(key=lambda p: (p["seq"] is None, p["made"] if p["seq"] is None else p["seq"]))
        for mate in mates:
            if mate.group_handled(now):
                state.log.append(LogEntry.of(mate, now, "handled", cmd.by, "by the lead unit"))
        step.emit(
            ev.CaseHandled(
                **task_dims(state, task),
                occurred_at=now,
                actor=actor,
                result=cmd.result,
                evidence=cmd.evidence,
                files=list(files) or None,
                completed_at=cmd.completed_at,
                on_time=on_time,
                contributions=[
                    ev.Contribution.model_validate({k: p[k] for k in ("dept", "note", "evidence")})
                    for p in parts
                ],
            )
        )
        state.log.append(
            LogEntry.of(
                task,
                now,
                "handled",
                cmd.by,
                cmd.result,
                evidence,
                {"completed_at": cmd.completed_at.isoformat(), "on_time": on_time},
            )
        )


def _change(
    state: CaseFile,
    step: Step,
    tasks: list[Task],
    change: Callable[[Task], bool],
    action: str,
    e: ev.CaseEvent,
    note: str | None,
    data: dict[str, Any] | None = None,
) -> None:
    """Apply `change` to these tasks; each one it changed gets a log line."""
    now = step.now()
    by = e.actor.id if e.actor else None
    for t in tasks:
        if change(t):
            state.log.append(LogEntry.of(t, now, action, by, note, data=data))


def _command(p: Parked) -> DepartmentCommand:
    return COMMANDS[p.action].model_validate(p.command)


# Where a parked command first taken over REST keeps what it had besides its data (the
# command's contract ignores a field it does not know).
TAKEN_KEY = "_taken"


@dataclass(frozen=True)
class Taken:
    """What a command taken over REST had besides its data: who sent it by name and the
    photos they uploaded (`CommandTakenV1`), for running it again from the bus."""

    by_name: str | None = None
    files: tuple[AttachmentRef, ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "by_name": self.by_name,
            "files": [f.model_dump(mode="json", exclude_none=True) for f in self.files],
        }


def _taken(p: Parked) -> Taken | None:
    kept = p.command.get(TAKEN_KEY)
    if not isinstance(kept, dict):
        return None
    files = tuple(AttachmentRef.model_validate(f) for f in kept.get("files") or [])
    return Taken(by_name=kept.get("by_name"), files=files)
