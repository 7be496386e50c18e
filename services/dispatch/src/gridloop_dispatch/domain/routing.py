"""派遣对象: who gets a case — the part's registered owner, else the routing rules (category ×
territory), else nobody: the manual dispatch queue (待人工派遣), with the reason."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from gridloop_city import City

Basis = Literal["part-owner", "routing", "candidate"]


@dataclass(frozen=True)
class Assignment:
    """The responsible unit (责任单位), its co-handlers (协办单位) and the lead (牵头单位)."""

    dept: str
    co_handlers: tuple[str, ...] = ()
    lead: str | None = None
    basis: Basis = "routing"


@dataclass(frozen=True)
class Unroutable:
    """No unit can be picked automatically: the case waits for a dispatcher."""

    reason: str


def candidates(
    city: City, category_code: str, cell_code: str, part_owner_dept: str | None
) -> list[Assignment]:
    """Every unit that could take the case, best first: a part's owner (CJ/T 214: the owner
    gets the case), then the routing rule's unit with its co-handlers and lead, then the
    units of the less specific rules that also match (for re-routing after a return)."""
    out: list[Assignment] = []
    category = city.category(category_code)
    # Only a part case goes to the part's owner: an event next to a bin is not the bin's.
    if part_owner_dept and category is not None and category.kind == "part":
        out.append(Assignment(part_owner_dept, basis="part-owner"))
    route = city.route(category_code, cell_code)
    if route is not None:
        out.append(Assignment(route.dept, route.co_handlers, route.lead, "routing"))
        out.extend(Assignment(d, basis="candidate") for d in route.candidates)
    seen: set[str] = set()
    unique = []
    for a in out:
        if a.dept not in seen:
            seen.add(a.dept)
            unique.append(a)
    return unique


def part_owner(city: City, part_code: str | None, stated_owner: str | None) -> str | None:
    """The registered owner of a part: what intake stated, else the city's parts register."""
    if stated_owner:
        return stated_owner
    part = city.part(part_code) if part_code else None
    return part.owner_dept if part else None


def route(
    city: City,
    category_code: str,
    cell_code: str,
    part_owner_dept: str | None = None,
    exclude: Iterable[str] = (),
) -> Assignment | Unroutable:
    """The first candidate not excluded (units that returned the case), or why there is none."""
    if city.category(category_code) is None:
        return Unroutable(f"类别 {category_code} 未配置 / unknown category {category_code}")
    if city.cell(cell_code) is None:
        return Unroutable(f"网格 {cell_code} 未配置 / unknown cell {cell_code}")
    found = candidates(city, category_code, cell_code, part_owner_dept)
    if not found:
        return Unroutable(
            f"无派遣规则：类别 {category_code} 在网格 {cell_code} / no routing rule for "
            f"{category_code} in {cell_code}"
        )
    excluded = set(exclude)
    for a in found:
        if a.dept not in excluded:
            # A co-handler that already returned the case is not asked again either.
            co = tuple(d for d in a.co_handlers if d not in excluded)
            lead = a.lead if a.lead is None or a.lead not in excluded else a.dept
            return Assignment(a.dept, co, lead, a.basis)
    tried = "、".join(sorted(excluded))
    return Unroutable(f"所有候选单位均已退回（{tried}）/ every candidate unit returned the case")


def check_units(city: City, dept: str, co_handlers: Iterable[str], lead: str | None) -> str | None:
    """What is wrong with a dispatcher's choice of units, or None (the field comes with it)."""
    if city.department(dept) is None:
        return f"dept: unknown department {dept!r}"
    co = list(co_handlers)
    for i, d in enumerate(co):
        if city.department(d) is None:
            return f"co_handlers.{i}: unknown department {d!r}"
        if d == dept:
            return f"co_handlers.{i}: the responsible unit cannot also co-handle"
        if d in co[:i]:
            return f"co_handlers.{i}: {d!r} is listed twice"
    if lead is not None and lead != dept and lead not in co:
        return "lead: the lead unit must be the responsible unit or one of the co-handlers"
    return None
