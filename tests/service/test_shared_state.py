"""The kill switch and routing are one state for every worker sharing the service database: a halt sent to one
worker is obeyed by the others (within ``service.state_seconds``), a restarted worker comes back halted, and a
resume or routing change reaches every worker too."""

from __future__ import annotations

from tests.service.conftest import LAST_SAMPLE_DAY, make_key

SIGNAL = {"ticker": "IBM", "as_of": LAST_SAMPLE_DAY.isoformat()}


def _signal(client, headers) -> dict:
    r = client.post("/v1/signals", json=SIGNAL, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def test_a_halt_on_one_worker_holds_every_worker_and_survives_a_restart(make_app, tmp_path):
    db = tmp_path / "shared"
    app_a, a = make_app(db=db, state_seconds=0)
    app_b, b = make_app(db=db, state_seconds=0)  # a second worker process on the same database
    operator, reader = make_key(app_a, "operator"), make_key(app_a, "reader")
    assert _signal(b, reader)["halted"] is False

    r = a.post("/v1/admin/halt", json={"reason": "feed outage"}, headers=operator)
    assert r.status_code == 200, r.text
    on_b = _signal(b, reader)
    assert on_b["halted"] is True and on_b["signal"] == "HOLD" and on_b["reason"] == "feed outage"

    _app_c, c = make_app(db=db, state_seconds=0)  # a worker started while halted
    assert _signal(c, reader)["halted"] is True

    assert b.post("/v1/admin/resume", json={}, headers=operator).status_code == 200
    assert _signal(a, reader)["halted"] is False and _signal(c, reader)["halted"] is False


def test_routing_set_on_one_worker_routes_every_worker(make_app, tmp_path):
    db = tmp_path / "shared"
    app_a, a = make_app(db=db, state_seconds=0)
    _app_b, b = make_app(db=db, state_seconds=0)
    operator = make_key(app_a, "operator")
    assert a.post("/v1/admin/routing", json={"mode": "canary", "share": 0.25}, headers=operator).status_code == 200
    models = b.get("/v1/models", headers=operator).json()
    assert models["routing"] == {"mode": "canary", "share": 0.25}


def test_a_worker_reads_the_shared_state_at_most_every_state_seconds(make_app, tmp_path):
    db = tmp_path / "shared"
    app_a, a = make_app(db=db, state_seconds=0)
    _app_b, b = make_app(db=db, state_seconds=3600)  # read at start, then not for an hour
    operator, reader = make_key(app_a, "operator"), make_key(app_a, "reader")
    assert a.post("/v1/admin/halt", json={"reason": "x"}, headers=operator).status_code == 200
    assert _signal(b, reader)["halted"] is False  # its copy is younger than state_seconds
    assert _signal(a, reader)["halted"] is True
