"""The five services start as separate processes and report ready."""

from __future__ import annotations

import httpx
from gridloop_devkit.launcher import Stack


def test_all_services_ready(stack: Stack) -> None:
    for name in stack.services:
        r = httpx.get(stack.url(name) + "/readyz", timeout=5)
        assert r.status_code == 200, (name, r.text)
        assert r.json()["ready"] is True
        assert httpx.get(stack.url(name) + "/openapi.json", timeout=5).status_code == 200
