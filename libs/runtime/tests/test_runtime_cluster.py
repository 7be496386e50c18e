"""The bus as production runs it: a 3-node JetStream cluster on loopback (LocalNatsCluster).
A service creates its streams R3 on a cluster that has only just started (no meta leader
yet: it waits instead of failing), and a node killed -9 and started again in place rejoins
with its store while the others carry on."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path

import nats
import nats.errors
import nats.js.errors
from gridloop_contracts.subjects import STREAMS
from gridloop_devkit.devstack import LocalNatsCluster
from gridloop_devkit.testing import wait_for
from gridloop_runtime import bus
from nats.js.api import StoreCompression


async def test_streams_are_created_r3_on_a_cluster_that_has_just_started(
    work_dir: Path,
) -> None:
    cluster = LocalNatsCluster(work_dir / "cluster-fresh", log_dir=work_dir / "cluster-fresh")
    # not waiting for the cluster to elect its JetStream meta leader: a service started with
    # the servers does not either
    cluster.start(wait=False)
    try:
        nc = await nats.connect(cluster.url.split(","))
        js = nc.jetstream()
        await bus.ensure_streams(js, replicas=3)
        for spec in STREAMS:
            info = await js.stream_info(spec.name)
            assert info.config.num_replicas == 3, spec.name
            assert info.cluster is not None and len(info.cluster.replicas or []) == 2
        # every replica of every service does the same at start-up: nothing changes
        await bus.ensure_streams(js, replicas=3)
        await nc.close()
    finally:
        cluster.stop()


async def test_the_previous_releases_r3_streams_are_compressed_and_aged_in_place(
    work_dir: Path,
) -> None:
    """An upgrade on the production shape: streams R3, plain and kept for ever as the
    previous release made them, holding messages; the next start compresses them all and
    ages the feeds named, on every node, messages kept. What it does not mean to change stays:
    a stream an operator left at one replica is not moved to three."""
    cluster = LocalNatsCluster(work_dir / "cluster-upgrade", log_dir=work_dir / "cluster-upgrade")
    cluster.start()
    try:
        nc = await nats.connect(cluster.url.split(","))
        js = nc.jetstream()
        scores = [spec for spec in STREAMS if spec.name == "SCORES"]
        await bus.ensure_streams(js, scores, replicas=1, compression=StoreCompression.NONE)
        await bus.ensure_streams(js, replicas=3, compression=StoreCompression.NONE)
        for i in range(5):
            await bus.when_available(
                functools.partial(
                    js.publish, "intake.hotline.x", b"{}", headers={"Nats-Msg-Id": f"r{i}"}
                ),
                what="INTAKE",
            )

        await bus.ensure_streams(js, replicas=3, max_ages_s={"INTAKE": 30 * 86400})

        for spec in STREAMS:
            config = (await js.stream_info(spec.name)).config
            assert config.compression == "s2", spec.name
            assert config.num_replicas == (1 if spec.name == "SCORES" else 3), spec.name
            assert round(config.max_age or 0) == (30 * 86400 if spec.name == "INTAKE" else 0)
        assert (await js.stream_info("INTAKE")).state.messages == 5
        await nc.close()
    finally:
        cluster.stop()


async def test_a_node_killed_and_started_again_in_place_rejoins_the_cluster(
    work_dir: Path,
) -> None:
    cluster = LocalNatsCluster(work_dir / "cluster-kill", log_dir=work_dir / "cluster-kill")
    cluster.start()
    try:
        nc = await nats.connect(cluster.url.split(","), reconnect_time_wait=0.2)
        js = nc.jetstream()
        cases = [s for s in STREAMS if s.name == "CASES"]
        await bus.ensure_streams(js, cases, replicas=3)
        for i in range(20):
            # a stream just created on three nodes may still be electing its leader
            await bus.when_available(
                functools.partial(
                    js.publish, "case.pinged", b"{}", headers={"Nats-Msg-Id": f"m{i}"}
                ),
                what="the new CASES stream",
            )
        leader = (await js.stream_info("CASES")).cluster.leader  # type: ignore[union-attr]
        assert leader is not None
        node = cluster.node(leader)
        port, store = node.port, node.store_dir
        node.stop(kill=True)

        async def published(i: int) -> bool:
            # an integrator's retry: the same id until acknowledged
            try:
                await js.publish("case.pinged", b"{}", headers={"Nats-Msg-Id": f"m{i}"}, timeout=2)
                return True
            except (nats.errors.Error, TimeoutError):
                return False

        for i in range(20, 30):  # while the stream elects a new leader among the two left
            await wait_for(functools.partial(published, i), timeout=30, what=f"message {i}")

        async def new_leader() -> str | None:
            try:
                info = await js.stream_info("CASES")
            except (nats.errors.Error, TimeoutError):
                return None
            return info.cluster.leader if info.cluster and info.cluster.leader != leader else None

        await wait_for(new_leader, timeout=30, what="a new CASES leader")
        await asyncio.to_thread(node.start)
        assert (node.port, node.store_dir) == (port, store)
        await asyncio.to_thread(node.wait_healthy, 30)

        async def current() -> bool:
            info = await js.stream_info("CASES")
            replicas = info.cluster.replicas or [] if info.cluster else []
            return (
                info.state.messages == 30
                and len(replicas) == 2
                and all(r.current and not r.offline for r in replicas)
            )

        await wait_for(current, timeout=30, what="the restarted node current again")
        # a resend of an acknowledged message is still dropped as a copy
        await js.publish("case.pinged", b"{}", headers={"Nats-Msg-Id": "m5"})
        assert (await js.stream_info("CASES")).state.messages == 30
        await nc.close()
    finally:
        cluster.stop()


def test_a_publish_refused_while_a_stream_elects_its_leader_is_unavailable() -> None:
    """A publish answered 503 (no stream leader yet) is raised by the outbox as the cause of
    its own error: seconds of an election, not a fault (a warning, not a traceback)."""
    try:
        try:
            raise nats.js.errors.NoStreamResponseError()
        except nats.js.errors.NoStreamResponseError as error:
            raise RuntimeError("publish of outbox row 34 failed") from error
    except RuntimeError as exc:
        assert bus.unavailable(exc)
    try:
        try:
            raise ValueError("bad")
        except ValueError as error:
            raise RuntimeError("publish failed") from error
    except RuntimeError as exc:
        assert not bus.unavailable(exc)
    assert not bus.unavailable(RuntimeError("publish failed"))
    try:  # publishes a stopping node never acknowledged
        raise RuntimeError("2 of 2 outbox rows not acknowledged in 10.0s") from TimeoutError()
    except RuntimeError as exc:
        assert bus.unavailable(exc)


def test_a_fetch_answered_503_while_its_consumer_elects_a_leader_is_unavailable() -> None:
    """nats-py raises a pull's 503 status (a consumer made on an R3 stream, no leader yet) as
    a ServiceUnavailableError without code or err_code: the restore tool's reader, made a
    moment before, waits for the leader instead of failing."""
    exc = nats.js.errors.ServiceUnavailableError()
    assert exc.code is None and exc.err_code is None
    assert bus.unavailable(exc)
    assert not bus.unavailable(nats.js.errors.NotFoundError())
