"""Service health from the signal service's Prometheus text (``GET /metrics``): error and rejection rates, p99 latency.

Counters are cumulative since the service process started, so the rates cover that span (the metric's ``window``
says so). Parsing uses prometheus_client's own text parser.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from prometheus_client.parser import text_string_to_metric_families

from tradeops.monitor.metrics import Metric, missing

SIGNAL_ENDPOINTS = ("/v1/signals", "/v1/signals:batch")
REJECTED_KINDS = ("validation", "not_found")


def _samples(text: str) -> Iterable[tuple[str, dict[str, str], float]]:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            yield s.name, dict(s.labels), float(s.value)


def histogram_quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """Prometheus-style quantile from cumulative ``(upper_bound, count)`` buckets (linear within a bucket).

    ``None`` when there are no observations. A quantile in the ``+Inf`` bucket returns the largest finite bound.
    """
    buckets = sorted(buckets)
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    prev_bound, prev_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return prev_bound
            if count == prev_count:
                return bound
            return prev_bound + (bound - prev_bound) * (rank - prev_count) / (count - prev_count)
        prev_bound, prev_count = bound, count
    return prev_bound


def service_health(model: str, metrics_text: str, *, namespace: str = "tradeops") -> list[Metric]:
    """``service.error_rate`` (5xx share), ``data.rejected_rate`` (4xx validation/not-found share) and
    ``service.latency_p99_ms`` of the signal endpoints, from one scrape of the service's metrics (all models: the
    service answers every model on the same endpoints)."""
    answered = errors = rejected = 0.0
    buckets: dict[float, float] = {}
    for name, labels, value in _samples(metrics_text):
        if name == f"{namespace}_requests_total" and labels.get("model") == model:
            answered += value
        elif name == f"{namespace}_errors_total" and labels.get("endpoint") in SIGNAL_ENDPOINTS:
            if labels.get("kind") == "internal":
                errors += value
            elif labels.get("kind") in REJECTED_KINDS:
                rejected += value
        elif name == f"{namespace}_request_latency_seconds_bucket" and labels.get("endpoint") in SIGNAL_ENDPOINTS:
            bound = float(labels["le"])
            buckets[bound] = buckets.get(bound, 0.0) + value
    window = "since the service process started"
    total = answered + errors + rejected
    if total == 0:
        why = "the service has answered no signal request yet"
        return [missing(model, n, why, window=window) for n in ("service.error_rate", "data.rejected_rate")] + [
            missing(model, "service.latency_p99_ms", why, window=window)
        ]
    counts = {"answered": answered, "internal_errors": errors, "rejected": rejected}
    p99 = histogram_quantile(list(buckets.items()), 0.99)
    latency = (
        Metric(model, "service.latency_p99_ms", p99 * 1000.0, window, counts)
        if p99 is not None
        else missing(model, "service.latency_p99_ms", "no latency observations", window=window)
    )
    return [
        Metric(model, "service.error_rate", errors / total, window, counts),
        Metric(model, "data.rejected_rate", rejected / total, window, counts),
        latency,
    ]
