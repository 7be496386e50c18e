"""The Grafana dashboard shipped in deploy/grafana: a dashboard Grafana imports (uid, panels,
a Prometheus datasource variable), whose every query reads metrics the services define or,
for the stores' and the backups' panels, the series the alerts read (the NATS exporter's,
the kubelet's, CloudNativePG's and its backup plugin's)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from .series import BARMAN_CLOUD, CNPG_ARCHIVER, EXPORTER_JETSTREAM, KUBELET_VOLUME, alerts

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "deploy" / "grafana").glob("*.json"))
METRIC = re.compile(r"\bgridloop_[a-z0-9_]+\b")
OUTSIDE = re.compile(r"\b(?:jetstream|kubelet|cnpg|barman_cloud)_[a-z0-9_]+\b")
SERIES_OUTSIDE = EXPORTER_JETSTREAM | KUBELET_VOLUME | CNPG_ARCHIVER | BARMAN_CLOUD


def exprs(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


def test_a_dashboard_is_shipped() -> None:
    assert [p.name for p in DASHBOARDS] == ["gridloop-loop.json"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_the_dashboard_is_one_grafana_imports(path: Path) -> None:
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    assert re.fullmatch(r"[a-z0-9-]{1,40}", dashboard["uid"])
    assert dashboard["title"] and isinstance(dashboard["schemaVersion"], int)
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = dashboard["panels"]
    assert panels
    assert len({p["id"] for p in panels}) == len(panels), "panel ids repeat"
    for panel in panels:
        assert panel["title"] and panel["type"] == "timeseries", panel["title"]
        assert set(panel["gridPos"]) == {"h", "w", "x", "y"}, panel["title"]
        # every query goes to the dashboard's chosen Prometheus
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(set(refs)) == len(refs), panel["title"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_query_reads_metrics_the_services_define(path: Path, metrics: set[str]) -> None:
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    used: set[str] = set()
    for title, expr in exprs(dashboard):
        names = set(METRIC.findall(expr))
        outside = set(OUTSIDE.findall(expr))
        assert names or outside, f"{title}: {expr} reads no gridloop metric"
        unknown = names - metrics
        assert not unknown, f"{title}: {sorted(unknown)} not defined by the code"
        unknown = outside - SERIES_OUTSIDE
        assert not unknown, f"{title}: {sorted(unknown)} not a series of what production runs"
        used |= names | outside
    # what the loop's dashboard is for (issue: reports in, cases by state, consumer lag,
    # outbox backlog, overdue, per-step latency)
    for wanted in (
        "gridloop_reports_total",
        "gridloop_cases",
        "gridloop_consumer_lag",
        "gridloop_outbox_backlog",
        "gridloop_overdue_cases",
        "gridloop_handler_seconds_bucket",
        # the stores the alerts watch: JetStream's on each node, PostgreSQL's volumes
        "jetstream_server_total_message_bytes",
        "kubelet_volume_stats_available_bytes",
        # and the database's backups
        "barman_cloud_cloudnative_pg_io_last_available_backup_timestamp",
        "cnpg_pg_stat_archiver_seconds_since_last_archival",
    ):
        assert wanted in used, wanted


def test_the_check_knows_the_code_metrics(metrics: set[str]) -> None:
    """The registry scan finds the metrics of the runtime and of the services (a scan that
    found nothing would pass every dashboard)."""
    assert {"gridloop_events_in_total", "gridloop_reports_total", "gridloop_cases"} <= metrics
    assert "gridloop_console_event_streams" in metrics
    assert "gridloop_made_up_total" not in metrics


def test_the_stores_panels_watch_what_the_alerts_watch() -> None:
    """The panels of JetStream's store and PostgreSQL's volumes read the volumes and the
    ratio the production alerts fire on, so a panel shows the line an alert crossed."""
    expr = {name: rule["expr"] for name, rule in alerts().items()}
    dashboard = json.loads(DASHBOARDS[0].read_text(encoding="utf-8"))
    panels = dict(exprs(dashboard))
    volumes = re.compile(r'persistentvolumeclaim=~"([^"]+)"')
    pg = panels["PostgreSQL's volumes used"]
    assert set(volumes.findall(pg)) == set(volumes.findall(expr["GridloopPostgresVolumeFilling"]))
    js = panels["JetStream's store used, per NATS node"]
    ratio = "jetstream_server_total_message_bytes / jetstream_server_max_storage"
    assert ratio in js and ratio in expr["GridloopJetStreamStoreFilling"]


def test_the_backups_panel_reads_the_instances_the_alerts_read() -> None:
    """The backups' panel shows the series the backup alerts fire on, of the same pods."""
    expr = {name: rule["expr"] for name, rule in alerts().items()}
    dashboard = json.loads(DASHBOARDS[0].read_text(encoding="utf-8"))
    panel = [e for t, e in exprs(dashboard) if t == "PostgreSQL's backups: how old the newest is"]
    backup = "barman_cloud_cloudnative_pg_io_last_available_backup_timestamp"
    assert any(backup in e for e in panel) and backup in expr["GridloopPostgresBackupTooOld"]
    pods = re.compile(r'pod=~"([^"]+)"')
    alerted = set(pods.findall(expr["GridloopPostgresBackupTooOld"]))
    alerted |= set(pods.findall(expr["GridloopPostgresWalArchivingFailing"]))
    assert {p for e in panel for p in pods.findall(e)} == alerted and len(alerted) == 1
