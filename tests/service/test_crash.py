"""A crash under load loses no answered request: the real service (uvicorn subprocess) is hammered by a client
thread pool and killed with SIGKILL mid-load; afterwards every request that got a 200 has its prediction row."""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
from tests.service.conftest import LAST_SAMPLE_DAY, settings_for

from tradeops.cli.serve import free_port, http, start_service, wait_ready

pytestmark = pytest.mark.slow


def test_sigkill_under_load_loses_no_answered_request(trained_ibm, tmp_path):
    base_settings, _ = trained_ibm
    settings = settings_for(base_settings.home, tmp_path, base_settings.model.model_dump())
    port = free_port()
    proc = start_service(
        settings, port, env={"TRADEOPS_SERVICE__AUTH": "false", "TRADEOPS_SERVICE__POLL_SECONDS": "60"}
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc)
    except Exception:
        proc.kill()
        raise
    answered: list[str] = []
    failed = [0]
    stop = threading.Event()
    lock = threading.Lock()
    body = {"ticker": "IBM", "as_of": LAST_SAMPLE_DAY.isoformat()}

    def hammer() -> None:
        while not stop.is_set():
            try:
                status, got = http("POST", f"{url}/v1/signals", body, timeout=5)
            except OSError:
                with lock:
                    failed[0] += 1
                if proc.poll() is not None:
                    return
                continue
            if status == 200:
                with lock:
                    answered.append(got["request_id"])

    with ThreadPoolExecutor(8) as pool:
        for _ in range(8):
            pool.submit(hammer)
        deadline = time.monotonic() + 30
        while len(answered) < 300 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)  # mid-load: requests are in flight
        proc.wait(timeout=10)
        time.sleep(0.5)
        stop.set()
    assert proc.returncode == -signal.SIGKILL
    assert len(answered) >= 300
    engine = sa.create_engine(settings.service_database_url)
    with engine.connect() as conn:
        logged = {r[0] for r in conn.execute(sa.text("SELECT request_id FROM predictions"))}
    engine.dispose()
    missing = [rid for rid in answered if rid not in logged]
    assert missing == [], f"{len(missing)} of {len(answered)} answered requests have no log row"
