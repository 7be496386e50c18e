"""schemathesis against every service's OpenAPI document, live: the five services as
processes on a real PostgreSQL and NATS, called with a token holding every role. Valid and
invalid requests alike must never get a server error; a rejection must name what is wrong
(`field` or `loc`). GRIDLOOP_FUZZ_EXAMPLES sets the examples per operation and mode."""

# `call` below takes a bare `schemathesis.Case` (generic). It stays as written: hypothesis
# seeds this derandomized test from `call`'s source and signature, so spelling it `Case[Any]`
# would change every request the fuzzer sends.
# mypy: disable-error-code="type-arg"

from __future__ import annotations

import contextlib
import os
from typing import Any

import schemathesis
from gridloop_runtime.auth import ROLES, AuthSettings, issue_token
from gridloop_runtime.launcher import SERVICES, Stack
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok

# Rate limits off: the fuzzer is one user sending as fast as it can.
STACK_ENV = {"RATE_LIMIT_CLIENT_PER_S": "0", "RATE_LIMIT_PUBLIC_PER_S": "0"}
EXAMPLES = int(os.environ.get("GRIDLOOP_FUZZ_EXAMPLES", "6"))


def names_what_is_wrong(body: Any) -> bool:
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list) and detail:
        return all(isinstance(d, dict) and (d.get("field") or d.get("loc")) for d in detail)
    errors = body.get("errors") if isinstance(body, dict) else body
    # Open311 answers [{code, description}] with the field first in the description
    return isinstance(errors, list) and all(
        isinstance(e, dict) and ":" in str(e.get("description", "")) for e in errors
    )


def test_no_operation_of_any_service_answers_a_server_error(stack: Stack) -> None:
    token = issue_token(AuthSettings(), user_id="admin", roles=ROLES, territory=["*"])
    headers = {"Authorization": f"Bearer {token}"}
    server_errors: list[str] = []
    unnamed: list[str] = []
    operations = requests = 0
    for service in SERVICES:
        base = stack.url(service)
        schema = schemathesis.openapi.from_url(base + "/openapi.json")
        for result in schema.get_all_operations():
            assert isinstance(result, Ok), result
            op = result.ok()
            operations += 1
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                where = f"{service} {op.label} ({mode.value})"

                @given(case=op.as_strategy(generation_mode=mode))
                @settings(
                    max_examples=EXAMPLES,
                    deadline=None,
                    database=None,
                    derandomize=True,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=list(HealthCheck),
                )
                def call(case: schemathesis.Case) -> None:
                    nonlocal requests
                    requests += 1
                    response = case.call(
                        base_url=base,  # noqa: B023 - called at once, inside this iteration
                        headers=headers,
                        timeout=15,
                    )
                    try:
                        case.validate_response(
                            response, checks=[not_a_server_error], headers=headers
                        )
                    except BaseExceptionGroup as exc:  # failed checks: keep going, report all
                        failure = f"{where}: {exc}\n{case.as_curl_command()}"  # noqa: B023
                        server_errors.append(failure)
                        return
                    rejected = response.status_code in (400, 422)
                    is_json = "json" in response.headers.get("content-type", "")
                    if rejected and is_json and not names_what_is_wrong(response.json()):
                        unnamed.append(f"{where}: {response.text[:300]}")  # noqa: B023

                # Unsatisfiable: nothing to make invalid (an operation without parameters)
                with contextlib.suppress(Unsatisfiable):
                    call()
    print(
        f"\nschemathesis: {operations} operations, {requests} requests on {len(SERVICES)} services"
    )
    summary = [e.split(":", 1)[0] for e in server_errors]
    assert not server_errors, "\n".join(summary) + "\n\n" + "\n\n".join(server_errors[:3])
    assert not unnamed, "\n".join(unnamed[:10])
    assert operations >= 60 and requests >= operations
