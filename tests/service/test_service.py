"""The signal service over the session's trained IBM model: endpoints, 4xx rules, auth by role, halt/resume, audit,
explanations and routing (shadow, canary share, stable keys)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from tests.service.conftest import LAST_SAMPLE_DAY, NAME, make_key

pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

SIGNAL = {"ticker": "IBM", "as_of": LAST_SAMPLE_DAY.isoformat()}


@pytest.fixture()
def app_client(make_app):
    return make_app()


@pytest.fixture()
def keys(app_client):
    app, _ = app_client
    return {"reader": make_key(app, "reader"), "operator": make_key(app, "operator")}


def post(client, path, body, headers, **kw):
    return client.post(path, json=body, headers=headers, **kw)


def test_as_of_signal_is_logged_before_the_answer(app_client, keys):
    app, client = app_client
    r = post(client, "/v1/signals", SIGNAL, keys["reader"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["signal"] in {"BUY", "SELL", "HOLD"}
    assert set(body["probabilities"]) == {"BUY", "SELL", "HOLD"}
    assert math.isclose(sum(body["probabilities"].values()), 1.0, rel_tol=1e-5)
    assert body["model"] == NAME and body["version"] == "1" and body["as_of"] == "2012-06-01"
    assert body["answered_by"] == "champion" and body["halted"] is False
    row = app.state.predlog.get(body["request_id"])  # durable as soon as the answer arrived
    assert row is not None and row["status"] == 200 and row["input_kind"] == "as_of"
    assert row["champion_signal"] == body["signal"] and row["key_id"] is not None
    assert len(row["features"]) == len(app.state.manager.current.models[NAME].champion.feature_names)


def test_three_request_shapes_agree(app_client, keys):
    """as_of (stored features), features (the same row as JSON) and bars (recomputed from the stored bars with the
    training feature code) give the same probabilities."""
    app, client = app_client
    from tradeops.data.store import lake_for

    served = app.state.manager.current.models[NAME]
    row, _ = app.state.service._cache_for(served).row("IBM", LAST_SAMPLE_DAY)
    features = dict(zip(served.champion.feature_names, row.tolist(), strict=True))
    a = post(client, "/v1/signals", SIGNAL, keys["reader"]).json()
    f = post(client, "/v1/signals", {"ticker": "IBM", "features": features}, keys["reader"]).json()
    bars = lake_for(app.state.service.settings).read_bars(["IBM"])
    bars = bars.loc[bars["date"] <= str(LAST_SAMPLE_DAY)].tail(400)
    payload = [
        {"date": d.date().isoformat(), "open": o, "high": h, "low": lo, "close": c, "volume": v}
        for d, o, h, lo, c, v in zip(
            bars["date"], bars["adj_open"], bars["adj_high"], bars["adj_low"], bars["adj_close"], bars["adj_volume"]
        )
    ]
    b = post(client, "/v1/signals", {"ticker": "IBM", "bars": payload}, keys["reader"])
    assert b.status_code == 200, b.text
    b = b.json()
    for k in ("BUY", "SELL", "HOLD"):
        assert a["probabilities"][k] == pytest.approx(f["probabilities"][k], abs=1e-6)
        assert a["probabilities"][k] == pytest.approx(b["probabilities"][k], abs=1e-4)
    assert f["as_of"] is None and b["as_of"] == "2012-06-01"
    assert {a["input"], f["input"], b["input"]} == {"as_of", "features", "bars"}


@pytest.mark.parametrize(
    ("body", "status", "field", "rule"),
    [
        ({"ticker": "ZZZZ", "as_of": "2012-06-01"}, 404, "body.ticker", "unknown_ticker"),
        ({"ticker": "IBM", "as_of": "2030-01-02"}, 422, "body.as_of", "future_date"),
        ({"ticker": "IBM", "as_of": "2012-06-02"}, 422, "body.as_of", "non_trading_date"),
        ({"ticker": "IBM", "as_of": "1980-01-02"}, 422, "body.as_of", "before_stored_data"),
        ({"ticker": "IBM", "as_of": "2026-11-27"}, 422, "body.as_of", "after_stored_data"),
        ({"ticker": "IBM", "as_of": "2012-13-01"}, 422, "body.as_of", "date_from_datetime_parsing"),
        ({"ticker": "IBM"}, 422, "body", "one_input"),
        ({"ticker": "IBM", "as_of": "2012-06-01", "features": {"a": 1.0}}, 422, "body", "one_input"),
        ({"ticker": "IBM", "as_of": "2012-06-01", "colour": "red"}, 422, "body.colour", "unknown_field"),
        ({"ticker": 7, "as_of": "2012-06-01"}, 422, "body.ticker", "string_type"),
        ({"ticker": "IBM", "features": {"not_a_feature": 1.0}}, 422, "body.features", "unknown_feature"),
        ({"ticker": "IBM", "bars": []}, 422, "body.bars", "min_bars"),
    ],
)
def test_bad_input_is_4xx_naming_field_and_rule(app_client, keys, body, status, field, rule):
    _, client = app_client
    r = post(client, "/v1/signals", body, keys["reader"])
    assert r.status_code == status, r.text
    got = r.json()
    assert got["field"] == field and got["rule"] == rule, got
    assert got["error"]


def test_nan_literal_and_malformed_json_are_422(app_client, keys):
    _, client = app_client
    h = {**keys["reader"], "content-type": "application/json"}
    r = client.post("/v1/signals", content=b'{"ticker": "IBM", "features": {"rsi_6": NaN}}', headers=h)
    assert r.status_code == 422 and r.json()["rule"] == "finite" and r.json()["field"] == "body.features.rsi_6"
    r = client.post("/v1/signals", content=b'{"ticker": "IBM", "as_of": ', headers=h)
    assert r.status_code == 422 and r.json()["rule"] == "malformed_json"


def _bars(n: int, start_price: float = 100.0) -> list[dict]:
    from tradeops.data.calendar import trading_dates

    days = trading_dates("2011-01-03", "2012-06-01")[-n:]
    out = []
    for i, d in enumerate(days):
        p = start_price * (1 + 0.01 * math.sin(i / 5))
        out.append({"date": d.isoformat(), "open": p, "high": p * 1.01, "low": p * 0.99, "close": p, "volume": 1e6})
    return out


def test_caller_bars_rules(app_client, keys):
    _, client = app_client
    r = post(client, "/v1/signals", {"ticker": "IBM", "bars": _bars(10)}, keys["reader"])
    assert (r.status_code, r.json()["rule"]) == (422, "min_bars")
    bars = _bars(300)
    bars[7]["high"] = bars[7]["low"] / 2  # high below low: the ingestion contract's OHLC rule
    r = post(client, "/v1/signals", {"ticker": "IBM", "bars": bars}, keys["reader"])
    assert r.status_code == 422 and r.json()["rule"] == "high_ge_open_close" and r.json()["field"] == "body.bars.7"
    bars = _bars(300)
    bars[3]["date"] = "2012-06-02"  # a Saturday (also out of order)
    r = post(client, "/v1/signals", {"ticker": "IBM", "bars": bars}, keys["reader"])
    assert r.status_code == 422 and r.json()["field"].startswith("body.bars")
    h = {**keys["reader"], "content-type": "application/json"}
    raw = json.dumps({"ticker": "IBM", "bars": _bars(300)}).replace('"volume": 1000000.0', '"volume": NaN', 1)
    r = client.post("/v1/signals", content=raw.encode(), headers=h)
    assert r.status_code == 422 and r.json()["rule"] == "finite" and r.json()["field"] == "body.bars.0.volume"
    r = post(client, "/v1/signals", {"ticker": "IBM", "bars": _bars(300)}, keys["reader"])
    assert r.status_code == 200, r.text


def test_batch_results_in_order_with_per_item_errors(app_client, keys):
    app, client = app_client
    items = [SIGNAL, {"ticker": "IBM", "as_of": "2031-01-02"}, {"ticker": "NOPE", "as_of": "2012-06-01"}, SIGNAL]
    r = post(client, "/v1/signals:batch", {"items": items}, keys["reader"])
    assert r.status_code == 200, r.text
    res = r.json()["results"]
    assert [x["status"] for x in res] == [200, 422, 404, 200]
    assert res[1]["field"] == "body.items.1.as_of" and res[1]["rule"] == "future_date"
    assert res[2]["rule"] == "unknown_ticker"
    assert res[0]["probabilities"] == res[3]["probabilities"] and res[0]["request_id"] != res[3]["request_id"]
    assert app.state.predlog.count() == 2


def test_oversized_batch_is_refused(make_app):
    app, client = make_app(max_batch=3)
    h = make_key(app, "reader")
    r = post(client, "/v1/signals:batch", {"items": [SIGNAL] * 4}, h)
    assert r.status_code == 422 and r.json()["rule"] == "max_batch" and r.json()["field"] == "body.items"
    assert post(client, "/v1/signals:batch", {"items": []}, h).status_code == 422
    assert app.state.predlog.count() == 0


def test_auth_401_and_403_by_role(app_client, keys):
    app, client = app_client
    assert client.post("/v1/signals", json=SIGNAL).status_code == 401
    r = client.post("/v1/signals", json=SIGNAL, headers={"Authorization": "Bearer to_abc_wrong"})
    assert r.status_code == 401 and r.json()["rule"] == "invalid_key"
    assert r.headers["www-authenticate"] == "Bearer"
    assert client.get("/v1/models").status_code == 401
    assert client.get("/v1/models", headers=keys["reader"]).status_code == 200
    r = post(client, "/v1/admin/halt", {"reason": "x"}, keys["reader"])
    assert r.status_code == 403 and r.json()["rule"] == "forbidden_role"
    assert post(client, "/v1/signals", SIGNAL, keys["operator"]).status_code == 200  # operator includes reader
    assert client.get("/healthz").status_code == 200 and client.get("/readyz").status_code == 200
    # a revoked key stops working (the verifier re-checks revocation)
    from tradeops.deploy.auth import revoke_key

    key_id = keys["reader"]["Authorization"].split("_")[1]
    revoke_key(app.state.engine, key_id)
    app.state.verifier.invalidate()  # else the revocation is seen within its recheck interval
    assert post(client, "/v1/signals", SIGNAL, keys["reader"]).status_code == 401


def test_auth_off_only_by_config(make_app, caplog):
    with caplog.at_level("WARNING", logger="tradeops.deploy.service"):
        app, client = make_app(auth=False)
    assert "AUTHENTICATION IS OFF" in caplog.text
    r = client.post("/v1/signals", json=SIGNAL)
    assert r.status_code == 200
    assert app.state.predlog.get(r.json()["request_id"])["key_id"] is None


def test_halt_resume_and_audit_rows(app_client, keys):
    app, client = app_client
    from tradeops.deploy.predlog import audit_rows

    r = post(client, "/v1/admin/halt", {"reason": "exchange outage"}, keys["operator"])
    assert r.status_code == 200, r.text
    halted = post(client, "/v1/signals", SIGNAL, keys["reader"]).json()
    assert halted["signal"] == "HOLD" and halted["halted"] is True and halted["reason"] == "exchange outage"
    assert halted["answered_by"] == "halt"
    batch = post(client, "/v1/signals:batch", {"items": [SIGNAL, SIGNAL]}, keys["reader"]).json()["results"]
    assert all(x["signal"] == "HOLD" and x["halted"] for x in batch)
    assert app.state.predlog.get(halted["request_id"])["halted"] is True
    assert "tradeops_halted 1.0" in client.get("/metrics").text
    assert post(client, "/v1/admin/resume", {}, keys["operator"]).status_code == 200
    after = post(client, "/v1/signals", SIGNAL, keys["reader"]).json()
    assert after["halted"] is False and after["answered_by"] == "champion"
    r = post(client, "/v1/admin/routing", {"mode": "sideways"}, keys["operator"])
    assert r.status_code == 422
    rows = audit_rows(app.state.engine)
    assert [(x["action"], x["ok"]) for x in rows] == [("halt", True), ("resume", True)]
    operator_id = keys["operator"]["Authorization"].split("_")[1]
    assert rows[0]["key_id"] == operator_id and rows[0]["arguments"] == {"reason": "exchange outage"}
    assert rows[0]["result"]["halted"] is True
    text = json.dumps([{k: str(v) for k, v in x.items()} for x in rows])
    assert keys["operator"]["Authorization"].split(" ")[1] not in text  # the token is never stored


def test_admin_failure_is_audited(app_client, keys):
    app, client = app_client
    from tradeops.deploy.predlog import audit_rows

    r = post(client, "/v1/admin/promote", {"model": "no-such-model", "version": "1"}, keys["operator"])
    assert 400 <= r.status_code < 500, r.text
    rows = audit_rows(app.state.engine)
    assert rows[-1]["action"] == "promote" and rows[-1]["ok"] is False


def test_explanations_are_deterministic_and_name_real_features(app_client, keys):
    app, client = app_client
    a = post(client, "/v1/signals?explain=true", SIGNAL, keys["reader"]).json()
    b = post(client, "/v1/signals?explain=true", SIGNAL, keys["reader"]).json()
    assert a["explanation"] == b["explanation"]
    served = app.state.manager.current.models[NAME]
    names = set(served.champion.feature_names)
    assert len(a["explanation"]) == app.state.service.cfg.explain_top_k
    assert all(e["feature"] in names for e in a["explanation"])
    mags = [abs(e["attribution"]) for e in a["explanation"]]
    assert mags == sorted(mags, reverse=True) and mags[0] > 0
    assert "explanation" not in post(client, "/v1/signals", SIGNAL, keys["reader"]).json()


def test_models_and_metrics(app_client, keys):
    _, client = app_client
    post(client, "/v1/signals", SIGNAL, keys["reader"])
    m = client.get("/v1/models", headers=keys["reader"]).json()
    (model,) = m["models"]
    assert model["name"] == NAME and model["champion"] == "1" and model["challenger"] is None
    assert model["universe"] == ["IBM"] and model["routing_mode"] == "shadow" and model["loaded_at"]
    text = client.get("/metrics").text
    assert 'tradeops_requests_total{model="cnn-ta-IBM",signal=' in text
    assert 'tradeops_request_latency_seconds_bucket{endpoint="/v1/signals"' in text
    assert "tradeops_errors_total" in text


# --- routing -----------------------------------------------------------------------------------------------------


@pytest.fixture()
def with_challenger(make_app):
    """An app whose IBM model has a challenger (the champion's bundle under version "2": same scores, so routing
    is what the test sees) in the given routing mode."""
    from tradeops.deploy.models import ModelSet, with_versions

    def make(mode: str, share: float = 0.1):
        app0, _ = make_app()
        served = app0.state.manager.current.models[NAME]
        two = with_versions(served, challenger=served.champion, challenger_version="2")
        ms = ModelSet.build({NAME: two}, loaded_at=served.loaded_at)
        app, client = make_app(ms, routing_mode=mode, canary_share=share)
        return app, client, make_key(app, "reader")

    return make


def _dates(app, n):
    from tradeops.data.calendar import trading_dates

    return [d.isoformat() for d in trading_dates("2008-01-02", "2012-06-01")][-n:]


def test_shadow_scores_challenger_never_returns_it(with_challenger):
    app, client, h = with_challenger("shadow")
    items = [{"ticker": "IBM", "as_of": d} for d in _dates(app, 40)]
    res = post(client, "/v1/signals:batch", {"items": items}, h).json()["results"]
    assert all(r["status"] == 200 and r["answered_by"] == "champion" and r["version"] == "1" for r in res)
    rows = [app.state.predlog.get(r["request_id"]) for r in res]
    assert all(x["challenger_version"] == "2" and x["challenger_signal"] is not None for x in rows)
    assert 'tradeops_shadow_comparisons_total{model="cnn-ta-IBM"} 40.0' in client.get("/metrics").text


def test_canary_share_within_tolerance_and_stable_per_key(with_challenger):
    from tradeops.deploy.routing import route_key

    share = 0.3
    app, client, h = with_challenger("canary", share)
    dates = _dates(app, 400)
    items = [{"ticker": "IBM", "as_of": d} for d in dates]
    first = post(client, "/v1/signals:batch", {"items": items}, h).json()["results"]
    again = post(client, "/v1/signals:batch", {"items": items}, h).json()["results"]
    by = [r["answered_by"] for r in first]
    assert by == [r["answered_by"] for r in again]  # the same key always goes the same way
    frac = by.count("challenger") / len(by)
    assert abs(frac - share) < 0.07, frac
    assert by == ["challenger" if route_key("IBM", d) < share else "champion" for d in dates]
    canary = next(r for r in first if r["answered_by"] == "challenger")
    assert canary["version"] == "2"
    row = app.state.predlog.get(canary["request_id"])
    assert row["answered_by"] == "challenger" and row["champion_signal"] is not None  # the other is shadowed


def test_routing_admin_call_changes_mode(with_challenger):
    app, client, _ = with_challenger("off")
    op = make_key(app, "operator")
    h = make_key(app, "reader")
    assert post(client, "/v1/signals", SIGNAL, h).json()["routing_mode"] == "off"
    assert app.state.predlog.recent(1)[0]["challenger_signal"] is None  # off: the challenger is not scored
    r = post(client, "/v1/admin/routing", {"mode": "canary", "share": 1.0}, op)
    assert r.status_code == 200 and r.json()["mode"] == "canary"
    got = post(client, "/v1/signals", SIGNAL, h).json()
    assert got["answered_by"] == "challenger" and got["routing_mode"] == "canary"
    assert np.isclose(sum(got["probabilities"].values()), 1.0)
