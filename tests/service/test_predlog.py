"""Prediction log: group commit that returns only after the row is committed, row-by-row retry on a bad batch,
durability under SIGKILL (SQLite WAL), reads, audit rows."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import wait
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from logrows import T0, make_record

from tradeops.deploy import predlog
from tradeops.deploy.predlog import PredictionLog, PredictionLogError, PredictionRecord
from tradeops.errors import UsageError


def record(i: int | str, **overrides) -> PredictionRecord:
    received = T0 + dt.timedelta(milliseconds=int(i) if str(i).isdigit() else 0)
    return make_record(f"req-{i}", **{"received_at": received, **overrides})


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'service.db'}"
    predlog.upgrade(url)
    return url


@pytest.fixture
def engine(db_url: str):
    eng = predlog.make_engine(db_url)
    yield eng
    eng.dispose()


@contextmanager
def write_locked(db_url: str):
    """Hold SQLite's write lock from another connection, so the log's writer blocks and rows pile up."""
    con = sqlite3.connect(sa.make_url(db_url).database, isolation_level=None)
    con.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        con.execute("ROLLBACK")
        con.close()


def committed_ids(db_url: str) -> set[str]:
    con = sqlite3.connect(sa.make_url(db_url).database)
    try:
        return {r[0] for r in con.execute("SELECT request_id FROM predictions")}
    finally:
        con.close()


def test_make_engine_sets_wal_and_pragmas(engine):
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000


def test_every_write_is_visible_to_another_connection_when_it_returns(db_url, engine):
    other = predlog.make_engine(db_url)
    misses: list[str] = []
    with PredictionLog(engine) as log:

        def worker(t: int) -> None:
            for j in range(25):
                rec = record(f"{t}-{j}")
                log.write(rec)
                with other.connect() as conn:
                    seen = conn.execute(
                        sa.select(predlog.predictions.c.request_id).where(
                            predlog.predictions.c.request_id == rec.request_id
                        )
                    ).first()
                if seen is None:
                    misses.append(rec.request_id)

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert misses == []
        assert log.count() == 200
        assert log.rows_committed == 200
    other.dispose()


def test_rows_waiting_behind_a_commit_are_committed_in_one_batch(db_url, engine):
    with PredictionLog(engine, batch_wait_ms=0) as log:
        with write_locked(db_url):
            futures = [log.submit(record(i)) for i in range(20)]
            time.sleep(0.05)
            assert not any(f.done() for f in futures), "a write returned before its commit"
        wait(futures, timeout=30)
        assert all(f.exception() is None for f in futures)
        # whatever the writer had drained before blocking went in one commit, everything queued behind it in one more
        # (on a loaded machine the writer may drain several rows while the 20 are still being submitted)
        assert log.commits <= 2
        assert log.max_batch >= 10
        assert committed_ids(db_url) == {f"req-{i}" for i in range(20)}


def test_a_lone_write_is_committed_at_once_without_waiting_for_company(engine):
    with PredictionLog(engine, batch_wait_ms=50) as log:
        took = []
        for i in range(30):
            start = time.perf_counter()
            log.write(record(i))
            took.append(time.perf_counter() - start)
        assert log.commits == 30  # nothing to coalesce: one commit per row
        took.sort()
        assert took[len(took) // 2] < 0.02, f"median lone write {took[len(took) // 2] * 1e3:.1f} ms (batch wait is 50)"


def test_batch_max_caps_a_transaction(db_url, engine):
    with PredictionLog(engine, batch_max=4, batch_wait_ms=0) as log:
        with write_locked(db_url):
            futures = [log.submit(record(i)) for i in range(13)]
            time.sleep(0.02)
        wait(futures, timeout=30)
        assert log.max_batch == 4
        assert log.commits >= 4
        assert log.count() == 13


def test_duplicate_request_id_fails_only_its_caller_and_keeps_the_batch(db_url, engine):
    with PredictionLog(engine) as log:
        log.write(record("dup"))
        with write_locked(db_url):
            good = [log.submit(record(i)) for i in range(6)]
            bad = log.submit(record("dup", ticker="MSFT"))
            more = [log.submit(record(i)) for i in range(6, 10)]
            same_twice = [log.submit(record("twin")), log.submit(record("twin"))]
            time.sleep(0.02)
        wait([*good, bad, *more, *same_twice], timeout=30)
        assert [f.exception() for f in good + more] == [None] * 10
        with pytest.raises(PredictionLogError, match=r"request req-dup: \[duplicate_request_id\]") as err:
            bad.result()
        assert err.value.request_id == "req-dup"
        assert sorted(f.exception() is None for f in same_twice) == [False, True]
        assert committed_ids(db_url) == {f"req-{i}" for i in range(10)} | {"req-dup", "req-twin"}
        assert log.get("req-dup")["ticker"] == "IBM"  # the first row stays, the duplicate was refused


def test_write_raises_the_commit_error_in_the_caller(engine):
    with PredictionLog(engine) as log:
        log.write(record(1))
        with pytest.raises(PredictionLogError, match=r"\[duplicate_request_id\]"):
            log.write(record(1))
        log.write(record(2))  # the writer survives a failed batch
        assert log.count() == 2


def test_get_returns_the_record_as_logged(engine):
    rec = record(
        7,
        challenger_version="4",
        challenger_signal="SELL",
        challenger_proba={"BUY": 0.1, "HOLD": 0.3, "SELL": 0.6},
        received_at=dt.datetime(2024, 3, 1, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
        as_of="2024-02-29",
        key_id=None,
        halted=True,
        answered_by="halt",
    )
    with PredictionLog(engine) as log:
        log.write(rec)
        got = log.get("req-7")
        assert log.get("missing") is None
    assert set(got) == set(predlog.RECORD_FIELDS)
    assert got["received_at"] == dt.datetime(2024, 3, 1, 14, 30, tzinfo=dt.UTC)
    assert got["received_at"].tzinfo is dt.UTC
    assert got["as_of"] == dt.date(2024, 2, 29)
    assert got["features"] == [0.5, -1.25, 3.0]
    assert got["challenger_proba"] == {"BUY": 0.1, "HOLD": 0.3, "SELL": 0.6}
    assert got["champion_proba"] == {"BUY": 0.7, "HOLD": 0.2, "SELL": 0.1}
    assert got["halted"] is True and got["answered_by"] == "halt" and got["key_id"] is None
    assert got["status"] == 200 and got["latency_ms"] == 0.8


def test_recent_is_newest_first_and_bounded(engine):
    with PredictionLog(engine) as log:
        for i in range(10):
            log.write(record(i))
        assert [r["request_id"] for r in log.recent(3)] == ["req-9", "req-8", "req-7"]
        assert len(log.recent(100)) == 10
        assert log.count() == 10


@pytest.mark.parametrize(
    "field, value, rule",
    [
        ("received_at", dt.datetime(2024, 3, 1, 14, 30), "received_at"),
        ("input_kind", "csv", "input_kind"),
        ("answered_by", "nobody", "answered_by"),
        ("request_id", "", "request_id"),
    ],
)
def test_bad_record_is_refused_in_the_caller_naming_the_field(engine, field, value, rule):
    with PredictionLog(engine) as log:
        with pytest.raises(UsageError, match=rf"\[{rule}\]"):
            log.write(record(1, **{field: value}))
        assert log.count() == 0


def test_awrite_does_not_block_the_event_loop(db_url, engine):
    """While another connection holds SQLite's write lock, an awaited write waits off the loop: the loop keeps
    ticking every ~10 ms (an inline commit that waited on the lock would stall it for the 30 s busy timeout)."""

    async def scenario(log: PredictionLog) -> None:
        with write_locked(db_url):
            task = asyncio.ensure_future(log.awrite(record(1)))
            gaps = []
            for _ in range(5):
                t0 = time.perf_counter()
                await asyncio.sleep(0.01)
                gaps.append(time.perf_counter() - t0)
            assert max(gaps) < 1.0, f"the event loop stalled {max(gaps):.1f} s"
            assert not task.done()
        await asyncio.wait_for(task, 30)
        await asyncio.gather(*(log.awrite(record(i)) for i in range(2, 50)))

    with PredictionLog(engine) as log:
        asyncio.run(scenario(log))
        assert log.count() == 49


def test_close_drains_the_queue_and_refuses_later_writes(db_url, engine):
    log = PredictionLog(engine)
    with write_locked(db_url):
        futures = [log.submit(record(i)) for i in range(30)]
        closer = threading.Thread(target=log.close)
        closer.start()
        time.sleep(0.02)
    closer.join(30)
    assert all(f.done() and f.exception() is None for f in futures)
    assert log.count() == 30
    with pytest.raises(PredictionLogError, match=r"\[log_closed\]"):
        log.write(record(99))
    log.close()  # idempotent


def test_constructor_rejects_bad_batch_settings(engine):
    with pytest.raises(UsageError, match=r"\[batch_max\]"):
        PredictionLog(engine, batch_max=0)
    with pytest.raises(UsageError, match=r"\[batch_wait_ms\]"):
        PredictionLog(engine, batch_wait_ms=-1)


def test_audit_rows_are_written_and_read_back(engine):
    first = predlog.audit(
        engine, key_id="k1", action="halt", arguments={"reason": "news"}, result={"halted": True}, ok=True
    )
    second = predlog.audit(
        engine,
        key_id=None,
        action="promote",
        arguments={"model": "m", "version": "9"},
        result={"error": "[unknown_version] 9"},
        ok=False,
    )
    assert second > first
    rows = predlog.audit_rows(engine)
    assert [r["id"] for r in rows] == [first, second]
    assert rows[0]["action"] == "halt" and rows[0]["arguments"] == {"reason": "news"}
    assert rows[0]["result"] == {"halted": True} and rows[0]["ok"] is True and rows[0]["key_id"] == "k1"
    assert rows[1]["ok"] is False and rows[1]["key_id"] is None and rows[1]["arguments"]["version"] == "9"
    assert rows[0]["at"].tzinfo is dt.UTC
    assert dt.datetime.now(dt.UTC) - rows[1]["at"] < dt.timedelta(minutes=1)
    assert [r["id"] for r in predlog.audit_rows(engine, limit=1)] == [second]


def test_throughput_with_8_threads(engine, capsys):
    """Not a benchmark gate: prints writes/s (8 threads, SQLite WAL) and checks it is not absurdly slow."""
    n_threads, per_thread = 8, 250
    with PredictionLog(engine) as log:
        barrier = threading.Barrier(n_threads)

        def worker(t: int) -> None:
            barrier.wait()
            for j in range(per_thread):
                log.write(record(f"{t}-{j}"))

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
        start = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        elapsed = time.perf_counter() - start
        total = n_threads * per_thread
        assert log.count() == total
        rate = total / elapsed
        with capsys.disabled():
            print(
                f"\n[predlog] {total} writes, 8 threads, SQLite WAL: {rate:,.0f} writes/s, "
                f"{log.commits} commits (mean batch {total / log.commits:.1f}, max {log.max_batch})"
            )
        assert log.commits < total  # rows were grouped
        assert rate > 300


CRASH_WRITER = textwrap.dedent(
    """
    import datetime as dt, sys, threading
    from tradeops.deploy import predlog

    url = sys.argv[1]
    engine = predlog.make_engine(url)
    log = predlog.PredictionLog(engine)
    out = threading.Lock()
    T0 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)

    def worker(t):
        j = 0
        while True:
            rid = f"{t}-{j}"
            log.write(predlog.PredictionRecord(
                request_id=rid, received_at=T0, ticker="IBM", as_of=dt.date(2024, 2, 29), input_kind="features",
                input_hash="00" * 32, features=[float(j)] * 225, model="m", champion_version="1",
                champion_signal="HOLD", champion_proba={"HOLD": 1.0}, challenger_version=None,
                challenger_signal=None, challenger_proba=None, answered_by="champion", routing_mode="off",
                halted=False, latency_ms=0.1, key_id=None, status=200))
            with out:
                sys.stdout.write(rid + "\\n")
                sys.stdout.flush()
            j += 1

    for t in range(4):
        threading.Thread(target=worker, args=(t,), daemon=True).start()
    threading.Event().wait()
    """
)


def test_sigkill_mid_stream_loses_no_acknowledged_row(db_url, tmp_path):
    script = tmp_path / "writer.py"
    script.write_text(CRASH_WRITER)
    env = os.environ | {"PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(script), db_url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    acknowledged: list[str] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        while len(acknowledged) < 1500 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            acknowledged.append(line.strip())
        os.kill(proc.pid, signal.SIGKILL)
        rest, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    acknowledged += [x for x in rest.splitlines() if x.strip()]
    # a partial last line (killed mid-write) was never a complete acknowledgement
    acknowledged = [x for x in acknowledged if x.count("-") == 1 and x.split("-")[1].isdigit()]
    assert proc.returncode == -signal.SIGKILL
    assert len(acknowledged) >= 1000, f"writer printed only {len(acknowledged)} ids; stderr:\n{err[-2000:]}"
    stored = committed_ids(db_url)
    missing = set(acknowledged) - stored
    assert not missing, f"{len(missing)} acknowledged rows lost, e.g. {sorted(missing)[:5]}"


# --- inline commits: the service's path on an idle local log ------------------------------------------------------


def test_an_idle_local_log_commits_an_async_write_inline_and_durably(engine, db_url):
    with PredictionLog(engine) as log:
        asyncio.run(log.awrite(record("inline-1")))
        assert (log.inline_commits, log.commits) == (1, 1)
        other = predlog.make_engine(db_url)  # another connection sees it the moment awrite returned
        with other.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM predictions")).scalar_one() == 1
        other.dispose()


def test_one_answers_rows_are_one_inline_transaction(engine):
    with PredictionLog(engine) as log:
        asyncio.run(log.awrite_many([record(f"many-{i}") for i in range(5)]))
        assert (log.inline_commits, log.commits, log.rows_committed) == (1, 1, 5)


def test_a_bad_row_among_inline_rows_fails_alone(engine):
    with PredictionLog(engine) as log:
        log.write(record("dup"))
        with pytest.raises(PredictionLogError) as err:
            asyncio.run(log.awrite_many([record("ok-1"), record("dup"), record("ok-2")]))
        assert err.value.rule == "duplicate_request_id" and err.value.request_id == "req-dup"
        assert log.get("req-ok-1") is not None and log.get("req-ok-2") is not None  # retried one by one


def test_a_busy_or_networked_log_takes_the_writer_thread(engine):
    with PredictionLog(engine, inline=False) as log:  # what a PostgreSQL log does (its round trip off the loop)
        asyncio.run(log.awrite(record("queued")))
        assert (log.inline_commits, log.commits) == (0, 1)
    with PredictionLog(engine) as log, log._commit_lock:  # a commit in flight: no inline commit beside it
        fut = log.submit(record("behind"))
        assert not fut.done()
    assert log.get("req-behind") is not None
