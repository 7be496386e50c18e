"""The measures a command centre holds people to account with (issue 22), each on hand-built
histories with its value worked out by hand: falsification and the Jinhua deduction, overdue
rate, handling time (mean, median, p90) per department and category, dispatch accuracy,
discovery rate, missed-report rate, on-site verification within its limit, manual reminders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from gridloop_city.models import RuleSet, ScoringRule
from gridloop_contracts import Actor, Location
from gridloop_contracts import cases as ev
from gridloop_scoring.domain.facts import Fact, fact_of
from gridloop_scoring.domain.fold import FoldContext, Item, distance_m, fold_all
from gridloop_scoring.domain.measures import DISTRIBUTIONS, Distribution, nearest_rank, with_rates
from gridloop_scoring.domain.rules import score, term

T0 = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # Monday 10:00 in Beijing
H = timedelta(hours=1)
CELL, CELL2 = "1101010010010001", "1101010020010001"
SUP, BACKUP, SUP2 = "sup-001", "sup-002", "sup-020"
CTX = FoldContext(
    cells={CELL: ("110101001001", "110101001"), CELL2: ("110101002001", "110101002")},
    roster={CELL: (SUP, BACKUP), CELL2: (SUP2, "sup-021")},
    on_site_radius_m=150.0,
)
HERE = Location(lat=39.9160, lon=116.4010)  # the cases' place
KM_AWAY = Location(lat=39.9250, lon=116.4010)  # about a kilometre north
DISPATCHER = Actor(id="disp-01", role="dispatcher")
LEAD = Actor(id="lead-01", role="shift-leader")
PHOTO = {"url": "https://evidence.example.org/f.jpg", "kind": "photo"}


class Case:
    """One case's events as facts."""

    def __init__(self, n: int, cell: str = CELL, category: str = "E0102") -> None:
        self.case_id = f"C-{n}"
        self.cell = cell
        self.category = category
        self.facts: list[Fact] = []

    def add(self, model: type[ev.CaseEvent], at: datetime, **data: Any) -> Case:
        dims = {
            "case_id": self.case_id,
            "cell_code": self.cell,
            "category_code": self.category,
        }
        event = model(**{**dims, **data, "occurred_at": at})
        self.facts.append(fact_of("/test", f"{self.case_id}-{len(self.facts)}", event))
        return self

    def reported(self, at: datetime, by: str | None = None) -> Case:
        return self.add(
            ev.CaseReported,
            at,
            report_id=f"R-{self.case_id}-{len(self.facts)}",
            channel="patrol" if by else "hotline",
            source="patrol-app" if by else "12345",
            description="垃圾",
            reported_at=at,
            reporter_user_id=by,
        )

    def accepted(self, at: datetime) -> Case:
        return self.add(ev.CaseAccepted, at, description="垃圾", location=HERE)

    def dispatched(self, at: datetime, dept: str = "sanitation", **kw: Any) -> Case:
        kw.setdefault("task_id", f"{self.case_id}-T1")
        return self.add(ev.CaseDispatched, at, dept=dept, deadline=at + 8 * H, **kw)

    def handled(self, at: datetime, dept: str = "sanitation", **kw: Any) -> Case:
        return self.add(ev.CaseHandled, at, dept=dept, result="已清运", completed_at=at, **kw)


def items_of(*cases: Case) -> list[Item]:
    return fold_all([f for c in cases for f in c.facts], CTX)


def sums(items: list[Item], kind: str) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for i in items:
        if i.subject_kind == kind:
            m = out.setdefault(i.subject_code, {})
            m[i.measure] = m.get(i.measure, 0.0) + i.value
    return out


def values(items: list[Item], kind: str, code: str) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for i in items:
        if (i.subject_kind, i.subject_code) == (kind, code):
            out.setdefault(i.measure, []).append(i.value)
    return out


def measures(items: list[Item], kind: Any, code: str) -> dict[str, float | None]:
    return with_rates(kind, sums(items, kind).get(code, {}), values(items, kind, code))


# -- falsification (弄虚作假) --------------------------------------------------------------
def falsified_case(n: int, by: Actor, supervisor: str = SUP) -> Case:
    c = Case(n).reported(T0).accepted(T0 + H).dispatched(T0 + 2 * H).handled(T0 + 3 * H)
    return c.add(
        ev.CaseVerifiedV2,
        T0 + 4 * H,
        actor=by,
        dept="sanitation",
        passed=False,
        supervisor_id=supervisor,
        notes="照片非本处",
        falsified=True,
        falsification={
            "notes": "照片非本处",
            "evidence": [PHOTO],
            "marked_by": by.id,
            "role": by.role,
        },
    )


def test_a_falsified_result_counts_against_the_department_and_the_area() -> None:
    on_site = falsified_case(1, Actor(id=SUP, role="supervisor"))
    reviewed = falsified_case(2, LEAD)
    items = items_of(on_site, reviewed)
    area, dept = sums(items, "area")[CELL], sums(items, "department")["sanitation"]
    assert (area["falsifications"], area["failed_verifications"]) == (2.0, 2.0)
    assert dept["falsified"] == 2.0
    # the supervisor's verdict is theirs; the shift leader's review is not a verification
    person = sums(items, "person")[SUP]
    assert person["verifications"] == 1.0


def test_the_jinhua_deduction_for_falsification_applies() -> None:
    """A sub-district with two cases, both closed on time and rated satisfied, one of them
    found falsified once before: 50 + 20 − 1 (falsified, also a failed verification: −0.2)
    + 30 = 98.8."""
    jinhua = RuleSet(
        code="jinhua",
        name="金华",
        subject="area",
        rules=(
            ScoringRule(
                measure="on_time_closure_rate",
                kind="threshold",
                at_least=0.7,
                points=50,
                per_point_below=1,
            ),
            ScoringRule(
                measure="closure_rate",
                kind="threshold",
                at_least=0.9,
                points=20,
                per_point_below=1,
            ),
            ScoringRule(
                measure="failed_verifications",
                kind="deduction",
                each=0.2,
                from_count=3,
                each_after=0.5,
            ),
            ScoringRule(measure="falsifications", kind="deduction", each=1.0),
            ScoringRule(measure="satisfaction_rate", kind="weighted", weight=30),
        ),
    )
    bad = falsified_case(1, Actor(id=SUP, role="supervisor"))
    good = Case(2).reported(T0).accepted(T0 + H).dispatched(T0 + 2 * H).handled(T0 + 3 * H)
    for c in (bad, good):
        c.add(ev.CaseClosed, T0 + 6 * H, closed_by=SUP, on_time=True)
        c.add(ev.CaseRated, T0 + 7 * H, rating="satisfied")
    m = measures(items_of(bad, good), "area", CELL)
    total, terms = score(jinhua, m)
    assert [round(t.points, 4) for t in terms] == [50.0, 20.0, -0.2, -1.0, 30.0]
    assert total == pytest.approx(98.8)


# -- departments: overdue rate, handling time ------------------------------------------------
def test_overdue_rate_is_overdue_over_cases_to_handle() -> None:
    """Four cases to handle, one overdue (its deadline passed before the result):
    超期率 = 1 / 4 = 0.25."""
    cases = [
        Case(n).accepted(T0).dispatched(T0 + H).handled(T0 + (3 if n else 12) * H) for n in range(4)
    ]
    m = measures(items_of(*cases), "department", "sanitation")
    assert (m["to_handle"], m["overdue"], m["overdue_rate"]) == (4.0, 1.0, 0.25)


def test_handling_time_mean_median_and_p90_per_department_and_category() -> None:
    """Results 1, 2, 3, 4 and 10 hours after dispatch (two categories): the department's
    mean (1+2+3+4+10)/5 = 4, median the 3rd of 5 = 3, p90 the ⌈4.5⌉ = 5th = 10; category
    E0102 (1, 2, 10): mean 13/3, median 2, p90 the 3rd = 10; E0104 (3, 4): mean 3.5,
    median the 1st = 3, p90 the 2nd = 4."""
    hours = {0: (1, "E0102"), 1: (2, "E0102"), 2: (3, "E0104"), 3: (4, "E0104"), 4: (10, "E0102")}
    cases = [
        Case(n, category=cat).accepted(T0).dispatched(T0).handled(T0 + h * H)
        for n, (h, cat) in hours.items()
    ]
    items = items_of(*cases)
    dept = measures(items, "department", "sanitation")
    assert (
        dept["handling_hours_count"],
        dept["handling_hours_avg"],
        dept["handling_hours_median"],
        dept["handling_hours_p90"],
    ) == (5.0, 4.0, 3.0, 10.0)
    e0102 = measures(items, "category", "E0102")
    assert e0102["handling_hours_count"] == 3.0
    assert e0102["handling_hours_avg"] == pytest.approx(13 / 3, abs=1e-4)
    assert (e0102["handling_hours_median"], e0102["handling_hours_p90"]) == (2.0, 10.0)
    e0104 = measures(items, "category", "E0104")
    assert (e0104["handling_hours_avg"], e0104["handling_hours_median"]) == (3.5, 3.0)
    assert e0104["handling_hours_p90"] == 4.0


def test_a_rework_does_not_add_a_handling_time() -> None:
    c = Case(1).accepted(T0).dispatched(T0).handled(T0 + 2 * H)
    c.add(ev.CaseReworked, T0 + 3 * H, dept="sanitation", count=1, reason="仍有")
    c.dispatched(T0 + 3 * H, kind="rework").handled(T0 + 9 * H)
    assert values(items_of(c), "department", "sanitation")["handling_hours"] == [2.0]


def test_nearest_rank_percentiles() -> None:
    assert nearest_rank([], 0.9) is None
    assert nearest_rank([7.0], 0.9) == 7.0
    ten = [float(x) for x in range(1, 11)]
    assert (nearest_rank(ten, 0.5), nearest_rank(ten, 0.9)) == (5.0, 9.0)
    d = Distribution("x", "x", "x")
    assert d.of([]) == {"x_count": 0.0, "x_avg": None, "x_median": None, "x_p90": None}


# -- areas: dispatch accuracy, discovery rate ----------------------------------------------
def test_dispatch_accuracy_is_the_share_of_dispatches_never_returned() -> None:
    """Four dispatches on three cases: one returned (then re-dispatched elsewhere, which
    stays): 派遣准确率 = 1 − 1/4 = 0.75; the dispatcher made two by hand, one returned: 0.5.
    A rework dispatch is no new dispatch."""
    a = Case(1).accepted(T0).dispatched(T0 + H)
    b = Case(2).accepted(T0).dispatched(T0 + H, actor=DISPATCHER, kind="manual")
    b.add(ev.CaseReturned, T0 + 2 * H, dept="sanitation", task_id="C-2-T1", reason="不是我们")
    b.dispatched(T0 + 3 * H, dept="urban-mgmt", task_id="C-2-T2", kind="redispatch")
    c = Case(3).accepted(T0).dispatched(T0 + H, actor=DISPATCHER, kind="manual")
    c.dispatched(T0 + 5 * H, kind="rework")
    items = items_of(a, b, c)
    area = measures(items, "area", CELL)
    assert (area["dispatches"], area["misdispatches"], area["dispatch_accuracy"]) == (
        4.0,
        1.0,
        0.75,
    )
    person = measures(items, "person", "disp-01")
    assert (person["dispatches"], person["misdispatches"], person["dispatch_accuracy"]) == (
        2.0,
        1.0,
        0.5,
    )


def test_discovery_rate_is_the_share_of_cases_supervisors_found_first() -> None:
    """Three accepted cases: two first reported by a supervisor on patrol (one of them then
    also called in by a resident), one by a resident first: 主动发现率 = 2/3."""
    a = Case(1).reported(T0, by=SUP).accepted(T0 + H)
    b = Case(2).reported(T0, by=BACKUP).accepted(T0 + H)
    b.add(ev.CaseMerged, T0 + 2 * H, report_id="R-9", source="12345", channel="hotline")
    c = Case(3).reported(T0).accepted(T0 + H)
    c.add(
        ev.CaseMerged,
        T0 + 2 * H,
        report_id="R-8",
        source="patrol-app",
        channel="patrol",
        reporter_user_id=SUP,
    )
    m = measures(items_of(a, b, c), "area", CELL)
    assert (m["accepted"], m["discovered"]) == (3.0, 2.0)
    assert m["discovery_rate"] == pytest.approx(2 / 3)


def test_the_steps_before_dispatch_are_timed() -> None:
    """Reported 10:00, accepted 10:30, dispatched 12:00: acceptance 0.5 h, dispatch 1.5 h."""
    c = Case(1).reported(T0).accepted(T0 + 0.5 * H).dispatched(T0 + 2 * H)
    v = values(items_of(c), "area", CELL)
    assert (v["accept_hours"], v["dispatch_hours"]) == ([0.5], [1.5])


# -- supervisors: missed reports, on-site verification --------------------------------------
def test_missed_report_rate_is_the_share_of_cases_in_their_cells_others_found() -> None:
    """Four cases accepted in sup-001's cell: the supervisor found two, the backup one, a
    resident one (the one missed): 漏报率 = 1/4. A case in another cell is not theirs."""
    found = [Case(n).reported(T0, by=SUP).accepted(T0 + H) for n in (1, 2)]
    backup = Case(3).reported(T0, by=BACKUP).accepted(T0 + H)
    resident = Case(4).reported(T0).accepted(T0 + H)
    elsewhere = Case(5, cell=CELL2).reported(T0).accepted(T0 + H)
    items = items_of(*found, backup, resident, elsewhere)
    m = measures(items, "person", SUP)
    assert (m["cell_cases"], m["missed"], m["missed_report_rate"]) == (4.0, 1.0, 0.25)
    assert measures(items, "person", SUP2)["missed_report_rate"] == 1.0


@pytest.mark.parametrize(
    ("position", "hours", "on_site"),
    [
        (HERE, 1, True),  # at the place, in time
        (KM_AWAY, 1, False),  # in time, but a kilometre away
        (HERE, 5, False),  # at the place, after the 4-hour limit
        (None, 1, False),  # no position: not shown to be on site
    ],
)
def test_on_site_verification_is_in_time_and_at_the_place(
    position: Location | None, hours: float, on_site: bool
) -> None:
    c = Case(1).accepted(T0).dispatched(T0).handled(T0 + H)
    c.add(ev.CaseVerificationAssigned, T0 + H, supervisor_id=SUP, due=T0 + 5 * H)
    c.add(
        ev.CaseVerified,
        T0 + (1 + hours) * H,
        supervisor_id=SUP,
        passed=True,
        position=position,
        on_time=hours <= 4,
    )
    m = measures(items_of(c), "person", SUP)
    assert m["verifications_on_site"] == (1.0 if on_site else 0.0)
    assert m["on_site_verification_rate"] == (1.0 if on_site else 0.0)
    assert m["verify_hours_avg"] == hours


def test_on_site_rate_over_two_tasks_worked_by_hand() -> None:
    """Two verification tasks: one answered on time at the place, one on time from a
    kilometre away: 按时现场核查率 = 1/2; 按时核查率 stays 2/2."""
    cases = []
    for n, where in ((1, HERE), (2, KM_AWAY)):
        c = Case(n).accepted(T0).dispatched(T0).handled(T0 + H)
        c.add(ev.CaseVerificationAssigned, T0 + H, supervisor_id=SUP, due=T0 + 5 * H)
        c.add(ev.CaseVerified, T0 + 2 * H, supervisor_id=SUP, passed=True, position=where)
        cases.append(c)
    m = measures(items_of(*cases), "person", SUP)
    assert (m["on_time_verification_rate"], m["on_site_verification_rate"]) == (1.0, 0.5)


def test_the_distance_is_in_metres() -> None:
    here = (HERE.lat, HERE.lon)
    assert distance_m(here, here) == 0.0
    assert distance_m(here, (KM_AWAY.lat, KM_AWAY.lon)) == pytest.approx(1000.8, abs=1.0)


# -- reminders: automatic and by hand count alike -------------------------------------------
def test_reminders_by_hand_and_automatic_count_alike_for_the_department() -> None:
    c = Case(1).accepted(T0).dispatched(T0)
    task = {"dept": "sanitation", "task_id": "C-1-T1"}
    c.add(ev.CaseReminded, T0 + H, **task, stage="sign_in", manual=True, actor=DISPATCHER)
    c.add(ev.CaseReminded, T0 + 6 * H, **task, stage="handling")
    c.add(ev.CaseReminded, T0 + 7 * H, **task, stage="handling", manual=True, actor=LEAD)
    # a supervisor's verification reminder is not the department's
    c.add(ev.CaseReminded, T0 + 8 * H, stage="verification", supervisor_id=SUP)
    assert sums(items_of(c), "department")["sanitation"]["reminders"] == 3.0


def test_every_distribution_names_its_statistics() -> None:
    def named(d: Distribution) -> bool:
        stats = (f"{d.name}_count", f"{d.name}_avg", f"{d.name}_median", f"{d.name}_p90")
        return d.names() == stats

    assert all(named(d) for ds in DISTRIBUTIONS.values() for d in ds)


# -- channels: the wall screen's day ----------------------------------------------------------
def test_each_case_counts_once_per_step_under_the_channel_it_came_in_by() -> None:
    """A hotline case dispatched twice (returned once) and handled late, a patrol case closed:
    hotline reported 1, accepted 1, dispatched 1, overdue 1; patrol reported, accepted,
    dispatched and closed 1 each."""
    hotline = Case(1).reported(T0).accepted(T0 + H).dispatched(T0 + H)
    hotline.add(ev.CaseReturned, T0 + 2 * H, dept="sanitation", task_id="C-1-T1", reason="非")
    hotline.dispatched(T0 + 3 * H, dept="urban-mgmt", task_id="C-1-T2", kind="redispatch")
    hotline.handled(T0 + 20 * H, dept="urban-mgmt")  # 8 hours allowed: late
    patrol = Case(2).reported(T0, by=SUP).accepted(T0 + H).dispatched(T0 + H)
    patrol.handled(T0 + 2 * H).add(ev.CaseClosed, T0 + 3 * H, closed_by=SUP, on_time=True)
    sums_ = sums(items_of(hotline, patrol), "channel")
    assert sums_ == {
        "hotline": {"reported": 1.0, "accepted": 1.0, "dispatched": 1.0, "overdue": 1.0},
        "patrol": {"reported": 1.0, "accepted": 1.0, "dispatched": 1.0, "closed": 1.0},
    }


# -- rule sets for people -------------------------------------------------------------------
def test_a_monthly_minimum_and_a_ceiling_worked_by_hand() -> None:
    minimum = ScoringRule(
        measure="reports", kind="minimum", at_least=30, points=20, per_unit_below=1
    )
    assert term(minimum, 30.0) == 20.0
    assert term(minimum, 24.0) == 14.0  # six short
    assert term(minimum, None) == 0.0  # no reports at all: 30 short, never below 0
    ceiling = ScoringRule(
        measure="queue_hours_avg", kind="ceiling", at_most=0.5, points=40, per_unit_above=10
    )
    assert term(ceiling, 0.25) == 40.0
    assert term(ceiling, 2.5) == 20.0  # two hours over
    assert term(ceiling, None) == 40.0  # nothing waited: nothing lost
    with pytest.raises(ValueError, match="needs at_most"):
        ScoringRule(measure="x", kind="ceiling", points=1)


def test_people_rule_sets_rank_by_role_only() -> None:
    with pytest.raises(ValueError, match="only a rule set of people"):
        RuleSet(
            code="x",
            name="x",
            subject="department",
            roles=("dispatcher",),
            rules=(ScoringRule(measure="on_time_rate", kind="weighted", weight=1),),
        )
    with pytest.raises(ValueError, match="is not one of"):
        RuleSet(
            code="x",
            name="x",
            subject="person",
            roles=("mayor",),
            rules=(ScoringRule(measure="reports", kind="minimum", at_least=1, points=1),),
        )


def test_dispatchers_are_scored_on_accuracy_and_time_to_dispatch() -> None:
    """disp-01 placed two cases from the queue, after 1 h and 3 h, one of them returned:
    accuracy 1/2 → 30 of 60; mean wait 2 h, 1.5 h over half an hour → 40 − 15 = 25: 55."""
    dispatchers = RuleSet(
        code="dispatchers",
        name="派遣员",
        subject="person",
        roles=("dispatcher",),
        rules=(
            ScoringRule(measure="dispatch_accuracy", kind="weighted", weight=60),
            ScoringRule(
                measure="queue_hours_avg",
                kind="ceiling",
                at_most=0.5,
                points=40,
                per_unit_above=10,
            ),
        ),
    )
    cases = []
    for n, wait in ((1, 1), (2, 3)):
        c = Case(n).accepted(T0)
        c.add(ev.CaseQueued, T0, reason="无匹配规则", reason_code="unroutable")
        c.dispatched(T0 + wait * H, actor=DISPATCHER, kind="manual")
        cases.append(c)
    cases[1].add(ev.CaseReturned, T0 + 5 * H, dept="sanitation", task_id="C-2-T1", reason="非")
    m = measures(items_of(*cases), "person", "disp-01")
    assert (m["dispatch_accuracy"], m["queue_hours_avg"]) == (0.5, 2.0)
    total, _ = score(dispatchers, m)
    assert total == 55.0


# -- 通报 ------------------------------------------------------------------------------------
def test_the_bulletin_prints_rates_in_per_cent_and_escapes_names() -> None:
    from zoneinfo import ZoneInfo

    from gridloop_scoring.bulletin import Bulletin, Ranked, WorstCase, shown, to_csv, to_html

    bj = ZoneInfo("Asia/Shanghai")
    b = Bulletin(
        district="东城区",
        period_kind="month",
        start=datetime(2026, 11, 1, tzinfo=bj),
        end=datetime(2026, 12, 1, tzinfo=bj),
        generated_at=datetime(2026, 12, 1, 9, tzinfo=bj),
        departments=[
            Ranked(1, "x", "<b>环卫</b>", 88.25, "良", {"on_time_rate": 0.875, "to_handle": 8.0})
        ],
        subdistricts=[],
        worst=[WorstCase("C-9", "x", "环卫", {"overdue": 2, "falsified": 1})],
    )
    assert (shown("on_time_rate", 0.875), shown("to_handle", 8.0)) == ("87.5%", "8")
    assert (shown("handling_hours_p90", 13.54), shown("overdue_rate", None)) == ("13.5", "—")
    page = to_html(b)
    assert b.title == "东城区网格化城市管理2026年11月考核通报"
    assert "&lt;b&gt;环卫&lt;/b&gt;" in page and "<b>环卫" not in page
    assert "超期2次、弄虚作假1次" in page and "本期无数据" in page
    rows = to_csv(b).splitlines()
    assert "department,1,x,<b>环卫</b>,88.25,良,on_time_rate,0.875" in rows
    assert "worst_case,1,C-9,环卫,,,falsified,1" in rows
