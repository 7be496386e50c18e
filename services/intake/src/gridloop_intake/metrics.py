"""intake's Prometheus metrics: the reports coming in, and the case file's open cases by state
and overdue (read from its tables when /metrics is scraped; every replica reads the same
numbers, so a dashboard takes their max)."""

from __future__ import annotations

from gridloop_contracts.status import CaseStatus
from gridloop_runtime.db import Conn
from gridloop_runtime.metrics import OVERDUE_CASES
from prometheus_client import Counter, Gauge

REPORTS_IN = Counter(
    "gridloop_reports_total",
    "Reports taken by intake from every channel (before the duplicate search or a refusal)",
    ["channel"],
)
CASES = Gauge("gridloop_cases", "Open cases in intake's case file, by state", ["state"])

# closed, rejected and merged cases are not counted (they only grow)
OPEN = [s.value for s in CaseStatus if s.is_open]


async def refresh(conn: Conn) -> None:
    rows = await conn.fetch(
        "SELECT status, count(*) AS n FROM cases WHERE status = ANY($1::text[]) GROUP BY status",
        OPEN,
    )
    seen = {r["status"]: r["n"] for r in rows}
    for state in OPEN:  # every open state, 0 once no case is in it
        CASES.labels(state).set(seen.get(state, 0))
    overdue = await conn.fetchval(
        "SELECT count(*) FROM cases WHERE overdue AND status = ANY($1::text[])", OPEN
    )
    OVERDUE_CASES.labels("intake").set(overdue)
