"""The residents' side without a login (公众): a public case's status and steps, and the
one-click rating link of a "closed" mail. Rate-limited per address like the public Open311
reads (RATE_LIMIT_PUBLIC_*)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from gridloop_contracts import Actor
from gridloop_contracts.common import LevelIn
from gridloop_runtime.commands import Refusal
from gridloop_runtime.inputs import JSONRoute
from gridloop_runtime.service import runtime_of
from pydantic import BaseModel, ConfigDict, Field

from . import repository as repo
from .api import intake_of, refusal
from .casework import on_case
from .domain.notices import RatingLink, read_rating_token
from .domain.problems import Problem, Refused
from .domain.publicview import public_timeline
from .store import RATINGS

router = APIRouter(prefix="/public", tags=["public"], route_class=JSONRoute)


@router.get("/cases/{case_id}")
async def public_case(case_id: str, request: Request) -> dict[str, Any]:
    """A case of Open311's public list as a resident sees it (公众查询): its status, category,
    description, the coordinates rounded as on the public list
    (INTAKE_OPEN311_PUBLIC_COORD_DECIMALS), its steps and when (no names, no notes, no
    reporters, not the department's result: that goes to the reporter in the "closed" mail
    and with its rating link), whether it is rated. Any other case is 404, as one that does
    not exist."""
    rt = runtime_of(request)
    intake = intake_of(rt)
    assert rt.pool is not None
    async with rt.pool.acquire() as conn:
        case = await repo.get_case(conn, case_id)
        if case is None or not case.listed_publicly:
            raise Refusal(f"no public case {case_id!r}", "case_id", "not-found", 404)
        lines = await repo.timeline(conn, case_id)
    category = intake.city.category(case.category_code) if case.category_code else None
    decimals = intake.settings.open311_public_coord_decimals
    return {
        "case_id": case.case_id,
        "status": case.status,
        "open": case.case_status.is_open,
        "category_code": case.category_code,
        "category_name": category.name if category else None,
        "category_name_en": category.name_en if category else None,
        "description": case.description,
        "address": case.address,
        "lat": round(case.lat, decimals),
        "lon": round(case.lon, decimals),
        "reported_at": case.reported_at,
        "closed_at": case.closed_at,
        "rated": case.rating is not None,
        "steps": [s.view() for s in public_timeline(dict(r) for r in lines)],
    }


def _link(request: Request, token: str) -> RatingLink:
    rt = runtime_of(request)
    secret = intake_of(rt).residents.link_secret
    try:
        return read_rating_token(secret, token, rt.clock.now())
    except Refused as refused:
        raise refusal(refused) from None


@router.get("/ratings/{token}")
async def rating_link(token: str, request: Request) -> dict[str, Any]:
    """What a rating link is for: the case, its category and result, and whether this
    closing is rated already (a link is used once)."""
    link = _link(request, token)
    rt = runtime_of(request)
    intake = intake_of(rt)
    assert rt.pool is not None
    async with rt.pool.acquire() as conn:
        case = await repo.get_case(conn, link.case_id)
        rated = await conn.fetchval(
            "SELECT rating FROM ratings WHERE case_id = $1 AND closed_at = $2",
            link.case_id,
            link.closed_at,
        )
    if case is None:
        raise Refusal("not a valid rating link", "token", "invalid-link", 404)
    category = intake.city.category(case.category_code) if case.category_code else None
    return {
        "case_id": case.case_id,
        "status": case.status,
        "category_code": case.category_code,
        "category_name": category.name if category else None,
        "category_name_en": category.name_en if category else None,
        "description": case.description,
        "result": case.result,
        "closed_at": link.closed_at,
        "current": case.closed_at == link.closed_at,
        "rated": rated,
    }


class LinkRatingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=10, max_length=1000)
    rating: LevelIn = Field(description="A 非常满意, B 满意, C 一般, D 不满意")
    comment: str | None = Field(None, max_length=1000)


@router.post("/ratings", status_code=201)
async def rate_by_link(body: LinkRatingIn, request: Request) -> dict[str, Any]:
    """满意度评价 by the link of a "closed" mail: no login, the signed link is the proof. It
    rates the closing it was sent for, once (409 `already-rated` after)."""
    link = _link(request, body.token)
    rt = runtime_of(request)
    intake = intake_of(rt)
    who = Actor(id=link.ref, role="reporter")

    def rule(state: Any, step: Any) -> dict[str, Any]:
        case = state.case
        if case is not None and case.closed_at is not None and case.closed_at != link.closed_at:
            raise Refused(
                Problem(
                    "token", "the case was reopened since this link was sent", "link-expired", 410
                )
            )
        return intake.rules.rate(
            state, step, who, rating=body.rating, comment=body.comment, via=f"mail:{link.ref}"
        )

    assert rt.uow is not None
    try:
        async with rt.uow() as work:
            return await on_case(work, RATINGS, link.case_id, rule)
    except Refused as refused:
        raise refusal(refused) from None
