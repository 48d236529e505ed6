"""The Dagster instance of a tradeops home: ``DAGSTER_HOME=<home>/dagster`` with a generated ``dagster.yaml``.

Default storage is SQLite under that directory (no server). Instance storage on PostgreSQL is chosen by
configuration only: ``TRADEOPS_DAGSTER_POSTGRES_URL`` (read by Dagster itself from the env at load time, so the
URL, which may hold a password, is never written into the file).
"""

from __future__ import annotations

import os
from pathlib import Path

from tradeops.config import Settings

POSTGRES_URL_ENV = "TRADEOPS_DAGSTER_POSTGRES_URL"


def instance_yaml(*, postgres: bool) -> str:
    """``dagster.yaml``: telemetry off; SQLite storage, or PostgreSQL from ``$TRADEOPS_DAGSTER_POSTGRES_URL``."""
    text = "telemetry:\n  enabled: false\n"
    if postgres:
        text += f"storage:\n  postgres:\n    postgres_url:\n      env: {POSTGRES_URL_ENV}\n"
    return text


def ensure_dagster_home(settings: Settings) -> Path:
    """Create ``<home>/dagster`` with its ``dagster.yaml`` (rewritten when the storage choice changed); returns it."""
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    path = home / "dagster.yaml"
    text = instance_yaml(postgres=bool(os.environ.get(POSTGRES_URL_ENV)))
    if not path.is_file() or path.read_text() != text:
        tmp = path.with_suffix(".yaml.tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return home


def instance_for(settings: Settings):
    """The persistent :class:`dagster.DagsterInstance` of this home (runs show in `tradeops ui dagster`)."""
    from dagster import DagsterInstance

    home = ensure_dagster_home(settings)
    os.environ["DAGSTER_HOME"] = str(home)
    return DagsterInstance.from_config(str(home))
