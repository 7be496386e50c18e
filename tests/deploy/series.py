"""What the deploy tests of the shipped alerts and dashboard share: the production overlay's
alerts, and the series outside gridloop's own code that they read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

PRODUCTION = Path(__file__).resolve().parents[2] / "deploy" / "overlays" / "production"


def documents(name: str) -> list[dict[str, Any]]:
    """The production overlay's file `name`, its YAML documents."""
    return [d for d in yaml.safe_load_all((PRODUCTION / name).read_text(encoding="utf-8")) if d]


def alerts() -> dict[str, dict[str, Any]]:
    """The production alerts (monitoring.yaml), by name."""
    (rule,) = [d for d in documents("monitoring.yaml") if d["kind"] == "PrometheusRule"]
    return {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}


# The JetStream series of natsio/prometheus-nats-exporter 0.16.0 with -jsz=all (its
# collector/jsz.go): the server's, each stream's and each consumer's.
EXPORTER_JETSTREAM = {
    "jetstream_server_jetstream_disabled",
    "jetstream_server_total_streams",
    "jetstream_server_total_consumers",
    "jetstream_server_total_messages",
    "jetstream_server_total_message_bytes",
    "jetstream_server_max_memory",
    "jetstream_server_max_storage",
    "jetstream_stream_total_messages",
    "jetstream_stream_total_bytes",
    "jetstream_stream_first_seq",
    "jetstream_stream_last_seq",
    "jetstream_stream_consumer_count",
    "jetstream_consumer_delivered_consumer_seq",
    "jetstream_consumer_delivered_stream_seq",
    "jetstream_consumer_num_ack_pending",
    "jetstream_consumer_num_redelivered",
    "jetstream_consumer_num_waiting",
    "jetstream_consumer_num_pending",
    "jetstream_consumer_ack_floor_stream_seq",
    "jetstream_consumer_ack_floor_consumer_seq",
}

# The kubelet's volume statistics (kube-prometheus-stack scrapes them).
KUBELET_VOLUME = {
    "kubelet_volume_stats_available_bytes",
    "kubelet_volume_stats_capacity_bytes",
    "kubelet_volume_stats_used_bytes",
}

# CloudNativePG's exporter on each PostgreSQL instance: the primary's pg_stat_archiver (its
# default monitoring queries) and the collector's count of WAL segments by archive status.
CNPG_ARCHIVER = {
    "cnpg_pg_stat_archiver_archived_count",
    "cnpg_pg_stat_archiver_failed_count",
    "cnpg_pg_stat_archiver_seconds_since_last_archival",
    "cnpg_pg_stat_archiver_seconds_since_last_failure",
    "cnpg_pg_stat_archiver_last_archived_time",
    "cnpg_pg_stat_archiver_last_failed_time",
    "cnpg_collector_pg_wal_archive_status",
}

# The Barman Cloud plugin's series, exported by the same instances (its
# internal/cnpgi/instance/metrics.go): unix timestamps, 0 before the first backup.
BARMAN_CLOUD = {
    "barman_cloud_cloudnative_pg_io_first_recoverability_point",
    "barman_cloud_cloudnative_pg_io_last_available_backup_timestamp",
    "barman_cloud_cloudnative_pg_io_last_failed_backup_timestamp",
}
