"""Who is calling: bearer JWTs (OIDC-compatible) carrying user, roles, department and territory.

Every REST API takes `Authorization: Bearer <jwt>`. The token is checked against the
configured issuer and audience with a shared secret (HS256, development), a PEM public key,
or a JWKS URL (an OIDC provider). Roles are the domain's: operator, shift-leader,
dispatcher, supervisor, department, grid-head, evaluator, admin. Services decide what a
role may do (and access.py where: the caller's territory); this module only says who the
caller is. A token without a `territory` claim reaches no territory (it fails closed).

For local development `AUTH_MODE=dev` also accepts an `X-User: <user id>` header resolved
against the city's users; `make run` prints demo tokens for every role.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import jwt
from fastapi import Depends, Request
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from . import audit
from .commands import Refusal

ROLES = (
    "operator",
    "shift-leader",
    "dispatcher",
    "supervisor",
    "department",
    "grid-head",
    "evaluator",
    "admin",
)


class AuthSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    mode: Literal["jwt", "dev"] = Field("jwt", alias="AUTH_MODE")
    issuer: str = Field("gridloop-dev", alias="JWT_ISSUER")
    audience: str = Field("gridloop", alias="JWT_AUDIENCE")
    secret: str | None = Field(
        "gridloop-development-only-secret-change-me-in-production", alias="JWT_SECRET"
    )
    public_key: str | None = Field(None, alias="JWT_PUBLIC_KEY")
    jwks_url: str | None = Field(None, alias="JWT_JWKS_URL")
    algorithms: str = Field("HS256,RS256,ES256", alias="JWT_ALGORITHMS")


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    user_id: str
    roles: frozenset[str]
    name: str = ""
    dept: str | None = None
    # Territory codes (cells, communities, sub-districts) or "*" for the whole district; none
    # (the default, and a token without a `territory` claim) reaches no territory at all.
    territory: tuple[str, ...] = ()
    claims: Mapping[str, Any] = field(default_factory=dict)

    def has(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles)) or "admin" in self.roles

    def covers(self, *codes: str | None) -> bool:
        """True when any of the given territory codes (cell, community, sub-district) is in
        the caller's territory. Cell codes start with their community and sub-district codes,
        so a prefix match covers the hierarchy."""
        if "*" in self.territory:
            return True
        return any(c and any(c.startswith(t) for t in self.territory) for c in codes)


UserLookup = Callable[[str], Principal | None]


def lookup_from(users: Mapping[str, Any]) -> UserLookup:
    """A user lookup over configured users (objects with id, name, roles, territory, dept)."""
    table = {
        uid: Principal(
            user_id=uid,
            roles=frozenset(u.roles),
            name=u.name,
            dept=u.dept,
            territory=tuple(u.territory),
        )
        for uid, u in users.items()
    }
    return table.get


class Authenticator:
    def __init__(self, settings: AuthSettings, users: UserLookup | None = None) -> None:
        self.settings = settings
        self.users = users
        self._jwks: jwt.PyJWKClient | None = (
            jwt.PyJWKClient(settings.jwks_url) if settings.jwks_url else None
        )
        self._keys: dict[str, Any] = {}  # the identity provider's signing keys, by kid

    def _key(self, token: str) -> Any:
        if self._jwks is not None:
            kid = _kid(token)
            key = self._keys.get(kid) if kid else None
            if key is None:
                key = self._jwks.get_signing_key_from_jwt(token).key
                if kid and len(self._keys) < MAX_SIGNING_KEYS:
                    self._keys[kid] = key
            return key
        if self.settings.public_key:
            return self.settings.public_key
        return self.settings.secret

    async def prepare(self, request: Request) -> None:
        """Fetch a signing key not seen yet (JWKS over HTTP) off the event loop, so that
        `authenticate` then runs without I/O; a token whose key cannot be had is refused there."""
        if self._jwks is None:
            return
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer "):
            return
        token = header[7:].strip()
        kid = _kid(token)
        if kid and kid not in self._keys:
            with contextlib.suppress(jwt.PyJWTError):
                await asyncio.to_thread(self._key, token)

    def verify(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self._key(token),
                algorithms=[a.strip() for a in self.settings.algorithms.split(",")],
                audience=self.settings.audience,
                issuer=self.settings.issuer,
                options={"require": ["exp", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise Refusal(
                f"invalid token: {exc}", field="Authorization", code="unauthenticated", status=401
            ) from exc
        return principal_from_claims(claims)

    def authenticate(self, request: Request) -> Principal:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            return self.verify(header[7:].strip())
        if self.settings.mode == "dev" and self.users is not None:
            user_id = request.headers.get("x-user")
            if user_id:
                found = self.users(user_id)
                if found is None:
                    raise Refusal(
                        f"unknown user {user_id!r}",
                        field="X-User",
                        code="unauthenticated",
                        status=401,
                    )
                return found
        raise Refusal(
            "a bearer token is required", field="Authorization", code="unauthenticated", status=401
        )


# Signing keys kept by kid (a city's identity provider has a handful; the bound keeps tokens
# with made-up kids from growing the cache).
MAX_SIGNING_KEYS = 64


def _kid(token: str) -> str | None:
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError:
        return None
    return kid if isinstance(kid, str) else None


def territory_claim(value: Any) -> tuple[str, ...]:
    """The territory a token grants. Fails closed: no claim, an empty one or one of another
    shape grants no territory (not the whole district); blank codes are dropped, since a
    prefix "" would cover everything."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple):
        return ()
    return tuple(t.strip() for t in value if isinstance(t, str) and t.strip())


def principal_from_claims(claims: Mapping[str, Any]) -> Principal:
    roles = claims.get("roles") or []
    if isinstance(roles, str):
        roles = [roles]
    return Principal(
        user_id=str(claims["sub"]),
        roles=frozenset(str(r) for r in roles),
        name=str(claims.get("name", "")),
        dept=claims.get("dept"),
        territory=territory_claim(claims.get("territory")),
        claims=dict(claims),
    )


def issue_token(
    settings: AuthSettings,
    *,
    user_id: str,
    roles: Iterable[str],
    name: str = "",
    dept: str | None = None,
    territory: Sequence[str] | None = None,
    ttl_s: int = 12 * 3600,
) -> str:
    """A signed HS256 token (development and tests; production tokens come from the IdP).
    Without `territory` the token has no territory claim, and so reaches no territory: pass
    the user's (`["*"]` for the whole district) wherever cases are read by territory."""
    if not settings.secret:
        raise ValueError("issuing tokens needs JWT_SECRET")
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": settings.issuer,
        "aud": settings.audience,
        "sub": user_id,
        "name": name,
        "roles": sorted(roles),
        "iat": now,
        "exp": now + ttl_s,
    }
    if territory is not None:
        claims["territory"] = list(territory)
    if dept:
        claims["dept"] = dept
    return jwt.encode(claims, settings.secret, algorithm="HS256")


async def current_principal(request: Request) -> Principal:
    """FastAPI dependency: the caller, or 401 naming the Authorization header. Asynchronous,
    like every dependency of the request path: a plain `def` would cost each request a hop to
    the thread pool and back."""
    auth: Authenticator | None = getattr(request.app.state, "authenticator", None)
    if auth is None:
        auth = Authenticator(AuthSettings())
        request.app.state.authenticator = auth
    audit.set_caller(None, (), None, request.path_params, audit.route_of(request.scope))
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:  # not already established by the rate limiter
        await auth.prepare(request)
        principal = auth.authenticate(request)
    audit.set_caller(
        principal.user_id,
        principal.roles,
        principal.dept,
        request.path_params,
        audit.route_of(request.scope),
    )
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require(*roles: str) -> Callable[[Principal], Awaitable[Principal]]:
    """FastAPI dependency factory: the caller must hold one of `roles` (admin always may)."""

    async def check(principal: CurrentPrincipal) -> Principal:
        if not principal.has(*roles):
            raise Refusal(
                f"role {sorted(principal.roles)} may not do this; needs one of {list(roles)}",
                field="Authorization",
                code="forbidden",
                status=403,
            )
        return principal

    return check
