"""Prometheus metrics of the signal service, on a private registry (one per app, never the process-global one).

Families (names as exposed; counters get the ``_total`` suffix in the text format):

- ``tradeops_request_latency_seconds`` histogram by ``endpoint`` (seconds; buckets from 0.25 ms to 10 s),
- ``tradeops_requests_total`` by ``model``, ``version``, ``signal``, ``status`` (HTTP status code as text),
- ``tradeops_shadow_disagreements_total`` by ``model`` (champion and challenger signals differ),
- ``tradeops_shadow_comparisons_total`` by ``model`` (requests where both were scored: the disagreement denominator),
- ``tradeops_errors_total`` by ``endpoint``, ``kind`` (e.g. ``validation``, ``not_found``, ``auth``, ``internal``),
- ``tradeops_model_swaps_total`` by ``model``, ``result`` (``swapped``, ``refused``, ``unchanged``),
- ``tradeops_halted`` gauge (1 while the kill switch is on).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

__all__ = ["CONTENT_TYPE", "LATENCY_BUCKETS", "ServiceMetrics"]

CONTENT_TYPE = CONTENT_TYPE_LATEST

# Seconds. Answers from stored features take well under 2 ms, so the low end is fine-grained.
LATENCY_BUCKETS = (
    0.00025,
    0.0005,
    0.00075,
    0.001,
    0.0015,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.02,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    10.0,
)


class ServiceMetrics:
    """The service's metric families on their own :class:`CollectorRegistry` (``registry``)."""

    content_type: str = CONTENT_TYPE

    def __init__(self, namespace: str = "tradeops") -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.latency = Histogram(
            "request_latency_seconds",
            "Request latency by endpoint, seconds (handler start to response ready, log row durable).",
            ["endpoint"],
            namespace=namespace,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.requests = Counter(
            "requests",
            "Answered signal requests by model, version, signal and HTTP status.",
            ["model", "version", "signal", "status"],
            namespace=namespace,
            registry=r,
        )
        self.shadow_disagreements = Counter(
            "shadow_disagreements",
            "Requests where champion and challenger (shadow or canary) gave different signals.",
            ["model"],
            namespace=namespace,
            registry=r,
        )
        self.shadow_comparisons = Counter(
            "shadow_comparisons",
            "Requests where both champion and challenger were scored.",
            ["model"],
            namespace=namespace,
            registry=r,
        )
        self.errors = Counter(
            "errors",
            "Error answers by endpoint and kind.",
            ["endpoint", "kind"],
            namespace=namespace,
            registry=r,
        )
        self.model_swaps = Counter(
            "model_swaps",
            "Model load attempts after a registry change or reload, by model and result.",
            ["model", "result"],
            namespace=namespace,
            registry=r,
        )
        self.halted = Gauge("halted", "1 while the kill switch is on, else 0.", namespace=namespace, registry=r)

    # Thin helpers so callers do not repeat label names.
    def observe_latency(self, endpoint: str, seconds: float) -> None:
        """Record one request's latency (seconds) for ``endpoint`` (the route path, e.g. ``/v1/signals``)."""
        self.latency.labels(endpoint=endpoint).observe(seconds)

    def count_request(self, *, model: str, version: str | None, signal: str, status: int | str) -> None:
        """Count one answered prediction (``version`` ``None`` -> ``"none"``)."""
        self.requests.labels(
            model=model, version="none" if version is None else str(version), signal=signal, status=str(status)
        ).inc()

    def count_shadow(self, *, model: str, disagreed: bool) -> None:
        """Count one champion/challenger comparison, and a disagreement when the signals differed."""
        self.shadow_comparisons.labels(model=model).inc()
        if disagreed:
            self.shadow_disagreements.labels(model=model).inc()

    def count_error(self, *, endpoint: str, kind: str) -> None:
        self.errors.labels(endpoint=endpoint, kind=kind).inc()

    def count_swap(self, *, model: str, result: str) -> None:
        self.model_swaps.labels(model=model, result=result).inc()

    def set_halted(self, halted: bool) -> None:
        self.halted.set(1.0 if halted else 0.0)

    def render(self) -> bytes:
        """The registry in the Prometheus text exposition format (serve with :attr:`content_type`)."""
        return generate_latest(self.registry)
