"""Shared fixtures of the signal-service tests: apps over the session's trained IBM home (read only: the prediction
log goes to a per-test database), a home with two registered versions for admin and hot-swap tests, API keys."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from homes import copy_home as _copy_home
from tradeops.config import Settings, load_settings

NAME = "cnn-ta-IBM"
# A fixed "now" after the sample's last bar: the exchange date 2026-11-27 (a Friday session).
NOW = datetime(2026, 11, 27, 20, 0, tzinfo=UTC)
LAST_SAMPLE_DAY = date(2012, 6, 1)  # a session inside the sample's IBM history, well past the warm-up

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:starlette.*")


def clock() -> datetime:
    return NOW


def copy_home(src: Path, dst: Path) -> Path:
    """Copy a home without its service database (MLflow paths rewritten, see tests/homes.py)."""
    return _copy_home(src, dst, ignore=("service.db*",))


def settings_for(home: Path, db_dir: Path, model: dict | None = None, **service) -> Settings:
    return load_settings(
        home=home, model=model, database_url=f"sqlite:///{(db_dir / 'service.db').resolve()}", service=service
    )


@pytest.fixture()
def make_app(trained_ibm, tmp_path) -> Iterator[Callable]:
    """``make_app(model_set=None, **service_config) -> (app, client)`` over the trained IBM home; each app gets its
    own prediction-log database under ``tmp_path`` and is closed at teardown."""
    from fastapi.testclient import TestClient

    from tradeops.deploy.service import create_app

    base, _ = trained_ibm
    opened: list = []

    def make(model_set=None, *, db: Path | None = None, **service):
        d = db or tmp_path / f"db{len(opened)}"
        d.mkdir(exist_ok=True)
        settings = settings_for(base.home, d, base.model.model_dump(), **service)
        app = create_app(settings, model_set=model_set, clock=clock)
        client = TestClient(app)
        client.__enter__()
        opened.append(client)
        return app, client

    yield make
    for c in opened:
        c.__exit__(None, None, None)


def make_key(app, role: str) -> dict[str, str]:
    from tradeops.deploy.auth import create_key

    _, token = create_key(app.state.engine, role=role, name=f"test-{role}")
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def two_versions(trained_ibm, tmp_path_factory) -> Path:
    """A copy of the trained IBM home with a second version registered as challenger (v1 champion, v2
    challenger; 1 epoch, auto-promotion off). Module scope: tests copy it again before changing aliases."""
    from tradeops.model.training import train_model

    base, _ = trained_ibm
    home = copy_home(base.home, tmp_path_factory.mktemp("two-versions") / "home")
    model = base.model.model_dump()
    model["seed"] = 1
    model["blessing"]["auto_promote"] = False
    train_model(load_settings(home=home, model=model), preset="cnn-ta", tickers=["IBM"], epochs=1)
    return home
