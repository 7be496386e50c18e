"""Publishing: the scoring-publish timer and the publish command (every case's items at once,
so not per-case rules); the city's live reload (`use_city`). The table of everything scoring
takes is in `casework.py`."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import structlog
from gridloop_city import City
from gridloop_city.versions import loader
from gridloop_contracts.scores import (
    BulletinLinks,
    BulletinPublishedV1,
    ScorePublishedV1,
    ScoreRow,
)
from gridloop_runtime import timers
from gridloop_runtime.db import Conn
from gridloop_runtime.livecity import LiveCity
from gridloop_runtime.outbox import Work
from gridloop_runtime.service import Runtime
from gridloop_runtime.step import Timer

from . import bulletin, reports
from . import repository as repo
from .context import Scoring, check_scoring, rules_digest, rules_json
from .domain.periods import (
    Period,
    PeriodKind,
    at_period_end,
    period_of,
    period_of_date,
    timed_kinds,
)
from .projection import Projection, fold_pending
from .store import FactStore

log = structlog.get_logger(__name__)

PUBLISH = "scoring-publish"
TimerHandler = Callable[[Work, Timer], Awaitable[None]]


class Handlers:
    def __init__(self, scoring: Scoring, store: FactStore | None = None) -> None:
        self.ctx = scoring
        self.store = store  # the consumer's: it folds with the city in force
        self.projection = Projection(
            scoring.fold,
            batch=scoring.settings.fold_batch,
            poll_s=scoring.settings.fold_poll_s,
        )
        self.timers: dict[str, TimerHandler] = {PUBLISH: self.on_publish_due}
        self._rt: Runtime | None = None
        self._recording: set[asyncio.Task[None]] = set()

    # -- the city's versions (city.updated) -------------------------------------------
    def live(self) -> LiveCity[tuple[City, str | None]]:
        """This state, following `city.updated` (gridloop_runtime.livecity): a version whose
        scoring.yaml names a measure scoring has not is refused like one that fails to load."""
        base = loader(self.ctx.settings.city_versions_dir, parts=False)

        def load(version: str, digest: str) -> tuple[City, str | None]:
            assert base is not None
            return check_scoring(base(version, digest)), version

        return LiveCity(
            "scoring",
            (self.ctx.city, self.ctx.version),
            self.ctx.version,
            load=load if base is not None else None,
            swap=lambda release: self.use_city(*release),
        )

    def use_city(self, city: City, version: str | None) -> None:
        """Live reload, one synchronous step: events folded from now on see this version's
        cells, roster and grid heads; rankings of open periods (and of those closing from now
        on) its rules, departments and areas. Items already folded stay as they are; periods
        already closed keep the rules they closed under (rule_versions)."""
        self.ctx = self.ctx.with_city(city, version)
        self.projection.ctx = self.ctx.fold
        if self.store is not None:
            self.store.ctx = self.ctx.fold
        if self._rt is not None:
            task = asyncio.get_running_loop().create_task(self._record(self._rt, self.ctx))
            self._recording.add(task)
            task.add_done_callback(self._recording.discard)

    async def record_rules(self, rt: Runtime) -> None:
        """Start-up hook: the rules this process runs on are in force from now (if they are
        not already)."""
        self._rt = rt
        await self._record(rt, self.ctx)

    async def _record(self, rt: Runtime, ctx: Scoring) -> None:
        assert rt.pool is not None
        config = ctx.city.scoring
        try:
            async with rt.pool.acquire() as conn:
                added = await repo.record_rules(
                    conn,
                    digest=rules_digest(config),
                    version=ctx.version or "",
                    at=rt.clock.now(),
                    rules=rules_json(config),
                )
        except Exception:  # the old rules then stay on record: periods closing rank with
            log.exception("scoring rules not recorded", version=ctx.version)  # the new ones
            return
        if added:
            log.info("scoring rules in force", version=ctx.version, digest=rules_digest(config))

    # -- timers ----------------------------------------------------------------------
    async def on_publish_due(self, work: Work, timer: Timer) -> None:
        """A period's end: 考核排名 and, for a month or a quarter, its 通报; then the next
        period's timer."""
        kind: PeriodKind = timer.payload["period_kind"]
        period = period_of_date(kind, dt.date.fromisoformat(timer.payload["start"]), self.ctx.tz)
        duties = at_period_end(period, self.ctx.publish_periods, self.ctx.bulletin_periods)
        if duties.scores:
            await self.publish(work, period)
        if duties.bulletin:
            await self.publish_bulletin(work, period)
        await self.arm(work.conn, period.next())

    async def arm(self, conn: Conn, period: Period) -> None:
        """The publish timer of a period (never re-armed once set: it may have fired)."""
        if await repo.timer_exists(conn, PUBLISH, period.key):
            return
        due = period.end + dt.timedelta(seconds=self.ctx.settings.publish_grace_s)
        await timers.schedule(
            conn,
            PUBLISH,
            period.key,
            due,
            {"period_kind": period.kind, "start": period.start.date().isoformat()},
        )

    async def arm_publishing(self, rt: Runtime) -> None:
        """Start-up hook: the current period of every published kind has its timer."""
        assert rt.uow is not None
        async with rt.uow() as work:
            for kind in timed_kinds(self.ctx.publish_periods, self.ctx.bulletin_periods):
                await self.arm(work.conn, period_of(kind, work.now(), self.ctx.tz))

    # -- commands --------------------------------------------------------------------
    async def publish(self, work: Work, period: Period) -> list[dict[str, Any]]:
        """Rank every rule set for the period and emit the results (also on request)."""
        # The consumer folds what it stores; cases an older version left marked are folded
        # first, so what is published is everything this service has taken in.
        while await fold_pending(work.conn, self.ctx.fold, self.ctx.settings.fold_batch):
            pass
        now = work.now()
        out = []
        # the rules in force at the period's end (a version taken later does not re-score it)
        ctx = await reports.in_force(work.conn, self.ctx, period, now)
        for rule_set in ctx.config.rule_sets:
            if rule_set.subject == "person":
                continue  # people's scores are personal: read through the API, not broadcast
            levels = ctx.area_levels if rule_set.subject == "area" else (None,)
            for level in levels:
                level_, ranked = await reports.ranking(work.conn, ctx, rule_set, period, level)
                rows = [
                    ScoreRow(
                        subject_code=r.subject_code,
                        subject_name=ctx.subject_name(rule_set.subject, r.subject_code, level_),
                        score=r.score,
                        grade=r.grade,
                        rank=r.rank,
                        measures={k: v for k, v in r.measures.items() if v is not None},
                    )
                    for r in ranked
                ]
                event = ScorePublishedV1(
                    period_kind=period.kind,
                    period_start=period.start,
                    period_end=period.end,
                    subject_kind=rule_set.subject,
                    subject_level=level_,
                    rule_set=rule_set.code,
                    rows=rows,
                    published_at=now,
                )
                env = work.emit(event)
                body = event.to_json_dict()
                await repo.save_publication(
                    work.conn,
                    period_kind=period.kind,
                    period_start=period.start,
                    period_end=period.end,
                    rule_set=rule_set.code,
                    level=level_ or "",
                    event_id=env.id,
                    published_at=now,
                    body=body,
                )
                out.append(
                    {
                        "event_id": env.id,
                        "rule_set": rule_set.code,
                        "level": level_,
                        "rows": len(rows),
                    }
                )
        log.info("scores published", period=period.key, publications=len(out))
        return out

    async def publish_bulletin(self, work: Work, period: Period) -> bool:
        """通报 of a closed period: generated, stored and announced once — a second attempt
        (another replica, a restart, the timer again) finds the row and does nothing. Whether
        this call published it."""
        while await fold_pending(work.conn, self.ctx.fold, self.ctx.settings.fold_batch):
            pass
        now = work.now()
        b = await reports.bulletin(work.conn, self.ctx, period)
        b = replace(b, generated_at=now.astimezone(self.ctx.tz))
        base = bulletin_path(period)
        event = BulletinPublishedV1(
            period_kind=period.kind,
            period_start=period.start,
            period_end=period.end,
            title=b.title,
            departments=len(b.departments),
            subdistricts=len(b.subdistricts),
            worst_cases=len(b.worst),
            links=BulletinLinks(html=f"{base}.html", csv=f"{base}.csv", data_json=base),
            published_at=now,
        )
        mark = work.mark()
        env = work.emit(event)
        stored = await repo.claim_bulletin(
            work.conn,
            period_kind=period.kind,
            period_start=period.start,
            period_end=period.end,
            title=b.title,
            event_id=env.id,
            published_at=now,
            body=bulletin.as_dict(b),
            csv=bulletin.to_csv(b),
            html=bulletin.to_html(b),
        )
        if not stored:
            work.rollback_to(mark)  # announced once, by whoever stored it
            log.info("bulletin already published", period=period.key)
            return False
        log.info("bulletin published", period=period.key, title=b.title)
        return True


def bulletin_path(period: Period) -> str:
    """The stored bulletin's path on scoring's API (`.html`, `.csv` appended for those)."""
    return f"/bulletins/{period.kind}/{period.start.date().isoformat()}"
