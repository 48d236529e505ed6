"""Hot swap: registry alias changes are loaded off the request path and swapped atomically; requests in flight
never fail or see a half-loaded model; a version that fails to load or fails its golden set is refused and the old
one keeps serving."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from tests.service.conftest import LAST_SAMPLE_DAY, NAME, clock, copy_home, settings_for

from tradeops.config import load_settings

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")]

SIGNAL = {"ticker": "IBM", "as_of": LAST_SAMPLE_DAY.isoformat()}


@pytest.fixture()
def home(two_versions, tmp_path) -> Path:
    return copy_home(two_versions, tmp_path / "home")


def _settings(home: Path, tmp_path: Path, **service):
    from tradeops.model.registry import configure_mlflow  # noqa: F401 - the registry is read through settings

    return settings_for(home, tmp_path, load_settings(home=home).model.model_dump(), auth=False, **service)


def _expected(settings) -> dict[str, list[float]]:
    """Probabilities of the test row under each version (scored directly from the registry bundles)."""
    from tradeops.data.store import lake_for
    from tradeops.deploy.features_cache import StoredFeatures
    from tradeops.deploy.models import feature_set_of
    from tradeops.model.serving import load_registered

    out = {}
    for v in ("1", "2"):
        b = load_registered(settings, NAME, v)
        row, _ = StoredFeatures(lake_for(settings), feature_set_of(b), columns=b.feature_names).row(
            "IBM", LAST_SAMPLE_DAY
        )
        out[v] = b.score(row.reshape(1, -1)).proba[0].astype(np.float64).tolist()
    return out


def test_swap_under_concurrent_requests_has_zero_failures(home, tmp_path):
    from tradeops.deploy.service import create_app
    from tradeops.model import registry as reg

    settings = _settings(home, tmp_path)
    expected = _expected(settings)
    assert not np.allclose(expected["1"], expected["2"])  # the versions are told apart by their answers
    app = create_app(settings, clock=clock)
    manager = app.state.manager
    assert manager.current.models[NAME].champion_version == "1"
    swaps: list[str] = []
    done = threading.Event()

    def swapper() -> None:
        try:
            for _ in range(2):
                reg.promote(settings, NAME, "2", "hot swap test", force=True)
                manager.reload()
                swaps.append(manager.current.models[NAME].champion_version)
                reg.rollback(settings, NAME)
                manager.reload()  # v1 left the loaded set: a real load from the registry during traffic
                swaps.append(manager.current.models[NAME].champion_version)
        finally:
            done.set()

    async def traffic() -> list[tuple[int, dict]]:
        transport = httpx.ASGITransport(app=app)
        out: list[tuple[int, dict]] = []
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:

            async def worker() -> None:
                while not done.is_set():
                    r = await client.post("/v1/signals", json=SIGNAL)
                    out.append((r.status_code, r.json()))
                    await asyncio.sleep(0)

            thread = threading.Thread(target=swapper)
            thread.start()
            await asyncio.gather(*(worker() for _ in range(8)))
            thread.join()
        return out

    try:
        results = asyncio.run(traffic())
    finally:
        app.state.predlog.close()
    assert swaps == ["2", "1", "2", "1"]
    assert len(results) > 50
    failures = [r for r in results if r[0] != 200]
    assert failures == []
    seen = set()
    for _, body in results:
        v = body["version"]
        seen.add(v)
        got = [body["probabilities"][k] for k in ("BUY", "SELL", "HOLD")]
        assert np.allclose(got, expected[v], atol=1e-6), (v, got)  # answered by exactly the version it names
    assert seen == {"1", "2"}
    assert app.state.predlog.count() == len(results)


class Aliases:
    """A registry stand-in for the alias poll: ``{name: {alias: version}}`` the test moves by hand."""

    def __init__(self, champion: str) -> None:
        self.value = {NAME: {"champion": champion}}

    def __call__(self, settings):
        return json.loads(json.dumps(self.value))


def _app_with(settings, loader, aliases):
    from tradeops.deploy.models import ModelManager
    from tradeops.deploy.service import create_app

    manager = ModelManager(settings, loader=loader, alias_reader=aliases, clock=clock)
    manager.reload()
    return create_app(settings, model_set=manager, clock=clock)


def test_failed_load_keeps_the_old_model(home, tmp_path):
    from fastapi.testclient import TestClient

    from tradeops.deploy.models import registry_loader

    def loader(settings, name, version):
        if version == "2":
            raise OSError("artifact store unreachable")
        return registry_loader(settings, name, version)

    settings = _settings(home, tmp_path)
    aliases = Aliases("1")
    app = _app_with(settings, loader, aliases)
    with TestClient(app) as client:
        aliases.value[NAME]["champion"] = "2"
        events = app.state.manager.reload()
        (refused,) = [e for e in events if e.result == "refused"]
        assert refused.new == "2" and "artifact store unreachable" in refused.reason
        assert app.state.manager.current.models[NAME].champion_version == "1"
        r = client.post("/v1/signals", json=SIGNAL)
        assert r.status_code == 200 and r.json()["version"] == "1"
        assert 'tradeops_model_swaps_total{model="cnn-ta-IBM",result="refused"} 1.0' in client.get("/metrics").text
        # the poller does not retry a refused version; an explicit reload does (and is refused again)
        assert app.state.manager.reload(retry_refused=False)[0].result == "refused"
        r = client.post("/v1/admin/reload", json={})
        assert r.status_code == 200 and r.json()["events"][0]["result"] == "refused"


def test_failed_golden_set_keeps_the_old_model(home, tmp_path):
    import mlflow
    from fastapi.testclient import TestClient

    from tradeops.deploy.models import registry_loader
    from tradeops.model import registry as reg
    from tradeops.model.package import GoldenMismatch, load_bundle
    from tradeops.model.serving import bundle_path

    settings = _settings(home, tmp_path)
    reg.configure_mlflow(settings)
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{NAME}/2", dst_path=str(tmp_path / "v2")))
    bundle_dir = bundle_path(local)
    golden = json.loads((bundle_dir / "golden.json").read_text())
    golden["outputs"][0][0] += 0.01  # the packaged model no longer reproduces its recorded outputs
    (bundle_dir / "golden.json").write_text(json.dumps(golden))
    with pytest.raises(GoldenMismatch):
        load_bundle(bundle_dir)

    def loader(settings, name, version):
        if version == "2":
            return load_bundle(bundle_dir)
        return registry_loader(settings, name, version)

    aliases = Aliases("1")
    app = _app_with(settings, loader, aliases)
    with TestClient(app) as client:
        aliases.value[NAME]["champion"] = "2"
        (event,) = app.state.manager.reload()
        assert event.result == "refused" and "GoldenMismatch" in event.reason
        r = client.post("/v1/signals", json=SIGNAL)
        assert r.status_code == 200 and r.json()["version"] == "1"
        assert client.get("/readyz").status_code == 200


def test_poller_picks_up_a_promotion(home, tmp_path):
    from fastapi.testclient import TestClient

    from tradeops.deploy.service import create_app
    from tradeops.model import registry as reg

    settings = _settings(home, tmp_path, poll_seconds=0.2)
    app = create_app(settings, clock=clock)
    with TestClient(app) as client:
        m = client.get("/v1/models").json()["models"][0]
        assert (m["champion"], m["challenger"]) == ("1", "2")
        reg.promote(settings, NAME, "2", "poll test", force=True)
        deadline = time.monotonic() + 20
        while app.state.manager.current.models[NAME].champion_version != "2" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.post("/v1/signals", json=SIGNAL).json()["version"] == "2"
