"""Who may read which case: the one rule every service applies to its reads of case data (one
case, a list, a timeline, tasks, evidence, exports), the same one its commands follow.

A service names its readers (the roles that read its records); this module adds where:

- a reader reaches the cases in their territory (the token's `territory`: cell, community or
  sub-district codes, `*` for the whole district; none reaches nothing — tokens fail closed).
  Admins hold every role, not every territory;
- department staff, where the service lets departments read, reach their department's cases
  (as responsible unit or co-handler), wherever they are;
- people named on a case (the supervisor holding its task, the cell's AB 角) reach it.

A case out of reach is answered exactly as one that does not exist (404), so ids cannot be
probed; the refusal is recorded in the audit trail with the real reason (audit.RefusedRead).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from gridloop_contracts.problems import Refusal

from .audit import RefusedRead
from .auth import Principal

__all__ = [
    "Reach",
    "RefusedRead",
    "forbidden",
    "like_prefixes",
    "list_reach",
    "may_read",
    "out_of_reach",
    "unknown",
]


def like_prefixes(prefixes: Iterable[str]) -> list[str]:
    """`LIKE` patterns matching codes that start with any of `prefixes` (for
    `column LIKE ANY($n::text[])`; an empty list matches nothing)."""
    out = []
    for p in prefixes:
        escaped = p.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        out.append(escaped + "%")
    return out


@dataclass(frozen=True)
class Reach:
    """The part of the case file a caller reads: the cases whose cell starts with one of
    `prefixes` (None: no territorial limit; empty: none) and, for department staff, only the
    cases of `dept` (wherever they are)."""

    prefixes: tuple[str, ...] | None = ()
    dept: str | None = None

    @classmethod
    def of(cls, who: Principal, readers: Collection[str], *, departments: bool = False) -> Reach:
        """What `who` reaches of a service read by `readers` (and by department staff for
        their own cases when `departments`). Nobody else reaches anything."""
        if who.has(*readers):
            return cls(None if "*" in who.territory else tuple(who.territory))
        if departments and "department" in who.roles and who.dept:
            return cls(None, dept=who.dept)
        return cls()

    @property
    def nothing(self) -> bool:
        return self.dept is None and self.prefixes == ()

    def sees(self, cell_code: str | None, depts: Iterable[str | None] = ()) -> bool:
        """Whether a case in `cell_code`, handled by `depts`, is within reach."""
        if self.dept is not None:
            return self.dept in depts
        if self.prefixes is None:
            return True
        if not cell_code:
            return False
        return any(cell_code.startswith(p) for p in self.prefixes)

    def cell_patterns(self) -> list[str] | None:
        """The territory as `LIKE` patterns of cell codes; None: no territorial filter."""
        return None if self.prefixes is None else like_prefixes(self.prefixes)


def list_reach(
    who: Principal, readers: Collection[str], *, departments: bool = False, what: str = "cases"
) -> Reach:
    """The reach of a list or search, which shows only what is within it; a caller of no
    reading role is refused (403, recorded). A reader without territory gets empty lists."""
    reach = Reach.of(who, readers, departments=departments)
    if reach.nothing and not who.has(*readers):
        raise forbidden(f"role {sorted(who.roles)} may not read {what}")
    return reach


def may_read(
    who: Principal,
    readers: Collection[str],
    *,
    cell_code: str | None,
    depts: Iterable[str | None] = (),
    people: Iterable[str | None] = (),
    departments: bool = False,
) -> bool:
    """Whether `who` may read one case: named on it (`people`), or within their reach."""
    if who.user_id in set(people):
        return True
    return Reach.of(who, readers, departments=departments).sees(cell_code, depts)


def unknown(what: str, key: str, *, field: str = "case_id") -> Refusal:
    """The answer to an id that does not exist: the very answer `out_of_reach` gives."""
    return Refusal(f"no {what} {key!r}", field=field, code="not-found", status=404)


def out_of_reach(
    what: str,
    key: str,
    who: Principal,
    *,
    field: str = "case_id",
    case_id: str | None = None,
    task_id: str | None = None,
    reason: str | None = None,
) -> RefusedRead:
    """The answer to a read of a case (or its task, report, archive entry) the caller may not
    see: 404 as for an unknown id (`reason`: the service's words for one, if not `unknown`'s);
    the audit trail says who tried and why."""
    where = ",".join(who.territory) or "none"
    return RefusedRead(
        reason or unknown(what, key, field=field).reason,
        why=(
            f"{what} {key} is out of reach of {who.user_id} (roles {sorted(who.roles)}, "
            f"dept {who.dept or '-'}, territory {where})"
        ),
        field=field,
        code="not-found",
        status=404,
        audit_code="out-of-reach",
        case_id=case_id if case_id is not None else (key if field == "case_id" else None),
        task_id=task_id,
    )


def forbidden(reason: str, *, field: str = "Authorization", code: str = "forbidden") -> RefusedRead:
    """A read the caller's role may not make at all (403: it confirms no id), recorded."""
    return RefusedRead(reason, why=reason, field=field, code=code, status=403)
