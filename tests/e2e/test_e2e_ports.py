"""A service whose port was taken between being chosen and being bound (by another program, or
an outgoing connection given it by the kernel) is started again on another port, not
reported as a failed start."""

from __future__ import annotations

import random
import socket
from pathlib import Path

import httpx
import pytest
from gridloop_devkit import testing
from gridloop_devkit.devstack import LocalPostgres, free_port
from gridloop_devkit.testing import process_stack


def test_a_service_whose_port_was_taken_starts_on_another(
    pg_server: LocalPostgres, work_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", free_port()))
        squatter.listen()
        taken = squatter.getsockname()[1]
        monkeypatch.setattr(testing, "free_port", lambda: taken)
        with process_stack(
            work_dir / "ports", pg_server.create_database("eports"), services=("scoring",)
        ) as stack:
            moved = stack.port("scoring")
            assert moved != taken
            log = (stack.state_dir / "scoring.log").read_text(errors="replace")
            assert "address already in use" in log  # it did meet the taken port first
            assert httpx.get(stack.url("scoring") + "/readyz", timeout=5).status_code == 200


def test_ports_are_never_handed_out_twice_and_stay_out_of_the_ephemeral_range() -> None:
    from gridloop_devkit import devstack

    random.seed(0)  # as Hypothesis seeds the global generator: the choice does not follow it
    ports = [free_port() for _ in range(300)]
    assert len(set(ports)) == len(ports)
    start, end = devstack._port_range()
    assert all(start <= p < end for p in ports)
    assert end <= devstack._ephemeral_low()
