"""Helpers of the prediction-log tests (SQLite and PostgreSQL): a record with defaults, a throwaway PostgreSQL
database, and upgrades racing each other."""

from __future__ import annotations

import datetime as dt
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tradeops.deploy import predlog
from tradeops.deploy.predlog import PredictionRecord

T0 = dt.datetime(2024, 3, 1, 14, 30, tzinfo=dt.UTC)
ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"


def make_record(request_id: str, /, **overrides) -> PredictionRecord:
    """A valid champion-answered record for ``request_id``; ``overrides`` replace fields."""
    fields = dict(
        request_id=request_id,
        received_at=T0,
        ticker="IBM",
        as_of=dt.date(2024, 2, 29),
        input_kind="as_of",
        input_hash="ab" * 32,
        features=[0.5, -1.25, 3.0],
        model="cnn-ta-IBM",
        champion_version="3",
        champion_signal="BUY",
        champion_proba={"BUY": 0.7, "HOLD": 0.2, "SELL": 0.1},
        challenger_version=None,
        challenger_signal=None,
        challenger_proba=None,
        answered_by="champion",
        routing_mode="shadow",
        halted=False,
        latency_ms=0.8,
        key_id="k1",
        status=200,
    )
    fields.update(overrides)
    return PredictionRecord(**fields)


@contextmanager
def throwaway_postgres_database(prefix: str = "tradeops_predlog") -> Iterator[str]:
    """A new database on the local server (dropped afterwards); yields its SQLAlchemy URL. The server is part of
    the test environment: an unreachable one fails the test, never skips it."""
    psycopg = pytest.importorskip("psycopg")
    name = f"{prefix}_{secrets.token_hex(4)}"
    try:
        admin = psycopg.connect(ADMIN_DSN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:  # pragma: no cover
        pytest.fail(f"PostgreSQL at {ADMIN_DSN} is not reachable: {exc}")
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def upgrade_concurrently(url: str, n: int = 4) -> list[BaseException]:
    """Run ``n`` upgrades of ``url`` at once; the errors they raised."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            predlog.upgrade(url)
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return errors
