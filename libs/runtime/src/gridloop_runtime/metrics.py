"""Prometheus metrics every service exposes on /metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_IN = Counter(
    "gridloop_events_in_total", "Events handled by consumers", ["service", "consumer", "outcome"]
)
EVENTS_OUT = Counter(
    "gridloop_events_out_total", "Events published by the outbox relay", ["service"]
)
HANDLER_SECONDS = Histogram(
    "gridloop_handler_seconds",
    "Time to handle one batch of events",
    ["service", "consumer"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
CONSUMER_FETCHES = Counter(
    "gridloop_consumer_fetches_total",
    "Fetches a consumer made: `messages` brought some, `empty` none within its wait",
    ["service", "consumer", "outcome"],
)
CONSUMER_LAG = Gauge(
    "gridloop_consumer_lag", "Messages waiting for a consumer", ["service", "consumer"]
)
CONSUMER_LEADING = Gauge(
    "gridloop_consumer_leading",
    "1 in the one replica consuming an ordered durable consumer now, 0 in the others",
    ["service", "consumer"],
)
OUTBOX_BACKLOG = Gauge("gridloop_outbox_backlog", "Outbox rows not yet published", ["service"])
DEAD_LETTERS = Counter(
    "gridloop_dead_letters_total", "Messages sent to the DLQ", ["service", "consumer"]
)
FOREIGN_MESSAGES = Counter(
    "gridloop_foreign_messages_total",
    "Messages dropped from a stream only gridloop's services write (not a CloudEvent of theirs)",
    ["service", "consumer"],
)
ROWS_PRUNED = Counter(
    "gridloop_rows_pruned_total",
    "Runtime rows deleted past their retention (RETENTION_EVERY_S)",
    ["service", "table"],
)
GROUPED_COMMANDS = Counter(
    "gridloop_grouped_commands_total",
    "Commands on one case each committed in a shared transaction (casework.CaseCommands)",
    ["service"],
)
COMMAND_GROUPS = Counter(
    "gridloop_command_groups_total",
    "Shared transactions of commands committed (casework.CaseCommands)",
    ["service"],
)
TIMERS_FIRED = Counter("gridloop_timers_fired_total", "Timers fired", ["service", "kind"])
OVERDUE_CASES = Gauge("gridloop_overdue_cases", "Open cases past their deadline", ["service"])
