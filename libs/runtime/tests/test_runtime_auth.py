"""Bearer JWT authentication and role checks (no network)."""

from __future__ import annotations

import time

import jwt
import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from gridloop_runtime.auth import (
    Authenticator,
    AuthSettings,
    Principal,
    current_principal,
    issue_token,
    principal_from_claims,
    require,
)
from gridloop_runtime.commands import install_refusal_handler

SETTINGS = AuthSettings.model_validate(
    {
        "JWT_SECRET": "s3cret-long-enough-for-hs256-keys-0001",
        "JWT_ISSUER": "iss",
        "JWT_AUDIENCE": "aud",
    }
)


def make_app(mode: str = "jwt") -> TestClient:
    app = FastAPI()
    install_refusal_handler(app)
    settings = SETTINGS.model_copy(update={"mode": mode})
    users = {"sup-1": Principal("sup-1", frozenset({"supervisor"}), territory=("110101001",))}
    app.state.authenticator = Authenticator(settings, users.get)

    @app.get("/whoami")
    def whoami(p: Principal = Depends(current_principal)) -> dict[str, object]:
        return {"user": p.user_id, "roles": sorted(p.roles), "territory": list(p.territory)}

    @app.post("/dispatch")
    def dispatch(p: Principal = Depends(require("dispatcher"))) -> dict[str, str]:
        return {"by": p.user_id}

    return TestClient(app)


def bearer(**kw: object) -> dict[str, str]:
    return {"Authorization": "Bearer " + issue_token(SETTINGS, **kw)}  # type: ignore[arg-type]


def test_valid_token_names_the_caller() -> None:
    r = make_app().get(
        "/whoami", headers=bearer(user_id="op-1", roles=["operator"], territory=["110101"])
    )
    assert r.status_code == 200
    assert r.json() == {"user": "op-1", "roles": ["operator"], "territory": ["110101"]}


# Built when the tests are collected, run perhaps minutes later: tokens meant to be valid
# apart from their flaw expire in a day, so only the flaw is judged.
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-a-jwt"},
        {
            "Authorization": "Bearer "
            + jwt.encode(
                {"sub": "x", "exp": int(time.time()) + 86400, "iss": "iss", "aud": "aud"},
                "wrong-key-long-enough-for-hs256-0000001",
                algorithm="HS256",
            )
        },
        {
            "Authorization": "Bearer "
            + jwt.encode(
                {"sub": "x", "exp": int(time.time()) - 60, "iss": "iss", "aud": "aud"},
                "s3cret-long-enough-for-hs256-keys-0001",
                algorithm="HS256",
            )
        },
        {
            "Authorization": "Bearer "
            + jwt.encode(
                {"sub": "x", "exp": int(time.time()) + 86400, "iss": "other", "aud": "aud"},
                "s3cret-long-enough-for-hs256-keys-0001",
                algorithm="HS256",
            )
        },
        {"X-User": "sup-1"},
    ],
    ids=[
        "missing",
        "garbage",
        "bad-signature",
        "expired",
        "wrong-issuer",
        "x-user-outside-dev-mode",
    ],
)
def test_bad_credentials_are_refused_naming_the_header(
    headers: dict[str, str], request: pytest.FixtureRequest
) -> None:
    r = make_app().get("/whoami", headers=headers)
    assert r.status_code == 401
    detail = r.json()["detail"][0]
    assert detail["field"] in ("Authorization", "X-User")
    why = {"bad-signature": "Signature", "expired": "expired", "wrong-issuer": "issuer"}
    case = request.node.callspec.id
    if case in why:
        assert why[case].lower() in detail["reason"].lower(), detail


def test_role_is_enforced() -> None:
    client = make_app()
    ok = client.post("/dispatch", headers=bearer(user_id="d-1", roles=["dispatcher"]))
    assert ok.status_code == 200 and ok.json() == {"by": "d-1"}
    refused = client.post("/dispatch", headers=bearer(user_id="op-1", roles=["operator"]))
    assert refused.status_code == 403
    assert refused.json()["detail"][0]["code"] == "forbidden"
    admin = client.post("/dispatch", headers=bearer(user_id="a", roles=["admin"]))
    assert admin.status_code == 200


def test_dev_mode_accepts_x_user_from_the_city() -> None:
    client = make_app("dev")
    r = client.get("/whoami", headers={"X-User": "sup-1"})
    assert r.status_code == 200 and r.json()["roles"] == ["supervisor"]
    assert client.get("/whoami", headers={"X-User": "nobody"}).status_code == 401


def test_territory_prefix_covers_the_hierarchy() -> None:
    p = Principal("s", frozenset({"supervisor"}), territory=("110101001002",))
    assert p.covers("1101010010020007")  # a cell of that community
    assert not p.covers("1101010010030001")
    assert Principal("e", frozenset({"evaluator"}), territory=("*",)).covers("anything")


@pytest.mark.parametrize(
    "claim",
    [None, [], "", [""], ["  "], {"cells": ["*"]}, 42],
    ids=["absent", "empty", "blank", "blank-code", "spaces", "object", "number"],
)
def test_a_token_without_a_territory_reaches_no_territory(claim: object) -> None:
    """Fail closed: no territory (or none usable) is not the whole district."""
    claims: dict[str, object] = {"sub": "op-1", "roles": ["operator", "admin"]}
    if claim is not None:
        claims["territory"] = claim
    who = principal_from_claims(claims)
    assert who.territory == ()
    assert not who.covers("1101010010020007", "110101001002", "110101001")
    # issued without one, a token carries no claim at all, and so reaches nothing either
    r = make_app().get("/whoami", headers=bearer(user_id="op-1", roles=["operator"]))
    assert r.status_code == 200 and r.json()["territory"] == []
    assert Principal("x", frozenset({"evaluator"})).territory == ()


def test_a_territory_claim_is_taken_as_given() -> None:
    assert principal_from_claims({"sub": "s", "territory": "110101001"}).territory == ("110101001",)
    everywhere = principal_from_claims({"sub": "e", "territory": ["*"]})
    assert everywhere.covers("1101010010020007")
