"""Duplicates (重复上报): the same problem reported again is merged into its open case, and a
camera that keeps seeing the same scene folds its detections into one case."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from gridloop_city import haversine_m
from gridloop_city.models import DuplicateRule

_M_PER_DEG_LAT = 111_320.0


@dataclass(frozen=True)
class OpenCase:
    """An open case that a new report might duplicate."""

    case_id: str
    lon: float
    lat: float
    reported_at: datetime
    part_code: str | None = None


@dataclass(frozen=True)
class Match:
    case_id: str
    distance_m: float


def search_box(lon: float, lat: float, radius_m: float) -> tuple[float, float, float, float]:
    """(min_lon, min_lat, max_lon, max_lat) around a point: the index-friendly pre-filter;
    the exact distance decides afterwards."""
    dlat = radius_m / _M_PER_DEG_LAT
    dlon = radius_m / (_M_PER_DEG_LAT * max(math.cos(math.radians(lat)), 1e-6))
    return lon - dlon, lat - dlat, lon + dlon, lat + dlat


def window(reported_at: datetime, rule: DuplicateRule) -> tuple[datetime, datetime]:
    """The reporting times a duplicate may have: the window on both sides, because reports
    arrive out of order (a hotline enters a call after the camera saw it)."""
    span = timedelta(hours=rule.window_hours)
    return reported_at - span, reported_at + span


@dataclass(frozen=True)
class NearSearch:
    """One duplicate search: the open cases of a category inside a box (`search_box`) that
    were reported inside a window (`window`)."""

    category_code: str
    box: tuple[float, float, float, float]
    since: datetime
    until: datetime

    @classmethod
    def of(
        cls, category_code: str, lon: float, lat: float, reported_at: datetime, rule: DuplicateRule
    ) -> NearSearch:
        since, until = window(reported_at, rule)
        return cls(category_code, search_box(lon, lat, rule.distance_m), since, until)

    def covers(self, other: NearSearch) -> bool:
        """Everything `other` finds, this finds too."""
        a, b = self.box, other.box
        return (
            self.category_code == other.category_code
            and a[0] <= b[0]
            and a[1] <= b[1]
            and b[2] <= a[2]
            and b[3] <= a[3]
            and self.since <= other.since
            and other.until <= self.until
        )

    def finds(self, case: OpenCase) -> bool:
        """The case (of this category, open) is inside the box and the window."""
        min_lon, min_lat, max_lon, max_lat = self.box
        return (
            min_lat <= case.lat <= max_lat
            and min_lon <= case.lon <= max_lon
            and self.since <= case.reported_at <= self.until
        )


def find_duplicate(
    candidates: list[OpenCase],
    *,
    lon: float,
    lat: float,
    reported_at: datetime,
    rule: DuplicateRule,
    part_code: str | None = None,
) -> Match | None:
    """The open case this report repeats: same part, or the nearest within the distance and
    time window (candidates are already of the same category). Ties go to the older case, so
    every repeat lands on the case that was there first."""
    lo, hi = window(reported_at, rule)
    best: tuple[float, datetime, str] | None = None
    for c in candidates:
        if not lo <= c.reported_at <= hi:
            continue
        if part_code is not None and c.part_code == part_code:
            distance = 0.0
        else:
            distance = haversine_m(lon, lat, c.lon, c.lat)
            if distance > rule.distance_m:
                continue
        key = (distance, c.reported_at, c.case_id)
        if best is None or key < best:
            best = key
    return None if best is None else Match(best[2], round(best[0], 1))


def folds_into(last_detected_at: datetime, detected_at: datetime, cooldown_minutes: float) -> bool:
    """A detection of the same camera and category folds into the case while the scene keeps
    being seen: within the cooldown of the last detection (a sliding window, so a stall that
    stays all afternoon is one case), in either order of arrival."""
    return abs(detected_at - last_detected_at) <= timedelta(minutes=cooldown_minutes)
