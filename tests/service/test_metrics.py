"""Service metrics: private registry per instance, families and label values in the text exposition."""

from __future__ import annotations

import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tradeops.deploy.metrics import LATENCY_BUCKETS, ServiceMetrics


def _samples(m: ServiceMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(m.render().decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_render_contains_every_family_and_label_value():
    m = ServiceMetrics()
    m.observe_latency("/v1/signals", 0.0004)
    m.observe_latency("/v1/signals", 0.003)
    m.observe_latency("/v1/signals:batch", 0.012)
    m.count_request(model="cnn-ta-IBM", version="3", signal="BUY", status=200)
    m.count_request(model="cnn-ta-IBM", version="3", signal="BUY", status=200)
    m.count_request(model="cnn-ta-IBM", version=None, signal="HOLD", status="200")
    m.count_shadow(model="cnn-ta-IBM", disagreed=True)
    m.count_shadow(model="cnn-ta-IBM", disagreed=False)
    m.count_error(endpoint="/v1/signals", kind="validation")
    m.count_swap(model="cnn-ta-IBM", result="refused")
    m.set_halted(True)
    text = m.render().decode()
    for family in (
        "tradeops_request_latency_seconds",
        "tradeops_requests_total",
        "tradeops_shadow_disagreements_total",
        "tradeops_shadow_comparisons_total",
        "tradeops_errors_total",
        "tradeops_model_swaps_total",
        "tradeops_halted",
    ):
        assert f"# TYPE {family.removesuffix('_total')}" in text, family
    s = _samples(m)
    req = (("model", "cnn-ta-IBM"), ("signal", "BUY"), ("status", "200"), ("version", "3"))
    assert s[("tradeops_requests_total", req)] == 2.0
    hold = (("model", "cnn-ta-IBM"), ("signal", "HOLD"), ("status", "200"), ("version", "none"))
    assert s[("tradeops_requests_total", hold)] == 1.0
    assert s[("tradeops_shadow_disagreements_total", (("model", "cnn-ta-IBM"),))] == 1.0
    assert s[("tradeops_shadow_comparisons_total", (("model", "cnn-ta-IBM"),))] == 2.0
    assert s[("tradeops_errors_total", (("endpoint", "/v1/signals"), ("kind", "validation")))] == 1.0
    assert s[("tradeops_model_swaps_total", (("model", "cnn-ta-IBM"), ("result", "refused")))] == 1.0
    assert s[("tradeops_halted", ())] == 1.0
    sig = (("endpoint", "/v1/signals"),)
    assert s[("tradeops_request_latency_seconds_count", sig)] == 2.0
    assert s[("tradeops_request_latency_seconds_sum", sig)] == pytest.approx(0.0034)
    # the 0.25 ms bucket exists and the 0.4 ms request is above it, below 0.5 ms
    assert s[("tradeops_request_latency_seconds_bucket", (*sig, ("le", "0.00025")))] == 0.0
    assert s[("tradeops_request_latency_seconds_bucket", (*sig, ("le", "0.0005")))] == 1.0
    assert s[("tradeops_request_latency_seconds_bucket", (("endpoint", "/v1/signals:batch"), ("le", "0.01")))] == 0.0


def test_buckets_go_down_to_a_quarter_millisecond():
    assert min(LATENCY_BUCKETS) == 0.00025
    assert list(LATENCY_BUCKETS) == sorted(LATENCY_BUCKETS)


def test_each_instance_has_its_own_registry_and_never_the_global_one():
    a, b = ServiceMetrics(), ServiceMetrics()  # a second app in the same process must not raise "Duplicated"
    a.count_error(endpoint="/v1/models", kind="auth")
    assert 'kind="auth"' in a.render().decode()
    assert 'kind="auth"' not in b.render().decode()
    assert a.registry is not prometheus_client.REGISTRY
    assert "tradeops_errors" not in prometheus_client.generate_latest(prometheus_client.REGISTRY).decode()


def test_content_type_is_the_text_exposition_format():
    assert ServiceMetrics().content_type.startswith("text/plain; version=")
