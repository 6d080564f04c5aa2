"""What `samsar-bot run` counts, for `/metrics` (Prometheus' text format, prometheus-client).

The core and the adapters call the small functions below; the metric objects live in one
registry of their own, so a test (or a second bot in one process) reads exactly these."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)
_SECONDS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

EVENTS = Counter(
    "samsar_bot_events",
    "Platform events taken in, by platform and type",
    ["platform", "type"],
    registry=REGISTRY,
)
DUPLICATES = Counter(
    "samsar_bot_duplicates_dropped",
    "Redelivered events dropped (already recorded)",
    ["platform"],
    registry=REGISTRY,
)
TURNS = Counter(
    "samsar_bot_turns",
    "Turns that ended, by kind and outcome (answered or the error class)",
    ["kind", "outcome"],
    registry=REGISTRY,
)
TURN_SECONDS = Histogram(
    "samsar_bot_turn_seconds",
    "From recording to the outcome stored",
    ["kind"],
    buckets=_SECONDS,
    registry=REGISTRY,
)
SAMSAR_SECONDS = Histogram(
    "samsar_bot_samsar_seconds",
    "One Samsar call attempt",
    ["route"],
    buckets=_SECONDS,
    registry=REGISTRY,
)
SAMSAR_ERRORS = Counter(
    "samsar_bot_samsar_errors",
    "Samsar call attempts that failed, by error class",
    ["error"],
    registry=REGISTRY,
)
CREDITS = Counter(
    "samsar_bot_credits_charged", "Credits Samsar charged members for turns", registry=REGISTRY
)
RUNNING = Gauge("samsar_bot_turns_running", "Turns this replica works on", registry=REGISTRY)
WAITING = Gauge(
    "samsar_bot_turns_waiting", "Turns recorded here that have not started", registry=REGISTRY
)
RECOVERED = Counter(
    "samsar_bot_turns_recovered", "Turns resumed after their worker stopped", registry=REGISTRY
)
FEEDBACK = Counter("samsar_bot_feedback", "Members' 👍/👎 on answers", ["value"], registry=REGISTRY)
DELIVERY_RETRIES = Counter(
    "samsar_bot_delivery_retries", "Posts that failed and will be tried again", registry=REGISTRY
)


def event(platform: str, kind: str) -> None:
    """A platform event reached the intake."""
    EVENTS.labels(platform, kind).inc()


def duplicate(platform: str) -> None:
    """A redelivery was dropped."""
    DUPLICATES.labels(platform).inc()


def turn_ended(kind: str, outcome: str, seconds: float, credits: float | None) -> None:
    """A turn's outcome was stored."""
    TURNS.labels(kind, outcome).inc()
    TURN_SECONDS.labels(kind).observe(max(0.0, seconds))
    if credits:
        CREDITS.inc(credits)


def samsar_call(route: str, seconds: float, error: str | None) -> None:
    """One attempt of a Samsar call ended."""
    SAMSAR_SECONDS.labels(route).observe(max(0.0, seconds))
    if error is not None:
        SAMSAR_ERRORS.labels(error).inc()
