"""Role boundaries across the five running services (监督与指挥分离): supervision accepts,
verifies and closes; the command centre dispatches and chases; departments handle their own
cases only; supervisors verify only their cells; evaluators read scores; admins operate and
change data. Each action is tried by the callers who must be refused — wrong role, another
department's staff, a supervisor outside the cell, no token, an expired or forged token — with
the status and the reason they get, then by one caller who is allowed. Every refusal of a
command is in the owning service's audit trail."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from gridloop_city import City
from gridloop_devkit.launcher import Stack
from gridloop_devkit.testing import wait_for
from gridloop_runtime.auth import issue_token

from .conftest import Tokens

pytestmark = pytest.mark.asyncio(loop_scope="module")

NO_TOKEN: dict[str, str] = {}


@dataclass(frozen=True)
class Refused:
    """A caller who must be refused, and how."""

    kind: str
    headers: dict[str, str]
    status: int
    code: str
    field: str = "Authorization"


class World:
    def __init__(self, stack: Stack, city: City, tokens: Tokens) -> None:
        self.stack, self.city, self.t = stack, city, tokens
        self.http = httpx.AsyncClient(timeout=15)
        self.checked: list[str] = []

    async def call(
        self, method: str, service: str, path: str, headers: dict[str, str], body: Any = None
    ) -> httpx.Response:
        kwargs: dict[str, Any] = {"headers": headers}
        if method != "GET":
            kwargs["json"] = body if body is not None else {}
        return await self.http.request(method, self.stack.url(service) + path, **kwargs)

    async def get(self, service: str, path: str, as_user: str = "admin", **params: Any) -> Any:
        r = await self.http.get(
            self.stack.url(service) + path, headers=self.t.of(as_user), params=params
        )
        assert r.status_code == 200, (path, r.status_code, r.text)
        return r.json()

    def nobody(self, as_user: str) -> list[Refused]:
        """The callers every action refuses: no token, expired, forged (claiming admin)."""
        return [
            Refused("no token", NO_TOKEN, 401, "unauthenticated"),
            Refused("expired token", self.t.expired(as_user), 401, "unauthenticated"),
            Refused("forged token", self.t.forged(as_user), 401, "unauthenticated"),
        ]

    async def boundary(
        self,
        action: str,
        method: str,
        service: str,
        path: str,
        *,
        refused: list[Refused],
        allowed: str | None,
        body: Any = None,
        allowed_status: int = 200,
    ) -> httpx.Response | None:
        """Each refused caller gets its status naming code and field; then the allowed one
        passes (None: the allowed side is proved elsewhere)."""
        for who in refused:
            r = await self.call(method, service, path, who.headers, body)
            assert r.status_code == who.status, (action, who.kind, r.status_code, r.text)
            err = r.json()["detail"][0]
            assert (err["code"], err.get("field")) == (who.code, who.field), (action, who, err)
            assert err["reason"], (action, who.kind)
            self.checked.append(f"{action}: {who.kind} → {who.status} {who.code}")
        if allowed is None:
            return None
        r = await self.call(method, service, path, self.t.of(allowed), body)
        assert r.status_code == allowed_status, (action, allowed, r.status_code, r.text)
        self.checked.append(f"{action}: {allowed} → {allowed_status}")
        return r

    async def in_handling(self, dept: str, case_id: str, staff: str) -> None:
        """handling has the department's task: it hears case.dispatched after dispatch does,
        so a department acting the moment dispatch shows the task can be a step ahead."""

        async def known() -> bool:
            path = f"/departments/{dept}/cases/{case_id}"
            return (await self.call("GET", "handling", path, self.t.of(staff))).status_code == 200

        await wait_for(known, timeout=45, what=f"handling to have {case_id} for {dept}")

    async def status(self, case_id: str) -> str:
        return str((await self.get("intake", f"/cases/{case_id}", "op-01"))["status"])

    async def wait_status(self, case_id: str, *wanted: str, timeout: float = 45) -> str:
        async def reached() -> str | None:
            s = await self.status(case_id)
            return s if s in wanted else None

        return await wait_for(reached, timeout=timeout, what=f"{case_id} to be {wanted}")

    async def open311_case(self, cell: str, category: str, text: str) -> str:
        part = next(p for p in self.city.parts.values() if p.cell_code == cell)
        form = {
            "api_key": "demo-open311-key",
            "service_code": category,
            "lat": str(part.lat),
            "long": str(part.lon),
            "description": f"{text} {uuid.uuid4().hex[:6]}",
        }
        r = await self.http.post(self.stack.url("intake") + "/open311/v2/requests.json", data=form)
        assert r.status_code == 201, r.text
        return str(r.json()[0]["service_request_id"])


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(stack: Stack, city: City, tokens: Tokens) -> AsyncIterator[World]:
    w = World(stack, city, tokens)
    try:
        yield w
    finally:
        await w.http.aclose()


def open_cell(city: City) -> str:
    """A cell with supervisors and no entry list, as the e2e tests use."""
    return next(
        c
        for c in sorted(city.cells)
        if city.cells[c].entry_list is None and c.endswith("0021") and c in city.supervisors
    )


def department_user(city: City, dept: str) -> str:
    return next(u.id for u in city.users.values() if u.dept == dept and "department" in u.roles)


def supervisor_elsewhere(city: City, cell: str, allowed: set[str]) -> str:
    for u in sorted(city.users.values(), key=lambda u: u.id):
        outside = "*" not in u.territory and not any(cell.startswith(t) for t in u.territory)
        if "supervisor" in u.roles and u.id not in allowed and outside:
            return u.id
    raise AssertionError("no supervisor outside the cell")


async def test_each_role_boundary_is_enforced_by_the_service_that_owns_the_action(
    world: World, city: City
) -> None:
    w, t = world, world.t
    cell = open_cell(city)

    # -- intake: 立案 (accept) and reject belong to the operators ---------------------------
    case_id = await w.open311_case(cell, "E0302", "施工围挡占用人行道")
    other = await w.open311_case(cell, "E0106", "门前乱堆物料")
    assert other != case_id
    await w.wait_status(case_id, "pending_acceptance")
    await w.wait_status(other, "pending_acceptance")
    await w.boundary(
        "accept a report",
        "POST",
        "intake",
        f"/cases/{case_id}/accept",
        refused=[
            Refused("evaluator", t.of("eval-01"), 403, "forbidden"),
            Refused("department staff", t.of("water-ops"), 403, "forbidden"),
            Refused("dispatcher", t.of("disp-01"), 403, "forbidden"),
            *w.nobody("op-01"),
        ],
        allowed="op-01",
    )
    reason_code = (await w.get("intake", "/reject-reasons", "op-01"))[0]["code"]
    await w.boundary(
        "reject a report",
        "POST",
        "intake",
        f"/cases/{other}/reject",
        body={"reason_code": reason_code, "reason": "不属于受理范围"},
        refused=[
            Refused("supervisor", t.of(city.supervisors[cell].primary), 403, "forbidden"),
            Refused("department staff", t.of("water-ops"), 403, "forbidden"),
            *w.nobody("op-01"),
        ],
        allowed="op-01",
    )

    # -- dispatch: the command centre dispatches and chases -----------------------------------
    async def dispatched() -> dict[str, Any] | None:
        r = await w.http.get(w.stack.url("dispatch") + f"/cases/{case_id}", headers=t.of("disp-01"))
        if r.status_code != 200:
            return None
        case: dict[str, Any] = r.json()
        return case if case["tasks"] else None

    dispatch_case = await wait_for(dispatched, timeout=45, what="the case dispatched")
    dept = dispatch_case["tasks"][0]["dept"]
    staff, stranger = (
        department_user(city, dept),
        department_user(city, "water" if dept != "water" else "gas"),
    )
    chasers = [
        Refused("operator", t.of("op-01"), 403, "forbidden"),
        Refused("supervisor", t.of(city.supervisors[cell].primary), 403, "forbidden"),
        Refused("department staff", t.of(staff), 403, "forbidden"),
        Refused("evaluator", t.of("eval-01"), 403, "forbidden"),
    ]
    await w.boundary(
        "dispatch manually",
        "POST",
        "dispatch",
        f"/cases/{case_id}/dispatch",
        body={"dept": dept},
        refused=[*chasers, *w.nobody("disp-01")],
        allowed=None,  # an allowed manual dispatch is proved in services/dispatch/tests
    )
    await w.boundary(
        "chase (挂牌督办)",
        "POST",
        "dispatch",
        f"/cases/{case_id}/supervision",
        body={"reason": "群众反映强烈"},
        refused=[*chasers, *w.nobody("disp-01")],
        allowed="disp-01",
    )

    # -- handling: a department acts on its own cases only ------------------------------------
    await w.in_handling(dept, case_id, staff)
    path = f"/departments/{dept}/cases/{case_id}"
    not_department = [
        Refused("dispatcher", t.of("disp-01"), 403, "forbidden"),
        Refused("supervisor", t.of(city.supervisors[cell].primary), 403, "forbidden"),
        Refused("other department", t.of(stranger), 403, "wrong-department", "dept"),
    ]
    await w.boundary(
        "sign for a task",
        "POST",
        "handling",
        f"{path}/sign",
        refused=[*not_department, *w.nobody(staff)],
        allowed=staff,
    )
    await w.boundary(
        "return a task",
        "POST",
        "handling",
        f"{path}/return",
        body={"reason": "不属于本单位职责"},
        refused=[*not_department, *w.nobody(staff)],
        allowed=None,  # allowed returns are proved in services/handling/tests
    )
    proposed = (datetime.now(UTC) + timedelta(days=5)).isoformat()
    await w.boundary(
        "ask for an extension",
        "POST",
        "handling",
        f"{path}/extension",
        body={"reason": "需要协调施工单位", "proposed_deadline": proposed},
        refused=[*not_department, *w.nobody(staff)],
        allowed=staff,
    )

    async def extension() -> dict[str, Any] | None:
        pending = await w.get("dispatch", "/extensions", "disp-01", case_id=case_id)
        return pending[0] if pending else None

    request_id = (await wait_for(extension, timeout=45, what="the extension request"))["request_id"]
    await w.boundary(
        "decide an extension",
        "POST",
        "dispatch",
        f"/extensions/{request_id}/decision",
        body={"granted": True},
        refused=[*chasers, *w.nobody("disp-01")],
        allowed="disp-01",
    )
    await w.boundary(
        "report handled (处置反馈)",
        "POST",
        "handling",
        f"{path}/result",
        body={"result": "已拆除违规围挡", "evidence": [{"url": "https://evidence.example/r.jpg"}]},
        refused=[*not_department, *w.nobody(staff)],
        allowed=staff,
    )

    # -- verify: only the cell's supervisors verify, and passing closes -----------------------
    async def task() -> dict[str, Any] | None:
        for x in await w.get("verify", "/tasks", "admin", status="open", purpose="verification"):
            if x["case_id"] == case_id and x["supervisor_id"]:
                return dict(x)
        return None

    vt = await wait_for(task, timeout=45, what="the verification task")
    ab = city.supervisors[cell]
    assigned = {vt["supervisor_id"], ab.primary, ab.backup}
    outsider = supervisor_elsewhere(city, cell, assigned)
    verdict = {"passed": True, "notes": "现场核查", "photos": ["https://evidence.example/v.jpg"]}
    await w.boundary(
        "verify and close",
        "POST",
        "verify",
        f"/tasks/{vt['task_id']}/verification",
        body=verdict,
        refused=[
            Refused("supervisor outside the cell", t.of(outsider), 403, "not-assigned"),
            Refused("department staff", t.of(staff), 403, "separation-of-duties"),
            Refused("dispatcher", t.of("disp-01"), 403, "forbidden"),
            Refused("operator", t.of("op-01"), 403, "forbidden"),
            *w.nobody(vt["supervisor_id"]),
        ],
        allowed=vt["supervisor_id"],
    )
    await w.wait_status(case_id, "closed", "awaiting_approval")

    # -- verify: the shift leader's data (absences of supervisors) -----------------------------
    leave = {
        "user_id": vt["supervisor_id"],
        "starts_at": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
        "ends_at": (datetime.now(UTC) + timedelta(days=31)).isoformat(),
        "reason": "年休",
    }
    await w.boundary(
        "record an absence (city data)",
        "POST",
        "verify",
        "/absences",
        body=leave,
        refused=[
            Refused("supervisor", t.of(vt["supervisor_id"]), 403, "forbidden"),
            Refused("dispatcher", t.of("disp-01"), 403, "forbidden"),
            Refused("department staff", t.of(staff), 403, "forbidden"),
            *w.nobody("lead-01"),
        ],
        allowed="admin",
        allowed_status=201,
    )

    # -- scoring: published rankings for every signed-in person; evaluators publish ------------
    await w.boundary(
        "read rankings",
        "GET",
        "scoring",
        "/rankings?rule_set=department&period=month",
        refused=w.nobody("eval-01"),
        allowed="eval-01",
    )
    await w.boundary(
        "publish rankings",
        "POST",
        "scoring",
        "/publish",
        body={"period": "month"},
        refused=[
            Refused("department staff", t.of(staff), 403, "forbidden"),
            Refused("supervisor", t.of(vt["supervisor_id"]), 403, "forbidden"),
            Refused("dispatcher", t.of("disp-01"), 403, "forbidden"),
            *w.nobody("eval-01"),
        ],
        allowed="eval-01",
    )

    # per-person counters are personal: evaluators see everyone's, anyone else only their own
    everyone = [r["person"] for r in (await w.get("scoring", "/people/flags", "eval-01"))["rows"]]
    for person in (vt["supervisor_id"], "disp-01"):
        mine = [r["person"] for r in (await w.get("scoring", "/people/flags", person))["rows"]]
        assert mine == [p for p in everyone if p == person], (person, mine)
    w.checked.append("people flags: evaluator sees all; others only their own row")

    # -- operations: dead-letter replay (admins), the audit trail (admins and evaluators) -----
    for service in ("intake", "dispatch", "handling", "verify", "scoring"):
        r = await w.boundary(
            f"replay a dead letter ({service})",
            "POST",
            service,
            "/admin/dlq/987654/replay",
            refused=[
                Refused("evaluator", t.of("eval-01"), 403, "forbidden"),
                Refused("dispatcher", t.of("disp-01"), 403, "forbidden"),
                *w.nobody("admin"),
            ],
            allowed="admin",
            allowed_status=404,  # past the role check: there is no such dead letter
        )
        assert r is not None and r.json()["detail"][0]["field"] == "dead_letter_id"
        await w.boundary(
            f"read the audit trail ({service})",
            "GET",
            service,
            "/admin/audit",
            refused=[
                Refused("dispatcher", t.of("disp-01"), 403, "forbidden"),
                Refused("department staff", t.of(staff), 403, "forbidden"),
                *w.nobody("eval-01"),
            ],
            allowed="eval-01",
        )

    # -- every refusal above is in the audit trail of the service that refused it -----------
    trail = await w.get("handling", "/admin/audit", "eval-01", case_id=case_id, limit=1000)
    refusals = {(e["user_id"], e["code"]) for e in trail if e["outcome"] == "refused"}
    assert (stranger, "wrong-department") in refusals, refusals
    assert ("disp-01", "forbidden") in refusals and (None, "unauthenticated") in refusals
    accepted = [e for e in trail if e["outcome"] == "accepted"]
    assert {e["command"] for e in accepted} >= {"signed", "extension_requested", "handled"}
    assert all(e["user_id"] == staff and e["origin"].startswith("http:") for e in accepted)
    verify_trail = await w.get("verify", "/admin/audit", "admin", user=outsider)
    assert [e["code"] for e in verify_trail] == ["not-assigned"]
    assert verify_trail[0]["task_id"] == vt["task_id"]
    print(f"\n{len(w.checked)} role boundaries checked:\n  " + "\n  ".join(w.checked))


async def test_every_read_of_a_case_follows_the_territory_and_role_of_its_commands(
    world: World, city: City
) -> None:
    """Case ids are sequential: whoever may not act on a case must not read it either, in any
    service. A grid head or supervisor outside the cell, a dispatcher without a territory in
    the token, another department: each gets what an unknown id gets (404; 403 where the
    role reads nothing there), never the description, place, result, evidence or the
    supervisor's notes — and every such attempt is in the audit trail of the service."""
    w, t = world, world.t
    cell = open_cell(city)
    case_id = await w.open311_case(cell, "E0102", "门前乱堆物料")
    await w.wait_status(case_id, "pending_acceptance")
    r = await w.call("POST", "intake", f"/cases/{case_id}/accept", t.of("op-01"), {})
    assert r.status_code == 200, r.text

    async def dispatched() -> dict[str, Any] | None:
        r = await w.http.get(w.stack.url("dispatch") + f"/cases/{case_id}", headers=t.of("disp-01"))
        case: dict[str, Any] = r.json() if r.status_code == 200 else {}
        return case if case.get("tasks") else None

    dept = (await wait_for(dispatched, timeout=45, what="the case dispatched"))["tasks"][0]["dept"]
    staff = department_user(city, dept)
    stranger = department_user(city, "water" if dept != "water" else "gas")
    await w.in_handling(dept, case_id, staff)
    path = f"/departments/{dept}/cases/{case_id}"
    assert (await w.call("POST", "handling", f"{path}/sign", t.of(staff))).status_code == 200
    result = {"result": "已清理", "evidence": [{"url": "https://evidence.example/r.jpg"}]}
    r = await w.call("POST", "handling", f"{path}/result", t.of(staff), result)
    assert r.status_code == 200, r.text

    async def task() -> dict[str, Any] | None:
        for x in await w.get("verify", "/tasks", "admin", status="open", purpose="verification"):
            if x["case_id"] == case_id and x["supervisor_id"]:
                return dict(x)
        return None

    vt = await wait_for(task, timeout=45, what="the verification task")
    ab = city.supervisors[cell]
    outsider = supervisor_elsewhere(city, cell, {vt["supervisor_id"], ab.primary, ab.backup})
    head = next(
        u.id
        for u in sorted(city.users.values(), key=lambda u: u.id)
        if "grid-head" in u.roles and not any(cell.startswith(x) for x in u.territory)
    )
    no_territory = {
        "Authorization": "Bearer "
        + issue_token(t.auth, user_id="disp-02", roles=["dispatcher", "operator"])
    }

    # those who may act read it
    for service, read, user in (
        ("intake", f"/cases/{case_id}", "op-01"),
        ("dispatch", f"/cases/{case_id}", "disp-01"),
        ("handling", path, staff),
        ("verify", f"/cases/{case_id}", vt["supervisor_id"]),
        ("verify", f"/tasks/{vt['task_id']}", vt["supervisor_id"]),
    ):
        r = await w.call("GET", service, read, t.of(user))
        assert r.status_code == 200, (service, read, user, r.text)

    reads = [
        ("verify", f"/cases/{case_id}", t.of(head), 404, "head"),
        ("verify", f"/cases/{case_id}", t.of(outsider), 404, "outsider"),
        ("verify", f"/tasks/{vt['task_id']}", t.of(outsider), 404, "outsider"),
        ("verify", f"/cases/{case_id}", t.of(staff), 403, "staff"),
        ("intake", f"/cases/{case_id}", t.of(head), 404, "head"),
        ("intake", f"/cases/{case_id}/timeline", t.of(head), 404, "head"),
        ("intake", f"/cases/{case_id}", no_territory, 404, "disp-02"),
        ("intake", f"/cases/{case_id}", t.of(stranger), 404, "stranger"),
        ("dispatch", f"/cases/{case_id}", no_territory, 404, "disp-02"),
        ("handling", path, no_territory, 404, "disp-02"),
        ("handling", path, t.of(stranger), 403, "stranger"),
    ]
    for service, read, headers, status, label in reads:
        r = await w.call("GET", service, read, headers)
        assert r.status_code == status, (service, read, label, r.status_code, r.text)
        for secret in ("门前乱堆物料", "已清理", cell):
            assert secret not in r.text, (service, read, label, secret)
        w.checked.append(f"read {service} {read.split('/')[1]}: {label} → {status}")
    # lists and searches hold nothing of it for them
    found = await w.call("GET", "intake", "/cases?q=门前乱堆物料", t.of(head))
    assert case_id not in found.text
    queue = await w.call("GET", "dispatch", "/board?view=active", no_territory)
    assert queue.status_code == 200 and case_id not in queue.text
    inbox = await w.call("GET", "handling", f"/departments/{dept}/cases", no_territory)
    assert inbox.status_code == 200 and case_id not in inbox.text
    drill = await w.call(
        "GET",
        "scoring",
        f"/drilldown?subject_kind=department&subject={dept}&measure=handled",
        t.of(stranger),
    )
    assert drill.status_code == 403 and case_id not in drill.text

    # every refused read is in the audit trail of the service that refused it
    for service, who, code in (
        ("verify", head, "out-of-reach"),
        ("verify", outsider, "out-of-reach"),
        ("verify", staff, "forbidden"),
        ("intake", head, "out-of-reach"),
        ("intake", "disp-02", "out-of-reach"),
        ("dispatch", "disp-02", "out-of-reach"),
        ("handling", "disp-02", "out-of-reach"),
        ("handling", stranger, "wrong-department"),
        ("scoring", stranger, "forbidden"),
    ):
        trail = await w.get(service, "/admin/audit", "eval-01", user=who)
        reads_refused = [
            e for e in trail if e["command"].startswith("GET ") and e["outcome"] == "refused"
        ]
        assert code in {e["code"] for e in reads_refused}, (service, who, trail)
    print(f"\n{len(w.checked)} boundaries checked (reads included)")
