"""考核指标: the catalogue of counted measures and the rates derived from them.

Every counted measure is a sum of items (one item per case and occasion, see `fold.py`),
counted in the period that contains the item's timestamp: the `occurred_at` of the event
that decides it (named per measure below). Rates are derived per period from those sums.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

SubjectKind = Literal["department", "area", "person", "category", "channel"]
SUBJECT_KINDS: tuple[SubjectKind, ...] = ("department", "area", "person", "category", "channel")
AreaLevel = Literal["cell", "community", "subdistrict", "district"]
AREA_LEVELS: tuple[AreaLevel, ...] = ("cell", "community", "subdistrict", "district")


@dataclass(frozen=True)
class Counted:
    """A measure that is a count of items; `decided_by` says which timestamp places it."""

    name: str
    label: str
    decided_by: str


@dataclass(frozen=True)
class Rate:
    """numerator / denominator of one period. Rates whose parts fall in different periods
    are capped at 1 (a period that clears an earlier backlog scores full, never more). A
    `complement` rate is 1 − numerator / denominator (派遣准确率: the dispatches not returned)."""

    name: str
    label: str
    numerator: tuple[str, ...]
    denominator: str
    complement: bool = False

    def of(self, counts: Mapping[str, float]) -> float | None:
        """None when there is nothing to measure (the denominator is 0)."""
        den = counts.get(self.denominator, 0.0)
        if den <= 0:
            return None
        share = min(1.0, sum(counts.get(n, 0.0) for n in self.numerator) / den)
        return 1.0 - share if self.complement else share


STATS = ("count", "avg", "median", "p90")


@dataclass(frozen=True)
class Distribution:
    """A duration measured per occasion (hours, clock time): its items carry the value, and a
    period reports how many (`<name>_count`), their mean (`_avg`), median (`_median`) and 90th
    percentile (`_p90`). Percentiles by nearest rank: the smallest value with at least that
    share of the values at or below it (p90 of 10 values is the 9th smallest)."""

    name: str
    label: str
    decided_by: str

    def names(self) -> tuple[str, ...]:
        return tuple(f"{self.name}_{s}" for s in STATS)

    def of(self, values: Sequence[float]) -> dict[str, float | None]:
        ordered = sorted(values)
        return {
            f"{self.name}_count": float(len(ordered)),
            f"{self.name}_avg": _round(sum(ordered) / len(ordered)) if ordered else None,
            f"{self.name}_median": nearest_rank(ordered, 0.5),
            f"{self.name}_p90": nearest_rank(ordered, 0.9),
        }


def nearest_rank(ordered: Sequence[float], q: float) -> float | None:
    """The q-quantile of sorted values by nearest rank (None for no values)."""
    if not ordered:
        return None
    k = max(1, math.ceil(q * len(ordered) - 1e-9))
    return _round(ordered[k - 1])


def _round(x: float) -> float:
    return round(x, 4)


# 满意度评价 on seed 002's four levels (case.rated v2; a v1 rating counts as its level:
# satisfied B, basically_satisfied C, dissatisfied D).
_RATINGS = (
    Counted("rated", "评价数", "case.rated"),
    Counted("very_satisfied", "非常满意 (A)", "case.rated"),
    Counted("satisfied", "满意 (B)", "case.rated"),
    Counted("fair", "一般 (C)", "case.rated"),
    Counted("dissatisfied", "不满意 (D)", "case.rated"),
)
_SATISFACTION = Rate("satisfaction_rate", "满意率", ("very_satisfied", "satisfied"), "rated")
# 回访: the operators' call-backs of reporters who did not rate, each counted once concluded
# (case.called_back): reached, or not reached after the allowed tries.
_CALLBACKS = (
    Counted("callbacks", "回访数", "case.called_back (a concluded call-back)"),
    Counted("callbacks_reached", "回访联系上数", "case.called_back, reached"),
)
_CALLBACK_RATE = Rate("callback_reached_rate", "回访联系率", ("callbacks_reached",), "callbacks")

COUNTED: Mapping[SubjectKind, tuple[Counted, ...]] = {
    "department": (
        Counted("dispatched", "派遣数", "the first case.dispatched to the department"),
        Counted(
            "to_handle",
            "应处置数",
            "the first case.dispatched to the department; not counted when its task ended "
            "returned (退回) or recalled (撤回)",
        ),
        Counted("signed", "签收数", "the first case.signed"),
        Counted("signed_on_time", "按时签收数", "the first case.signed, on time"),
        Counted("handled", "处置数", "the first case.handled (reworks are counted apart)"),
        Counted("handled_on_time", "按期处置数", "the first case.handled, on time"),
        Counted(
            "overdue",
            "超期数",
            "the first case.overdue (stage handling) not withdrawn (case.overdue_withdrawn); "
            "or a late first case.handled",
        ),
        Counted("reworked", "返工数", "the first case.reworked of the department's result"),
        Counted("returned", "退回数", "the first case.returned"),
        Counted("extension_requests", "延期申请数", "each case.extension_requested"),
        Counted("extensions", "延期数", "each granted case.extension_decided"),
        Counted(
            "escalations",
            "督办数",
            "each case.escalated naming the department, except those withdrawn with an overdue "
            "(case.overdue_withdrawn)",
        ),
        Counted(
            "reminders",
            "催办数",
            "each case.reminded of the department's task (sign-in or handling; automatic or "
            "by hand)",
        ),
        Counted(
            "falsified",
            "弄虚作假数",
            "each case.verified (v2) finding the department's result falsified",
        ),
        *_RATINGS,
        *_CALLBACKS,
    ),
    "area": (
        Counted("reported", "上报数", "case.reported"),
        Counted("merged", "合并上报数", "each case.merged (further reports of a case)"),
        Counted("accepted", "立案数", "case.accepted"),
        Counted("rejected", "不予立案数", "case.rejected"),
        Counted("closed", "结案数", "the first case.closed"),
        Counted("closed_on_time", "按期结案数", "the first case.closed, on time"),
        Counted("failed_verifications", "核查不通过数", "each case.verified that failed"),
        Counted("falsifications", "弄虚作假数", "each case.verified marked falsified"),
        Counted(
            "discovered",
            "主动发现数",
            "case.accepted of a case first reported by a supervisor (their own patrol report, "
            "before any resident's)",
        ),
        Counted(
            "dispatches",
            "派遣数",
            "each case.dispatched sending the case to a unit (initial, manual, redispatch, "
            "split; not rework)",
        ),
        Counted(
            "misdispatches",
            "派遣退回数",
            "the case.dispatched of a task the unit later returned (退回)",
        ),
        *_RATINGS,
        *_CALLBACKS,
    ),
    "person": (
        Counted("reports", "上报数", "each case.reported / case.merged of the supervisor"),
        Counted(
            "valid_reports",
            "有效上报数",
            "the supervisor's case.reported (the time of the report) once the case is accepted",
        ),
        Counted(
            "missed",
            "漏报数",
            "case.accepted in a cell of the supervisor (primary, supervisors.csv) that was "
            "first reported by someone else",
        ),
        Counted("confirmation_tasks", "核实任务数", "case.verification_assigned (confirmation)"),
        Counted("confirmations", "核实数", "case.confirmed"),
        Counted("confirmations_on_time", "按时核实数", "case.confirmed, on time"),
        Counted("verification_tasks", "核查任务数", "case.verification_assigned (verification)"),
        Counted("verifications", "核查数", "case.verified"),
        Counted("verifications_on_time", "按时核查数", "case.verified, on time"),
        Counted(
            "missed_first_responses",
            "首问未及时响应数",
            "each case.overdue of the person's confirmation or verification",
        ),
        Counted("decisions", "受理数", "case.accepted / case.rejected by the operator"),
        Counted("accepted_cases", "立案数", "case.accepted by the operator"),
        Counted("rejected_cases", "不予立案数", "case.rejected by the operator"),
        Counted(
            "cell_cases",
            "责任网格立案数",
            "case.accepted in a cell of the supervisor (primary, supervisors.csv)",
        ),
        Counted(
            "verifications_on_site",
            "按时现场核查数",
            "case.verified on time, given within on_site_radius_m (scoring.yaml) of the "
            "case's location",
        ),
        Counted(
            "dispatches",
            "派遣数",
            "each case.dispatched the dispatcher made by hand (manual, redispatch, split)",
        ),
        Counted("misdispatches", "派遣退回数", "those of them the unit later returned (退回)"),
        *_RATINGS,
    ),
    "category": (),
    # the day's flow per channel (patrol, hotline, video, web) for the wall screen (大屏)
    "channel": (
        Counted("reported", "上报数", "the first case.reported (the case's channel)"),
        Counted("accepted", "立案数", "case.accepted"),
        Counted("dispatched", "派遣数", "the case's first case.dispatched"),
        Counted("closed", "结案数", "the first case.closed"),
        Counted(
            "overdue",
            "超期数",
            "the case's first case.overdue (stage handling) not withdrawn "
            "(case.overdue_withdrawn), or its first late result",
        ),
    ),
}

RATES: Mapping[SubjectKind, tuple[Rate, ...]] = {
    "department": (
        Rate("handling_rate", "处置率", ("handled",), "to_handle"),
        Rate("overdue_rate", "超期率", ("overdue",), "to_handle"),
        Rate("on_time_rate", "按期处置率", ("handled_on_time",), "handled"),
        Rate("rework_rate", "返工率", ("reworked",), "handled"),
        Rate("sign_in_on_time_rate", "按时签收率", ("signed_on_time",), "dispatched"),
        _SATISFACTION,
        _CALLBACK_RATE,
    ),
    "area": (
        Rate("acceptance_rate", "立案率", ("accepted",), "reported"),
        Rate("closure_rate", "结案率", ("closed",), "accepted"),
        Rate("on_time_closure_rate", "按期结案率", ("closed_on_time",), "closed"),
        Rate("discovery_rate", "主动发现率", ("discovered",), "accepted"),
        Rate("dispatch_accuracy", "派遣准确率", ("misdispatches",), "dispatches", complement=True),
        _SATISFACTION,
        _CALLBACK_RATE,
    ),
    "person": (
        Rate("valid_report_rate", "有效上报率", ("valid_reports",), "reports"),
        Rate(
            "on_time_confirmation_rate",
            "按时核实率",
            ("confirmations_on_time",),
            "confirmation_tasks",
        ),
        Rate(
            "on_time_verification_rate",
            "按时核查率",
            ("verifications_on_time",),
            "verification_tasks",
        ),
        Rate(
            "on_site_verification_rate",
            "按时现场核查率",
            ("verifications_on_site",),
            "verification_tasks",
        ),
        Rate("missed_report_rate", "漏报率", ("missed",), "cell_cases"),
        Rate("dispatch_accuracy", "派遣准确率", ("misdispatches",), "dispatches", complement=True),
        _SATISFACTION,
    ),
    "category": (),
    "channel": (),
}

_HANDLING = Distribution(
    "handling_hours",
    "处置用时（小时）",
    "the first case.handled of the department: hours since its first case.dispatched",
)
DISTRIBUTIONS: Mapping[SubjectKind, tuple[Distribution, ...]] = {
    "department": (
        _HANDLING,
        Distribution(
            "sign_hours",
            "签收用时（小时）",
            "the first case.signed: hours since the department's first case.dispatched",
        ),
    ),
    "area": (
        Distribution(
            "accept_hours", "受理用时（小时）", "case.accepted: hours since the first case.reported"
        ),
        Distribution(
            "dispatch_hours",
            "派遣用时（小时）",
            "the first case.dispatched: hours since case.accepted",
        ),
    ),
    "person": (
        Distribution(
            "queue_hours",
            "待派遣用时（小时）",
            "each case.dispatched the dispatcher made from the manual queue: hours since the "
            "case's case.queued",
        ),
        Distribution(
            "verify_hours",
            "核查用时（小时）",
            "each case.verified of the supervisor: hours since the verification task was "
            "assigned (case.verification_assigned)",
        ),
    ),
    "category": (_HANDLING,),
    "channel": (),
}
# The loop's steps, each a distribution of one kind of subject (the wall screen's medians).
STEPS: tuple[tuple[str, SubjectKind, str], ...] = (
    ("accept", "area", "accept_hours"),
    ("dispatch", "area", "dispatch_hours"),
    ("sign", "department", "sign_hours"),
    ("handle", "department", "handling_hours"),
    ("verify", "person", "verify_hours"),
)


def counted_names(kind: SubjectKind) -> tuple[str, ...]:
    return tuple(c.name for c in COUNTED[kind])


def rate(kind: SubjectKind, name: str) -> Rate | None:
    return next((r for r in RATES[kind] if r.name == name), None)


def distribution_of(kind: SubjectKind, name: str) -> Distribution | None:
    """The distribution a statistic (`handling_hours_p90`) or its items (`handling_hours`)
    belong to."""
    return next((d for d in DISTRIBUTIONS[kind] if name == d.name or name in d.names()), None)


def stat_names(kind: SubjectKind) -> tuple[str, ...]:
    return tuple(n for d in DISTRIBUTIONS[kind] for n in d.names())


def output_names(kind: SubjectKind) -> tuple[str, ...]:
    """Every number a subject of this kind has: counts, rates, distribution statistics."""
    return (*counted_names(kind), *(r.name for r in RATES[kind]), *stat_names(kind))


def is_measure(kind: SubjectKind, name: str) -> bool:
    return name in counted_names(kind) or rate(kind, name) is not None or name in stat_names(kind)


def with_rates(
    kind: SubjectKind,
    counts: Mapping[str, float],
    values: Mapping[str, Sequence[float]] | None = None,
) -> dict[str, float | None]:
    """Every counted measure (0 when absent), every rate (None when undefined) and every
    distribution's statistics (from `values`: measure → the period's item values)."""
    out: dict[str, float | None] = {n: float(counts.get(n, 0.0)) for n in counted_names(kind)}
    for r in RATES[kind]:
        out[r.name] = r.of(counts)
    for d in DISTRIBUTIONS[kind]:
        out.update(d.of((values or {}).get(d.name, ())))
    return out


# Each measure's name in English, beside its Chinese label (the catalogue gives both; the
# console shows the reader's). Every measure has one (test_scoring_domain.py,
# test_every_measure_has_its_name_in_english).
ENGLISH: Mapping[str, str] = {
    "dispatched": "Dispatched",
    "to_handle": "To handle",
    "signed": "Signed",
    "signed_on_time": "Signed on time",
    "handled": "Handled",
    "handled_on_time": "Handled on time",
    "overdue": "Overdue",
    "reworked": "Reworked",
    "returned": "Returned",
    "extension_requests": "Extensions asked",
    "extensions": "Extensions granted",
    "escalations": "Escalations (督办)",
    "reminders": "Reminders (催办)",
    "falsified": "Falsified",
    "rated": "Rated",
    "very_satisfied": "Very satisfied (A)",
    "satisfied": "Satisfied (B)",
    "fair": "Fair (C)",
    "dissatisfied": "Dissatisfied (D)",
    "callbacks": "Call-backs",
    "callbacks_reached": "Call-backs reached",
    "reported": "Reported",
    "merged": "Merged reports",
    "accepted": "Accepted",
    "rejected": "Not accepted",
    "closed": "Closed",
    "closed_on_time": "Closed on time",
    "failed_verifications": "Verifications failed",
    "falsifications": "Falsifications",
    "discovered": "Found on patrol",
    "dispatches": "Dispatches",
    "misdispatches": "Returned dispatches",
    "reports": "Reports",
    "valid_reports": "Valid reports",
    "missed": "Missed",
    "confirmation_tasks": "Confirmation tasks",
    "confirmations": "Confirmations",
    "confirmations_on_time": "Confirmed on time",
    "verification_tasks": "Verification tasks",
    "verifications": "Verifications",
    "verifications_on_time": "Verified on time",
    "missed_first_responses": "First responses missed",
    "decisions": "Decisions",
    "accepted_cases": "Accepted",
    "rejected_cases": "Not accepted",
    "cell_cases": "Cases in own cells",
    "verifications_on_site": "Verified on site on time",
    "handling_rate": "Handling rate",
    "overdue_rate": "Overdue rate",
    "on_time_rate": "On-time rate",
    "rework_rate": "Rework rate",
    "sign_in_on_time_rate": "Signed on time rate",
    "satisfaction_rate": "Satisfaction rate",
    "callback_reached_rate": "Call-back reach rate",
    "acceptance_rate": "Acceptance rate",
    "closure_rate": "Closure rate",
    "on_time_closure_rate": "On-time closure rate",
    "discovery_rate": "Discovery rate",
    "dispatch_accuracy": "Dispatch accuracy",
    "valid_report_rate": "Valid report rate",
    "on_time_confirmation_rate": "On-time confirmation rate",
    "on_time_verification_rate": "On-time verification rate",
    "on_site_verification_rate": "On-site verification rate",
    "missed_report_rate": "Missed report rate",
    "handling_hours": "Handling time (h)",
    "sign_hours": "Sign-in time (h)",
    "accept_hours": "Acceptance time (h)",
    "dispatch_hours": "Dispatch time (h)",
    "queue_hours": "Manual queue time (h)",
    "verify_hours": "Verification time (h)",
}
