"""The working calendar's horizon, watched months ahead by every service that computes deadlines.

The official calendar (chinese_calendar's years, or the city's own `known_through`) runs out
each year until the State Council's next arrangement is entered; past it deadlines follow the
statutory rule and are provisional (gridloop_city.calendar). So that nobody learns it from a
wrong deadline, each such service (its `ServiceDefinition.calendar`) says how many days are
left — at start-up and once a day, and again after a live reload within `CALENDAR_CHECK_S`:

- the gauge `gridloop_calendar_days_left{service}` and `gridloop_calendar_alarm{service}`
  (1 when fewer than `CALENDAR_ALARM_DAYS` are left; the `GridloopCalendarEnding` alert);
- a warning log line `working calendar ends soon` at start-up and then once per day while
  the alarm is on;
- `GET /admin/calendar` (admin), which the console's admin screen shows.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import structlog
from prometheus_client import Gauge
from pydantic import BaseModel

from .waits import wait_set

if TYPE_CHECKING:
    from .service import Runtime

log = structlog.get_logger(__name__)

DAYS_LEFT = Gauge(
    "gridloop_calendar_days_left",
    "Days after today the working calendar is official for (negative: ended that long ago)",
    ["service"],
)
ALARM = Gauge(
    "gridloop_calendar_alarm",
    "1 when the working calendar ends in fewer than CALENDAR_ALARM_DAYS days",
    ["service"],
)


class HorizonLike(Protocol):
    """What the watch reads of gridloop_city.Horizon."""

    @property
    def today(self) -> dt.date: ...
    @property
    def last_known(self) -> dt.date | None: ...
    @property
    def days_left(self) -> int: ...
    @property
    def alarm_days(self) -> int: ...
    @property
    def alarm(self) -> bool: ...

    def message(self) -> str: ...


class CalendarLike(Protocol):
    """What the watch needs of gridloop_city.WorkingCalendar."""

    @property
    def tz(self) -> Any: ...

    def horizon(self, today: dt.date, alarm_days: int) -> HorizonLike: ...


class CalendarStatus(BaseModel):
    """GET /admin/calendar: how far ahead this service's working calendar is official."""

    service: str
    today: dt.date
    last_known: dt.date | None
    days_left: int
    alarm_days: int
    alarm: bool
    message: str


def check(rt: Runtime) -> CalendarStatus | None:
    """Compute the horizon now (the calendar in use, the runtime's clock) and export it."""
    get: Callable[[], CalendarLike] | None = rt.definition.calendar
    if get is None:
        return None
    calendar = get()
    today = rt.clock.now().astimezone(calendar.tz).date()
    h = calendar.horizon(today, rt.settings.calendar_alarm_days)
    service = rt.definition.name
    DAYS_LEFT.labels(service).set(h.days_left)
    ALARM.labels(service).set(1 if h.alarm else 0)
    return CalendarStatus(
        service=service,
        today=h.today,
        last_known=h.last_known,
        days_left=h.days_left,
        alarm_days=h.alarm_days,
        alarm=h.alarm,
        message=h.message(),
    )


async def watch(rt: Runtime, stop: asyncio.Event) -> None:
    """Refresh the gauges every `CALENDAR_CHECK_S`; warn at start-up and once per day while
    the alarm is on."""
    warned_on: dt.date | None = None
    while not stop.is_set():
        try:
            status = check(rt)
        except Exception:  # a broken calendar must not stop the service's other work
            log.exception("working calendar check failed", service=rt.definition.name)
            status = None
        if status is not None and status.alarm and warned_on != status.today:
            warned_on = status.today
            log.warning(
                "working calendar ends soon",
                service=status.service,
                last_known=str(status.last_known),
                days_left=status.days_left,
                alarm_days=status.alarm_days,
                detail=status.message,
            )
        await wait_set(stop, rt.settings.calendar_check_s)
