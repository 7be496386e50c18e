"""The closed loop on the production topology, on this machine: a 3-node JetStream cluster
(streams R3) and two processes of every service sharing their consumers, timers and outboxes
(gridloop_devkit.launcher's GRIDLOOP_NATS_NODES / GRIDLOOP_REPLICAS shape). The same load as
the single-node closed-loop phase (loop.py): `--in-flight` cases kept open, a warm-up, then
the cases closed in a measured window, and the CPU they cost.

On one machine the cluster does three times the bus's work (every stream message stored and
acknowledged by three servers, with their routes) and the replicas share the same cores: the
figure is lower than `closed_loops_per_s`; what it shows is that the shape runs and what it
costs per closed loop."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import nats
from gridloop_city import load_city
from gridloop_devkit.devstack import LocalNatsCluster, LocalPostgres, free_port
from gridloop_devkit.launcher import SERVICES, Stack

from .actors import Actors
from .cpu import ACTORS, LOAD, CpuWindow, cpus
from .loop import BENCH_ENV, ROOT, Reports, case_id_of, keep_in_flight

NATS_NODES = 3
REPLICAS = 2


async def run(args: argparse.Namespace, work: Path, pg: LocalPostgres) -> dict[str, Any]:
    """`closed_loops_per_s_cluster` and its CPU per closed loop (the cluster keys)."""
    cluster = LocalNatsCluster(
        work / "nats-cluster", size=NATS_NODES, sync_always=args.durable, log_dir=work
    ).start()
    stack = Stack(
        work / "stack-cluster",
        nats_url=cluster.url,
        database_url=pg.create_database("gridloop_cluster"),
        # free ports: nothing else the machine runs is in the way
        ports={
            svc if i == 0 else f"{svc}-{i}": free_port()
            for svc in SERVICES
            for i in range(REPLICAS)
        },
        env=BENCH_ENV,
        replicas=REPLICAS,
        nats_nodes=NATS_NODES,
    )
    try:
        stack.start(timeout=300)
        return await _measure(args, cluster, pg, stack)
    finally:
        stack.stop()
        cluster.stop()


async def _measure(
    args: argparse.Namespace, cluster: LocalNatsCluster, pg: LocalPostgres, stack: Stack
) -> dict[str, Any]:
    city = load_city(ROOT / "data" / "demo-city")
    nc = await nats.connect(cluster.url.split(","))
    js = nc.jetstream(publish_async_max_pending=2000)
    reports = Reports(city)
    # the supervisors' verdicts go to both verify replicas in turn
    actors = await Actors(cluster.url, ",".join(stack.urls("verify"))).start()
    assert pg.proc is not None
    pids = {name: p.pid for name, p in stack.procs.items()}
    for node in cluster.nodes:
        assert node.proc is not None
        pids[node.server_name or "nats"] = node.proc.pid
    cpu = CpuWindow(pids | {"postgres": pg.proc.pid, LOAD: os.getpid(), ACTORS: actors.pid})

    sent: list[str] = []
    closed: set[str] = set()  # by case id: a copy an outbox sent again counts once

    async def on_closed(msg: Any) -> None:
        closed.add(case_id_of(msg))

    await nc.subscribe("case.closed", cb=on_closed)
    out: dict[str, Any] = {}
    try:

        async def phase(seconds: float) -> None:
            await keep_in_flight(
                js,
                reports,
                "cluster",
                args.in_flight,
                time.perf_counter() + seconds,
                lambda: len(sent) - len(closed),
                lambda r: sent.append(r.external_id),
            )

        await phase(args.cluster_warmup_seconds)
        closed_at_start = len(closed)
        cpu.start()
        await phase(args.cluster_seconds)
        cpu.stop()
        loops = len(closed) - closed_at_start
        out["closed_loops_per_s_cluster"] = round(loops / cpu.elapsed, 1)
        per_loop = cpu.per_closed_loop(loops, cpus())
        out["cpu_ms_per_closed_loop_cluster"] = per_loop["cpu_ms_per_closed_loop"]
        out["cluster"] = {
            "nats_nodes": NATS_NODES,
            "replicas_per_service": REPLICAS,
            "stream_replicas": int(stack.service_env("intake")["STREAM_REPLICAS"]),
            "cases_in_flight": args.in_flight,
            "phase_s": round(cpu.elapsed, 1),
            "closed_in_phase": loops,
            # per service (its replicas summed), nats (the nodes summed), postgres
            "cpu_ms_per_closed_loop_by_process": grouped(
                per_loop["cpu_ms_per_closed_loop_by_process"]
            ),
            "loop_cpu_pct_of_machine": per_loop["loop_cpu_pct_of_machine"],
        }
    finally:
        out.setdefault("cluster", {})["supervisors"] = await actors.stop()
        await nc.close()
    return out


def grouped(by_process: dict[str, float]) -> dict[str, float]:
    """`intake-1` into `intake`, `nats-2` into `nats`: the cost of a service or of the bus,
    whatever number of processes carries it."""
    out: dict[str, float] = {}
    for name, ms in by_process.items():
        key = name.rsplit("-", 1)[0] if name.rsplit("-", 1)[-1].isdigit() else name
        out[key] = round(out.get(key, 0.0) + ms, 1)
    return out
