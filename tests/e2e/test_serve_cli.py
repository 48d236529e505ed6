"""`tradeops serve`: help, and a real start (uvicorn subprocess) answering with a key, then a clean stop."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_serve_help(tradeops):
    r = tradeops(None, "serve", "--help")
    assert r.exit_code == 0
    for flag in ("--host", "--port", "--workers"):
        assert flag in r.output


def test_serve_starts_answers_and_stops(trained_ibm, tmp_path, tradeops):
    from tradeops.cli.serve import free_port, http, start_service, stop_service, wait_ready
    from tradeops.config import load_settings

    base, _ = trained_ibm
    db = f"sqlite:///{(tmp_path / 'service.db').resolve()}"
    settings = load_settings(home=base.home, model=base.model.model_dump(), database_url=db)
    r = tradeops(base.home, "keys", "create", "--role", "reader", "--json", env={"TRADEOPS_DATABASE_URL": db})
    assert r.exit_code == 0, r.output
    token = r.json()["token"]
    port = free_port()
    proc = start_service(settings, port)
    url = f"http://127.0.0.1:{port}"
    try:
        ready = wait_ready(url, proc)
        assert ready["ready"] is True and "cnn-ta-IBM" in ready["models"]
        assert http("POST", f"{url}/v1/signals", {"ticker": "IBM", "as_of": "2012-06-01"})[0] == 401
        status, body = http("POST", f"{url}/v1/signals", {"ticker": "IBM", "as_of": "2012-06-01"}, token=token)
        assert status == 200 and body["signal"] in {"BUY", "SELL", "HOLD"}
    finally:
        code = stop_service(proc)
    assert code in (0, -15)  # SIGTERM: uvicorn shuts down
