"""Prometheus metrics shared by every service (one registry per process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

http_requests = Counter("http_requests_total", "HTTP requests served", ["method", "route", "status"], registry=REGISTRY)
http_duration = Histogram(
    "http_request_duration_seconds", "HTTP request duration", ["method", "route"], registry=REGISTRY
)
events_published = Counter(
    "events_published_total", "Events published to JetStream by the outbox relay", ["type"], registry=REGISTRY
)
publish_failures = Counter(
    "outbox_publish_failures_total",
    "Outbox relay failures by cause: outage (NATS or the database away; counted once per failed attempt, the work is "
    "held and retried in order) or poison (a row that can never be published as it is; counted once per parked row)",
    ["cause"],
    registry=REGISTRY,
)
events_consumed = Counter(
    "events_consumed_total",
    "Events taken from JetStream, by outcome (processed, duplicate, retried, dead_lettered)",
    ["consumer", "type", "outcome"],
    registry=REGISTRY,
)
events_dead_lettered = Counter(
    "events_dead_lettered_total", "Events that became dead letters", ["consumer"], registry=REGISTRY
)
outbox_backlog = Gauge(
    "outbox_backlog",
    "Outbox rows waiting to be published (parked rows not included: see outbox_parked)",
    registry=REGISTRY,
)
outbox_oldest_age = Gauge(
    "outbox_oldest_unpublished_age_seconds",
    "Age of the oldest outbox row waiting to be published; parked rows are ignored (they have outbox_parked), so a "
    "growing value means stuck work",
    registry=REGISTRY,
)
outbox_parked = Gauge(
    "outbox_parked",
    "Outbox rows parked because they can never be published as they are (see GET /admin/outbox; "
    "POST /admin/outbox/{event_id}/retry after fixing the cause)",
    registry=REGISTRY,
)
dead_letters_open = Gauge("dead_letters_open", "Dead letters not yet replayed", registry=REGISTRY)
