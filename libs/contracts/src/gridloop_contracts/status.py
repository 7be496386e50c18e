"""The status of a case as the outside world sees it (Open311, the hotline, the case file)."""

from __future__ import annotations

from enum import StrEnum


class CaseStatus(StrEnum):
    """One vocabulary for every place a case's status is shown."""

    RECEIVED = "received"  # 已接收
    PENDING_CONFIRMATION = "pending_confirmation"  # 待核实
    PENDING_ACCEPTANCE = "pending_acceptance"  # 待立案
    ACCEPTED = "accepted"  # 已立案
    REJECTED = "rejected"  # 不予立案
    MERGED = "merged"  # 已合并
    MANUAL_DISPATCH = "manual_dispatch"  # 待人工派遣
    DISPATCHED = "dispatched"  # 已派遣
    SIGNED = "signed"  # 已签收
    IN_PROGRESS = "in_progress"  # 处置中
    HANDLED = "handled"  # 已处置
    VERIFYING = "verifying"  # 核查中
    REWORKING = "reworking"  # 返工
    CLOSED = "closed"  # 已结案
    RECALLED = "recalled"  # 已撤回

    @property
    def is_open(self) -> bool:
        return self not in (CaseStatus.CLOSED, CaseStatus.REJECTED, CaseStatus.MERGED)

    @property
    def open311(self) -> str:
        """Open311 GeoReport v2 knows only `open` and `closed`."""
        return "open" if self.is_open else "closed"
