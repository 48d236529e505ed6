"""The Dagster instance of a tradeops home: ``DAGSTER_HOME=<home>/dagster`` with a generated ``dagster.yaml``.

Default storage is SQLite under that directory (no server). Instance storage on PostgreSQL (runs, event log,
schedules and sensors, via ``dagster-postgres``) is chosen by configuration only: ``TRADEOPS_DAGSTER_POSTGRES_URL``,
read by Dagster itself from the env at load time (``postgres_url: {env: ...}``), so the URL, which may hold a
password, is never written into the file. Every process that opens the instance (the webserver, the daemon, each
Celery worker) needs the variable. The URL names the psycopg2 driver, ``postgresql+psycopg2://user[:pw]@host:port/db``:
SQLAlchemy 2.1 maps a bare ``postgresql://`` to psycopg 3, on which dagster-postgres fails every event write
(``NOTIFY run_events, $1``; dagster-io/dagster#33958), so any other scheme is refused with that fix.

On a cluster the instance comes from ``deploy/k8s/dagster.yaml`` (the Helm chart's), not from here.
"""

from __future__ import annotations

import os
from pathlib import Path

from tradeops.config import Settings
from tradeops.errors import ConfigError

POSTGRES_URL_ENV = "TRADEOPS_DAGSTER_POSTGRES_URL"
_POSTGRES_SCHEME = "postgresql+psycopg2"


def postgres_url() -> str | None:
    """``$TRADEOPS_DAGSTER_POSTGRES_URL`` when set (non-empty), checked for a driver dagster-postgres works with."""
    url = os.environ.get(POSTGRES_URL_ENV, "").strip()
    if not url:
        return None
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme != _POSTGRES_SCHEME:
        # the scheme alone is shown: the rest of the URL may carry a password
        raise ConfigError(
            f"{POSTGRES_URL_ENV}: [dagster_postgres_url] the scheme must be {_POSTGRES_SCHEME}:// (dagster-postgres "
            f"works on psycopg2 only; SQLAlchemy 2.1 reads postgresql:// as psycopg 3), got {scheme or 'none'!r}; "
            f"e.g. {_POSTGRES_SCHEME}://postgres@127.0.0.1:5432/dagster"
        )
    return url


def instance_yaml(*, postgres: bool) -> str:
    """``dagster.yaml``: telemetry off; SQLite storage, or PostgreSQL from ``$TRADEOPS_DAGSTER_POSTGRES_URL``."""
    text = "telemetry:\n  enabled: false\n"
    if postgres:
        text += f"storage:\n  postgres:\n    postgres_url:\n      env: {POSTGRES_URL_ENV}\n"
    return text


def ensure_dagster_home(settings: Settings) -> Path:
    """Create ``<home>/dagster`` with its ``dagster.yaml`` (rewritten when the storage choice changed); returns it."""
    text = instance_yaml(postgres=postgres_url() is not None)
    home = settings.dagster_home
    home.mkdir(parents=True, exist_ok=True)
    path = home / "dagster.yaml"
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
