"""The prediction log, keys and audit on the local PostgreSQL server (a throwaway database per module)."""

from __future__ import annotations

import datetime as dt
import threading
import time
from concurrent.futures import wait

import pytest
import sqlalchemy as sa
from logrows import T0, make_record, throwaway_postgres_database, upgrade_concurrently

from tradeops.deploy import auth, predlog
from tradeops.deploy.predlog import PredictionLog, PredictionLogError

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def pg_url():
    with throwaway_postgres_database() as url:
        yield url


@pytest.fixture(scope="module")
def engine(pg_url):
    assert predlog.current_revision(pg_url) is None
    predlog.upgrade(pg_url)
    eng = predlog.make_engine(pg_url)
    yield eng
    eng.dispose()


# A challenger-answered canary row: every nullable column holds a value on PostgreSQL.
CANARY = dict(
    input_kind="features",
    input_hash="cd" * 32,
    features=[0.25, -2.0],
    champion_signal="SELL",
    champion_proba={"BUY": 0.1, "HOLD": 0.2, "SELL": 0.7},
    challenger_version="4",
    challenger_signal="HOLD",
    challenger_proba={"BUY": 0.2, "HOLD": 0.5, "SELL": 0.3},
    answered_by="challenger",
    routing_mode="canary",
    latency_ms=1.5,
    key_id="k9",
)


def record(rid: str, **overrides) -> predlog.PredictionRecord:
    return make_record(rid, **{**CANARY, **overrides})


def test_upgrade_creates_every_table_and_twice_is_a_no_op(pg_url, engine):
    assert predlog.current_revision(pg_url) == predlog.head_revision()
    predlog.upgrade(pg_url)
    assert predlog.current_revision(pg_url) == predlog.head_revision()
    assert {"predictions", "api_keys", "audit", "alembic_version"} <= set(sa.inspect(engine).get_table_names())


def test_concurrent_writes_are_committed_and_visible_when_write_returns(pg_url, engine):
    other = predlog.make_engine(pg_url)
    misses: list[str] = []
    with PredictionLog(engine) as log:

        def worker(t: int) -> None:
            for j in range(20):
                rid = f"pg-{t}-{j}"
                log.write(record(rid))
                with other.connect() as conn:
                    q = sa.select(predlog.predictions.c.request_id).where(predlog.predictions.c.request_id == rid)
                    if conn.execute(q).first() is None:
                        misses.append(rid)

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert misses == []
        assert log.rows_committed == 160
    other.dispose()


def test_duplicate_in_a_batch_fails_only_its_caller(engine):
    with PredictionLog(engine) as log:
        log.write(record("pg-dup"))
        # Hold the table so the writer blocks and the next rows queue up into one batch.
        with engine.connect() as locker:
            locker.execute(sa.text("LOCK TABLE predictions IN EXCLUSIVE MODE"))
            futures = [log.submit(record(f"pg-batch-{i}")) for i in range(5)]
            bad = log.submit(record("pg-dup"))
            time.sleep(0.1)
            assert not any(f.done() for f in [*futures, bad])
            locker.rollback()
        wait([*futures, bad], timeout=30)
        assert all(f.exception() is None for f in futures)
        with pytest.raises(PredictionLogError, match=r"\[duplicate_request_id\]"):
            bad.result()
        assert all(log.get(f"pg-batch-{i}") is not None for i in range(5))


def test_round_trip_keeps_types(engine):
    with PredictionLog(engine) as log:
        log.write(
            record("pg-types", received_at=dt.datetime(2024, 3, 1, 15, 30, tzinfo=dt.timezone(dt.timedelta(hours=1))))
        )
        got = log.get("pg-types")
    assert got["received_at"] == T0 and got["received_at"].utcoffset() == dt.timedelta(0)
    assert got["as_of"] == dt.date(2024, 2, 29)
    assert got["features"] == [0.25, -2.0] and got["challenger_proba"]["HOLD"] == 0.5
    assert got["halted"] is False and got["status"] == 200


def test_keys_and_audit_on_postgres(engine):
    key_id, token = auth.create_key(engine, role="operator", name="pg")
    verifier = auth.KeyVerifier(engine)
    info = verifier.verify(token)
    assert info is not None and auth.allows(info, "operator")
    auth.revoke_key(engine, key_id)
    assert auth.KeyVerifier(engine).verify(token) is None
    with engine.connect() as conn:
        dump = " ".join(str(tuple(r)) for r in conn.execute(sa.select(predlog.api_keys)))
    assert token.split("_", 2)[2] not in dump
    n = predlog.audit(engine, key_id=key_id, action="resume", arguments={}, result={"halted": False}, ok=True)
    rows = predlog.audit_rows(engine)
    assert rows[-1]["id"] == n and rows[-1]["result"] == {"halted": False}


def test_concurrent_upgrades_of_a_fresh_database_all_succeed():
    with throwaway_postgres_database() as url:
        assert upgrade_concurrently(url) == []
        assert predlog.current_revision(url) == predlog.head_revision()
