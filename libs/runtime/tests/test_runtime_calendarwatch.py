"""The working calendar's horizon is watched: the gauges follow the calendar in use, a warning
is logged at start-up and once a day while the alarm is on, and nothing while it is off."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import MutableMapping
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

from gridloop_city import WorkingCalendar
from gridloop_devkit.testing import wait_for
from gridloop_runtime import calendarwatch
from gridloop_runtime.clock import FakeClock
from gridloop_runtime.settings import ServiceSettings
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

BJ = ZoneInfo("Asia/Shanghai")
HOURS = [(dt.time(9), dt.time(12)), (dt.time(13, 30), dt.time(18))]


def runtime(
    name: str, calendar: WorkingCalendar, clock: FakeClock, alarm_days: int = 90
) -> SimpleNamespace:
    """What the watch reads of a Runtime; `looks` counts the checks."""
    settings = ServiceSettings.model_validate(
        {"CALENDAR_ALARM_DAYS": alarm_days, "CALENDAR_CHECK_S": 0.01}
    )
    rt = SimpleNamespace(settings=settings, clock=clock, looks=0)

    def in_use() -> WorkingCalendar:
        rt.looks += 1
        return calendar

    rt.definition = SimpleNamespace(name=name, calendar=in_use)
    return rt


def gauge(metric: str, service: str) -> float | None:
    return REGISTRY.get_sample_value(metric, {"service": service})


async def test_the_alarm_is_logged_at_start_up_and_once_a_day() -> None:
    clock = FakeClock(dt.datetime(2026, 12, 2, 10, tzinfo=BJ))
    rt = runtime("watch-a", WorkingCalendar(HOURS), clock)
    stop = asyncio.Event()
    with capture_logs() as logs:
        task = asyncio.create_task(calendarwatch.watch(rt, stop))  # type: ignore[arg-type]

        def warnings() -> list[MutableMapping[str, Any]]:
            return [e for e in logs if e["event"] == "working calendar ends soon"]

        await wait_for(lambda: len(warnings()) == 1, what="the start-up warning")
        assert gauge("gridloop_calendar_days_left", "watch-a") == 29
        assert gauge("gridloop_calendar_alarm", "watch-a") == 1
        first = warnings()[0]
        assert first["log_level"] == "warning" and first["last_known"] == "2026-12-31"
        # checked again and again the same day: still one warning …
        clock.advance(dt.timedelta(hours=1))
        looked = rt.looks
        await wait_for(lambda: rt.looks >= looked + 3, what="more checks the same day")
        assert len(warnings()) == 1
        # … and one more the next day, with a day less
        clock.advance(dt.timedelta(days=1))
        await wait_for(lambda: len(warnings()) == 2, what="the next day's warning")
        assert warnings()[1]["days_left"] == 28
        stop.set()
        await task


async def test_no_warning_while_the_calendar_is_official_long_enough() -> None:
    clock = FakeClock(dt.datetime(2026, 12, 2, 10, tzinfo=BJ))
    entered = WorkingCalendar(HOURS, known_through=dt.date(2027, 12, 31))
    rt = runtime("watch-b", entered, clock)
    with capture_logs() as logs:
        status = calendarwatch.check(rt)  # type: ignore[arg-type]
    assert status is not None and (status.days_left, status.alarm) == (394, False)
    assert gauge("gridloop_calendar_alarm", "watch-b") == 0
    assert not [e for e in logs if e["event"] == "working calendar ends soon"]
    # the threshold is a setting: 400 days ahead, the same calendar is not enough
    strict = runtime("watch-c", entered, clock, alarm_days=400)
    status = calendarwatch.check(strict)  # type: ignore[arg-type]
    assert status is not None and status.alarm
