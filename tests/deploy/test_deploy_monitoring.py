"""What production is deployed with beside the services: the alerts in
deploy/overlays/production/monitoring.yaml read metrics that exist (the services' own, the
NATS exporter's of the image the overlay runs, the kubelet's volume statistics, CloudNativePG's
and its backup plugin's) and the names the deployed things have, and PostgreSQL runs with the
checkpoint spacing the bench and the tests measure (gridloop_devkit.devstack.CHECKPOINTS)."""

from __future__ import annotations

import re

import pytest
import yaml
from gridloop_devkit.devstack import CHECKPOINTS
from gridloop_runtime.bus import Feed

from .series import (
    BARMAN_CLOUD,
    CNPG_ARCHIVER,
    EXPORTER_JETSTREAM,
    KUBELET_VOLUME,
    PRODUCTION,
    alerts,
    documents,
)

GRIDLOOP_METRIC = re.compile(r"\bgridloop_[a-z0-9_]+\b")
JETSTREAM_METRIC = re.compile(r"\bjetstream_[a-z0-9_]+\b")
KUBELET_METRIC = re.compile(r"\bkubelet_[a-z0-9_]+\b")
CNPG_METRIC = re.compile(r"\bcnpg_[a-z0-9_]+\b")
BARMAN_CLOUD_METRIC = re.compile(r"\bbarman_cloud_[a-z0-9_]+\b")


def test_every_alert_reads_metrics_that_exist(metrics: set[str]) -> None:
    for name, rule in alerts().items():
        expr = rule["expr"]
        assert set(GRIDLOOP_METRIC.findall(expr)) <= metrics, name
        assert set(JETSTREAM_METRIC.findall(expr)) <= EXPORTER_JETSTREAM, name
        assert set(KUBELET_METRIC.findall(expr)) <= KUBELET_VOLUME, name
        assert set(CNPG_METRIC.findall(expr)) <= CNPG_ARCHIVER, name
        assert set(BARMAN_CLOUD_METRIC.findall(expr)) <= BARMAN_CLOUD, name


def test_the_exporter_whose_series_the_alerts_read_is_the_one_deployed() -> None:
    (nats,) = [d for d in documents("nats-cluster.yaml") if d["kind"] == "StatefulSet"]
    containers = {c["name"]: c for c in nats["spec"]["template"]["spec"]["containers"]}
    assert containers["metrics"]["image"] == "natsio/prometheus-nats-exporter:0.16.0"
    assert "-jsz=all" in containers["metrics"]["args"]


@pytest.mark.parametrize(
    "name", ["GridloopJetStreamStoreFilling", "GridloopJetStreamStoreFullWithin30Days"]
)
def test_jetstream_filling_its_store_is_alerted(name: str) -> None:
    expr = alerts()[name]["expr"]
    assert "jetstream_server_total_message_bytes" in expr
    assert "jetstream_server_max_storage" in expr


def the_cluster() -> tuple[str, str]:
    """The production Cluster's name and the overlay's namespace."""
    (cluster,) = [d for d in documents("postgres-cluster.yaml") if d["kind"] == "Cluster"]
    namespace = yaml.safe_load((PRODUCTION / "kustomization.yaml").read_text())["namespace"]
    return cluster["metadata"]["name"], namespace


def the_pattern(expr: str, label: str, namespace: str) -> str:
    """The one regular expression an alert matches `label` with, all in `namespace`."""
    assert set(re.findall(r'namespace="([^"]+)"', expr)) == {namespace}
    patterns: set[str] = set(re.findall(label + r'=~"([^"]+)"', expr))
    assert len(patterns) == 1, patterns
    return patterns.pop()


@pytest.mark.parametrize(
    "name", ["GridloopPostgresVolumeFilling", "GridloopPostgresVolumeFullWithin30Days"]
)
def test_postgresql_filling_its_volumes_is_alerted_by_the_names_they_have(name: str) -> None:
    """CloudNativePG names an instance's volumes after its Cluster and the instance's serial
    (<cluster>-<n>, and <cluster>-<n>-wal with walStorage); a replaced instance takes the next
    serial. The alert must read the volumes of the Cluster deployed, in its namespace."""
    cluster_name, namespace = the_cluster()
    expr = alerts()[name]["expr"]
    assert "kubelet_volume_stats_available_bytes" in expr
    pattern = the_pattern(expr, "persistentvolumeclaim", namespace)
    for data in (f"{cluster_name}-1", f"{cluster_name}-4"):
        assert re.fullmatch(pattern, data)
    assert bool(re.fullmatch(pattern, f"{cluster_name}-1-wal")) == name.endswith("Filling")
    for other in ("nats-js-nats-0", f"{cluster_name}-1-backup", "gridloop-evidence-0"):
        assert not re.fullmatch(pattern, other)


@pytest.mark.parametrize(
    ("name", "reads"),
    [
        (
            "GridloopPostgresWalArchivingFailing",
            {"cnpg_pg_stat_archiver_last_failed_time", "cnpg_pg_stat_archiver_last_archived_time"},
        ),
        (
            "GridloopPostgresBackupTooOld",
            {"barman_cloud_cloudnative_pg_io_last_available_backup_timestamp"},
        ),
    ],
)
def test_postgresql_backups_are_alerted_on_the_instances_deployed(
    name: str, reads: set[str]
) -> None:
    """The archiver's and the backup plugin's series come from the instance pods, which
    CloudNativePG names <cluster>-<serial>: the alerts read those of the Cluster deployed, in
    its namespace, and nothing else's (its volumes, its jobs)."""
    cluster_name, namespace = the_cluster()
    expr = alerts()[name]["expr"]
    assert set(CNPG_METRIC.findall(expr)) | set(BARMAN_CLOUD_METRIC.findall(expr)) == reads
    pattern = the_pattern(expr, "pod", namespace)
    for pod in (f"{cluster_name}-1", f"{cluster_name}-12"):
        assert re.fullmatch(pattern, pod)
    for other in (f"{cluster_name}-1-wal", f"{cluster_name}-1-initdb-x7k2p", "intake-0"):
        assert not re.fullmatch(pattern, other)
    # every selector of a series carries both (no series of another cluster joins in)
    selectors = re.findall(r"\b(?:cnpg|barman_cloud)_[a-z0-9_]+(\{[^}]*\})?", expr)
    assert selectors and all(f'namespace="{namespace}"' in s for s in selectors), selectors


def test_the_backup_alert_fires_before_a_nightly_backup_is_missed_twice() -> None:
    """A base backup a night: the alert's age lies past one night's gap and before two."""
    expr = alerts()["GridloopPostgresBackupTooOld"]["expr"]
    (hours,) = re.findall(r"> (\d+) \* 3600", expr)
    (backup,) = [d for d in documents("postgres-backup.yaml") if d["kind"] == "ScheduledBackup"]
    _seconds, _minutes, hour, *every_day = backup["spec"]["schedule"].split()
    assert every_day == ["*", "*", "*"] and hour.isdigit()
    assert 24 < int(hours) < 48


def test_a_feed_that_stopped_reading_is_alerted_by_the_names_the_feeds_have() -> None:
    """The feeds' streams age their messages read or not: a department's or integrator's
    durable feed that stopped reading must be seen before its messages go."""
    expr = alerts()["GridloopFeedStandingStill"]["expr"]
    assert "jetstream_consumer_num_pending" in expr
    assert "jetstream_consumer_ack_floor_stream_seq" in expr
    patterns = set(re.findall(r'consumer_name=~"([^"]+)"', expr))
    assert len(patterns) == 1, patterns
    (pattern,) = patterns
    feeds = [Feed.department("sanitation"), Feed.integrator("hotline-12345")]
    for feed in feeds:
        assert re.fullmatch(pattern, feed.durable), feed.durable
    for service_consumer in ("dispatch-cases", "intake-reports", "scoring-cases"):
        assert not re.fullmatch(pattern, service_consumer)


def test_postgresql_checkpoints_as_the_bench_measures() -> None:
    (cluster,) = [d for d in documents("postgres-cluster.yaml") if d["kind"] == "Cluster"]
    parameters = cluster["spec"]["postgresql"]["parameters"]
    assert {name: parameters.get(name) for name in CHECKPOINTS} == CHECKPOINTS
