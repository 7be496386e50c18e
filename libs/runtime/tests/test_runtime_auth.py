"""Bearer JWT authentication and role checks (no network)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

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


def test_keys_of_the_identity_provider_are_fetched_once_per_kid_off_the_event_loop() -> None:
    """With JWKS, the signing key of a new kid is fetched (in a thread, not on the event loop)
    and kept; the next requests with that kid verify without a fetch; a token with a kid the
    provider does not have is refused as 401."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()
    fetches: list[str] = []

    class Jwks(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fetches.append(threading.current_thread().name)
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Jwks)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings = AuthSettings.model_validate(
            {
                "JWT_JWKS_URL": f"http://127.0.0.1:{server.server_port}/jwks",
                "JWT_ALGORITHMS": "RS256",
                "JWT_ISSUER": "iss",
                "JWT_AUDIENCE": "aud",
            }
        )
        app = FastAPI()
        install_refusal_handler(app)
        auth = Authenticator(settings)
        assert auth._jwks is not None
        fetch = auth._jwks.get_signing_key_from_jwt
        on_loop: list[bool] = []

        def watched(token: str) -> Any:
            try:
                asyncio.get_running_loop()
                on_loop.append(True)
            except RuntimeError:
                on_loop.append(False)
            return fetch(token)

        auth._jwks.get_signing_key_from_jwt = watched  # type: ignore[method-assign,assignment]
        app.state.authenticator = auth

        @app.get("/whoami")
        def whoami(p: Principal = Depends(current_principal)) -> dict[str, object]:
            return {"user": p.user_id}

        def token(kid: str) -> dict[str, str]:
            claims = {"sub": "op-1", "iss": "iss", "aud": "aud", "exp": int(time.time()) + 60}
            signed = jwt.encode(claims, private, algorithm="RS256", headers={"kid": kid})
            return {"Authorization": f"Bearer {signed}"}

        client = TestClient(app)
        for _ in range(3):
            r = client.get("/whoami", headers=token("k1"))
            assert r.status_code == 200, r.text
            assert r.json() == {"user": "op-1"}
        assert len(fetches) == 1  # once for kid k1
        assert on_loop == [False]  # in a worker thread, never on the event loop
        r = client.get("/whoami", headers=token("k-unknown"))
        assert r.status_code == 401 and r.json()["detail"][0]["field"] == "Authorization"
    finally:
        server.shutdown()
