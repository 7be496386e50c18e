"""Who may read which case (gridloop_runtime.access): territory, department, people named on
the case; pure, no I/O."""

from __future__ import annotations

import pytest
from gridloop_runtime import access
from gridloop_runtime.access import Reach, like_prefixes, may_read
from gridloop_runtime.auth import Principal

CELL = "1101010010010001"  # sub-district 110101001, community 110101001001
ELSEWHERE = "1101010020010001"
READERS = ("operator", "dispatcher", "grid-head")


def who(
    *roles: str, territory: tuple[str, ...] = (), dept: str | None = None, user: str = "u"
) -> Principal:
    return Principal(user, frozenset(roles), dept=dept, territory=territory)


def test_a_reader_reaches_the_cases_of_their_territory_only() -> None:
    head = who("grid-head", territory=(CELL,))
    assert may_read(head, READERS, cell_code=CELL)
    assert not may_read(head, READERS, cell_code=ELSEWHERE)
    office = who("operator", territory=("110101001",))
    assert may_read(office, READERS, cell_code=CELL)
    assert not may_read(office, READERS, cell_code=ELSEWHERE)
    assert may_read(who("dispatcher", territory=("*",)), READERS, cell_code=ELSEWHERE)


def test_no_territory_reaches_nothing_not_even_for_an_admin() -> None:
    for caller in (who("operator"), who("admin")):
        assert not may_read(caller, READERS, cell_code=CELL)
        assert Reach.of(caller, READERS).nothing
        assert Reach.of(caller, READERS).cell_patterns() == []
    assert may_read(who("admin", territory=("*",)), READERS, cell_code=CELL)
    # a case without a place is nobody's but the whole district's
    assert not may_read(who("operator", territory=("110101",)), READERS, cell_code=None)
    assert may_read(who("operator", territory=("*",)), READERS, cell_code=None)


def test_a_role_that_is_not_a_reader_reaches_nothing_whatever_its_territory() -> None:
    assert not may_read(who("supervisor", territory=("*",)), READERS, cell_code=CELL)
    assert not may_read(who("department", dept="water", territory=("*",)), READERS, cell_code=CELL)


def test_department_staff_reach_their_departments_cases_where_the_service_lets_them() -> None:
    water = who("department", dept="water", territory=("*",))
    assert may_read(water, READERS, cell_code=CELL, depts=("water",), departments=True)
    assert may_read(water, READERS, cell_code=CELL, depts=("gas", "water"), departments=True)
    assert not may_read(water, READERS, cell_code=CELL, depts=("gas",), departments=True)
    assert not may_read(water, READERS, cell_code=CELL, depts=("water",))
    assert not may_read(who("department"), READERS, cell_code=CELL, depts=(None,), departments=True)
    assert Reach.of(water, READERS, departments=True) == Reach(None, dept="water")


def test_people_named_on_the_case_reach_it() -> None:
    sup = who("supervisor", user="sup-001")
    assert may_read(sup, READERS, cell_code=CELL, people=("sup-001", None))
    assert not may_read(sup, READERS, cell_code=CELL, people=("sup-002", None))


def test_list_reach_refuses_a_caller_of_no_reading_role_and_audits_it() -> None:
    with pytest.raises(access.RefusedRead) as refused:
        access.list_reach(who("department", dept="water"), READERS)
    assert refused.value.status == 403 and refused.value.code == "forbidden"
    assert access.list_reach(who("operator"), READERS).nothing  # a reader: empty lists


def test_an_out_of_reach_case_is_answered_as_unknown_and_the_trail_says_why() -> None:
    refused = access.out_of_reach("case", "C-7", who("grid-head", territory=(CELL,), user="gh"))
    assert (refused.status, refused.code, refused.field) == (404, "not-found", "case_id")
    assert refused.reason == "no case 'C-7'"
    assert refused.audit_code == "out-of-reach" and refused.case_id == "C-7"
    assert "gh" in refused.why and CELL in refused.why


def test_territory_codes_are_literal_prefixes_in_sql() -> None:
    assert like_prefixes(["110101001", "a_b%c\\"]) == ["110101001%", "a\\_b\\%c\\\\%"]
    assert like_prefixes([]) == []
