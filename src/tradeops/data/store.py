"""Versioned storage of the Data level in Delta Lake tables (delta-rs).

One directory per table under the lake root. Every write is one atomic Delta commit (a new table version) carrying
metadata (operation, source, report id, row counts), so the table history is the audit trail and any past version
is readable with ``version=N`` (time travel). Dates are stored as ``date32`` (the trading date), times as UTC.

Reads filter tickers on the scanned rows, whatever string layout each file has (:func:`is_in_strings`), never
through per-file statistics. Writers of a home's Data-level tables hold its lock (:func:`writer_lock`) and only ever
undo their own commit (:meth:`Lake.undo`).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from tradeops.errors import TradeopsError

BARS = "bars"
QUARANTINE = "quarantine"
STATS = "bar_stats"
REPORTS = "validation_reports"
LINEAGE = "lineage"

_F = pa.float64()
BARS_SCHEMA = pa.schema(
    [
        ("ticker", pa.string()),
        ("date", pa.date32()),
        ("open", _F),
        ("high", _F),
        ("low", _F),
        ("close", _F),
        ("volume", _F),
        ("adj_open", _F),
        ("adj_high", _F),
        ("adj_low", _F),
        ("adj_close", _F),
        ("adj_volume", _F),
        ("dividend", _F),
        ("split_ratio", _F),
        ("source", pa.string()),
        ("ingested_at", pa.timestamp("us", tz="UTC")),
        ("report_id", pa.string()),
    ]
)
QUARANTINE_SCHEMA = pa.schema(
    [
        ("ticker", pa.string()),
        ("date", pa.date32()),
        ("row", pa.int64()),
        ("open", _F),
        ("high", _F),
        ("low", _F),
        ("close", _F),
        ("volume", _F),
        ("adj_close", _F),
        ("rules", pa.string()),
        ("reason", pa.string()),
        ("payload_excerpt", pa.string()),
        ("source", pa.string()),
        ("location", pa.string()),
        ("report_id", pa.string()),
        ("quarantined_at", pa.timestamp("us", tz="UTC")),
    ]
)
STATS_SCHEMA = pa.schema(
    [
        ("ticker", pa.string()),
        ("n_rows", pa.int64()),
        ("first_date", pa.string()),
        ("last_date", pa.string()),
        ("adj_close_min", _F),
        ("adj_close_max", _F),
        ("ret_mean", _F),
        ("ret_std", _F),
        ("ret_q01", _F),
        ("ret_q99", _F),
        ("ret_absmax", _F),
        ("volume_median", _F),
        ("logvol_mean", _F),
        ("logvol_std", _F),
        ("zero_volume_frac", _F),
        ("null_frac", _F),
        ("bars_version", pa.int64()),
        ("report_id", pa.string()),
        ("computed_at", pa.timestamp("us", tz="UTC")),
    ]
)
REPORTS_SCHEMA = pa.schema(
    [
        ("report_id", pa.string()),
        ("ticker", pa.string()),
        ("status", pa.string()),
        ("source", pa.string()),
        ("location", pa.string()),
        ("sha256", pa.string()),
        ("bytes", pa.int64()),
        ("rows_in", pa.int64()),
        ("rows_written", pa.int64()),
        ("errors", pa.int64()),
        ("warnings", pa.int64()),
        ("findings_json", pa.string()),
        ("bars_version", pa.int64()),
        ("created_at", pa.timestamp("us", tz="UTC")),
    ]
)
LINEAGE_SCHEMA = pa.schema(
    [
        ("dataset", pa.string()),
        ("dataset_version", pa.int64()),
        ("consumer_kind", pa.string()),
        ("consumer", pa.string()),
        ("consumer_version", pa.string()),
        ("recorded_at", pa.timestamp("us", tz="UTC")),
    ]
)
SCHEMAS = {
    BARS: BARS_SCHEMA,
    QUARANTINE: QUARANTINE_SCHEMA,
    STATS: STATS_SCHEMA,
    REPORTS: REPORTS_SCHEMA,
    LINEAGE: LINEAGE_SCHEMA,
}
KEYS = {BARS: ("ticker", "date"), STATS: ("ticker",)}


def utcnow() -> datetime:
    return datetime.now(UTC)


def _to_arrow(df: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    """Frame -> table with exactly ``schema``'s columns and types (missing nullable columns become null)."""
    data = {}
    n = len(df)
    for field in schema:
        if field.name in df.columns:
            col = df[field.name]
            if pa.types.is_date32(field.type):
                col = pd.to_datetime(col).dt.date
            elif pa.types.is_timestamp(field.type) and col.dtype == object:
                col = pd.to_datetime(col, utc=True, format="ISO8601")  # ISO text, e.g. rows read back from JSON
            data[field.name] = pa.array(col, type=field.type, from_pandas=True)
        else:
            data[field.name] = pa.nulls(n, type=field.type)
    return pa.table(data, schema=schema)


def is_in_strings(values: pa.Array | pa.ChunkedArray, wanted: pa.Array) -> pa.ChunkedArray | pa.Array:
    """Boolean mask: which ``values`` are in ``wanted`` (a ``string`` array), whatever the string layout of ``values``.

    delta-rs hands a string column back as ``string``, ``large_string`` or ``string_view`` (a MERGE writes
    ``string_view`` files next to older ``string`` ones); the values are cast to ``string`` before comparing.
    """
    import pyarrow.compute as pc

    return pc.is_in(values.cast(pa.string()), value_set=wanted)


def _plain_strings(tbl: pa.Table) -> pa.Table:
    """``large_string`` / ``string_view`` columns as ``string``, so every read has one layout."""
    odd = [f for f in tbl.schema if pa.types.is_string_view(f.type) or pa.types.is_large_string(f.type)]
    if not odd:
        return tbl
    return tbl.cast(pa.schema([pa.field(f.name, pa.string(), f.nullable) if f in odd else f for f in tbl.schema]))


def read_delta(
    dt, schema: pa.Schema | None = None, *, tickers: list[str] | None = None, columns: list[str] | None = None
) -> pa.Table:
    """Read a Delta table snapshot into Arrow, optionally only ``tickers`` and ``columns``.

    The ticker filter is applied to the scanned rows (:func:`is_in_strings`), never handed to the dataset scan: the
    fragments delta-rs builds carry its per-file statistics as typed guarantees, and pyarrow simplifies a filter
    against them, which fails ("'greater_equal' has no kernel matching input types (string, string_view)") once
    files of different string layouts sit in one table. Scans single-threaded on purpose: pyarrow's threaded
    dataset scan over delta-rs files makes the interpreter abort at exit ("terminate called without an active
    exception") in about a third of runs here, which would turn a successful CLI command into exit code 134.
    Strings come back as declared in ``schema``, else as plain ``string``.
    """
    dataset = dt.to_pyarrow_dataset()
    if tickers:
        scan_columns = columns if columns is None or "ticker" in columns else [*columns, "ticker"]
        scanner = dataset.scanner(columns=scan_columns, use_threads=False)
        wanted = pa.array(sorted({str(t) for t in tickers}), pa.string())
        parts = [b.filter(is_in_strings(b.column("ticker"), wanted)) for b in scanner.to_batches()]
        tbl = pa.Table.from_batches(parts, schema=scanner.projected_schema)
        if columns is not None:
            tbl = tbl.select(columns)
    else:
        tbl = dataset.scanner(columns=columns, use_threads=False).to_table()
    tbl = _plain_strings(tbl)
    if schema is not None:
        names = set(schema.names)
        tbl = tbl.cast(pa.schema([schema.field(n) if n in names else tbl.schema.field(n) for n in tbl.column_names]))
    return tbl


_LATEST: dict[str, tuple[Any, tuple[int, int]]] = {}
_LATEST_LOCK = threading.Lock()


def _first_commit(uri: str) -> tuple[int, int] | None:
    """Identity of a local table's first commit file (inode, mtime): a table deleted and created again differs."""
    try:
        st_ = os.stat(os.path.join(uri, "_delta_log", f"{0:020d}.json"))
    except OSError:
        return None
    return st_.st_ino, st_.st_mtime_ns


def _latest(uri: str):
    """A local table at its latest version: the cached handle updated incrementally (reads only new commits), or a
    fresh open when none is cached or the table was deleted or created again since (its first commit differs).
    Tables whose first commit was vacuumed away are opened fresh every time."""
    from deltalake import DeltaTable

    ident = _first_commit(uri)
    with _LATEST_LOCK:
        cached = _LATEST.get(uri)
        if cached is not None and ident is not None and cached[1] == ident:
            dt = cached[0]
            dt.update_incremental()
            return dt
        dt = DeltaTable(uri)
        if ident is not None:
            _LATEST[uri] = (dt, ident)
        else:
            _LATEST.pop(uri, None)
        return dt


#: A table whose current snapshot holds more files than this is compacted by :meth:`Lake.compact`.
COMPACT_ABOVE_FILES = 32


@dataclass(frozen=True)
class Lake:
    """The Delta tables under one root (a local directory or an object-store URI)."""

    root: str
    storage_options: dict | None = None

    def uri(self, table: str) -> str:
        return f"{self.root.rstrip('/')}/{table}"

    def exists(self, table: str) -> bool:
        from deltalake import DeltaTable

        return DeltaTable.is_deltatable(self.uri(table), storage_options=self.storage_options)

    def table(self, table: str, version: int | None = None):
        """The Delta table, at ``version`` (time travel) or at its latest version.

        The latest version of a local table comes from a process-wide cache brought up to date from the log
        (:func:`_latest`): opening a table replays its log, and a daily job opens each table dozens of times.
        """
        from deltalake import DeltaTable

        uri = self.uri(table)
        if version is None and self.storage_options is None and "://" not in uri:
            return _latest(uri)
        return DeltaTable(uri, version=version, storage_options=self.storage_options)

    def version(self, table: str) -> int | None:
        """Current version of ``table``, ``None`` when it does not exist yet."""
        return self.table(table).version() if self.exists(table) else None

    def read(
        self,
        table: str,
        *,
        version: int | None = None,
        tickers: list[str] | None = None,
        columns: list[str] | None = None,
    ) -> pd.DataFrame:
        """Read a table (optionally an older version) as pandas; an absent table reads as empty."""
        schema = SCHEMAS[table]
        if not self.exists(table):
            return schema.empty_table().to_pandas()
        tbl = self.arrow(table, version=version, tickers=tickers, columns=columns)
        df = tbl.to_pandas()
        if "date" in df.columns and len(df):
            df["date"] = pd.to_datetime(df["date"])
        return df

    def arrow(
        self,
        table: str,
        *,
        version: int | None = None,
        tickers: list[str] | None = None,
        columns: list[str] | None = None,
    ) -> pa.Table:
        """Read a table as Arrow with the declared schema types, optionally filtered to ``tickers``."""
        return read_delta(self.table(table, version), SCHEMAS.get(table), tickers=tickers, columns=columns)

    def read_bars(self, tickers: list[str] | None = None, version: int | None = None) -> pd.DataFrame:
        """Validated, adjusted bars sorted by (ticker, date); ``version`` reads that table version (time travel)."""
        df = self.read(BARS, version=version, tickers=tickers)
        if len(df):
            df = df.sort_values(["ticker", "date"], kind="stable").reset_index(drop=True)
        else:
            df["date"] = pd.to_datetime(df["date"])
        return df

    def _write(self, table: str, df: pd.DataFrame, metadata: dict[str, Any]) -> int:
        from deltalake import CommitProperties, write_deltalake

        data = _to_arrow(df, SCHEMAS[table])
        write_deltalake(
            self.uri(table),
            data,
            mode="append",
            storage_options=self.storage_options,
            commit_properties=CommitProperties(custom_metadata=_meta(metadata)),
            name=table,
        )
        return self.table(table).version()

    def append(self, table: str, df: pd.DataFrame, metadata: dict[str, Any]) -> int:
        """Append rows as one new version; returns it."""
        return self._write(table, df, metadata)

    def upsert(self, table: str, df: pd.DataFrame, metadata: dict[str, Any]) -> int:
        """Insert or update rows on the table's key as one new version (Delta merge); returns it."""
        from deltalake import CommitProperties

        if not self.exists(table):
            return self._write(table, df, metadata)
        keys = KEYS[table]
        predicate = " AND ".join(f"t.{k} = s.{k}" for k in keys)
        dt = self.table(table)
        (
            dt.merge(
                _to_arrow(df, SCHEMAS[table]),
                predicate=predicate,
                source_alias="s",
                target_alias="t",
                commit_properties=CommitProperties(custom_metadata=_meta(metadata)),
            )
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .execute()
        )
        return self.table(table).version()

    def compact(self, table: str, *, max_files: int = COMPACT_ABOVE_FILES) -> int | None:
        """Bin-pack the current snapshot's files into few (Delta OPTIMIZE) when it holds more than ``max_files``,
        then write a checkpoint; returns the new version, or ``None`` when nothing was needed.

        A daily writer adds one small file per commit, and every read pays for each file (and each log entry
        since the last checkpoint), so without this a table read gets slower every day. Rows and every older
        version are unchanged (nothing is vacuumed: time travel still works). The commit carries the previous
        commit's metadata (``bars_version``, ``tickers``, ...) with ``operation`` = ``compact``, so readers of the
        latest commit's metadata see what they saw before. Call it only at a point where no writer may still undo
        its own commit (:meth:`undo` refuses once the version moved on).
        """
        from deltalake import CommitProperties

        if not self.exists(table):
            return None
        dt = self.table(table)
        if len(dt.file_uris()) <= max_files:
            return None
        last = self.history(table, limit=1)[0]
        carried = {k: v for k, v in last.items() if k not in ("version", "delta_operation", "timestamp")}
        meta = {**carried, "operation": "compact", "compacted_from": last["version"]}
        dt.optimize.compact(commit_properties=CommitProperties(custom_metadata=_meta(meta)))
        dt = self.table(table)
        dt.create_checkpoint()
        return dt.version()

    def restore(self, table: str, version: int, reason: str, **metadata: Any) -> int:
        """Make ``version``'s content current again (a new version); ``metadata`` goes into the commit."""
        from deltalake import CommitProperties

        dt = self.table(table)
        dt.restore(
            version,
            commit_properties=CommitProperties(
                custom_metadata=_meta({"operation": "restore", "reason": reason, **metadata})
            ),
        )
        return self.table(table).version()

    def undo(self, table: str, written: int, before: int | None, reason: str, **metadata: Any) -> bool:
        """Undo this writer's own commit ``written`` by restoring ``before`` (no table before: delete every row),
        only while ``written`` is still the current version; never over a version someone else wrote.

        Returns whether it undid. Meant for a writer holding the home's lock (:func:`writer_lock`).
        """
        from deltalake import CommitProperties

        if self.version(table) != written:
            return False
        if before is not None:
            self.restore(table, before, reason, **metadata)
        else:
            self.table(table).delete(
                commit_properties=CommitProperties(
                    custom_metadata=_meta({"operation": "restore", "reason": reason, **metadata})
                )
            )
        return True

    def delete_tickers(self, table: str, tickers: list[str], metadata: dict[str, Any]) -> int | None:
        """Delete every row of ``tickers`` as one new version; returns it (``None`` when the table is absent)."""
        from deltalake import CommitProperties

        if not self.exists(table) or not tickers:
            return self.version(table)
        quoted = ", ".join("'" + t.replace("'", "''") + "'" for t in tickers)
        self.table(table).delete(
            f"ticker IN ({quoted})", commit_properties=CommitProperties(custom_metadata=_meta(metadata))
        )
        return self.table(table).version()

    def history(self, table: str, limit: int | None = None) -> list[dict]:
        """Table versions, newest first (the newest ``limit`` when given): version, timestamp, operation and our
        commit metadata."""
        if not self.exists(table):
            return []
        out = []
        for h in self.table(table).history(limit=limit):
            meta = {"version": h.get("version"), "delta_operation": h.get("operation")}
            meta.update({k.removeprefix(META_PREFIX): v for k, v in h.items() if k.startswith(META_PREFIX)})
            ts = h.get("timestamp")
            meta["timestamp"] = (
                datetime.fromtimestamp(ts / 1000, UTC).isoformat() if isinstance(ts, (int, float)) else ts
            )
            out.append(meta)
        return out

    def record_lineage(
        self, dataset: str, dataset_version: int, consumer_kind: str, consumer: str, consumer_version: str
    ) -> int:
        """Record that ``consumer`` (e.g. a registered model version) read ``dataset`` at ``dataset_version``."""
        row = pd.DataFrame(
            [
                {
                    "dataset": dataset,
                    "dataset_version": dataset_version,
                    "consumer_kind": consumer_kind,
                    "consumer": consumer,
                    "consumer_version": consumer_version,
                    "recorded_at": utcnow(),
                }
            ]
        )
        return self.append(LINEAGE, row, {"operation": "lineage", "dataset": dataset})


META_PREFIX = "tradeops."


def _meta(metadata: dict[str, Any]) -> dict[str, str]:
    """Commit metadata, namespaced so it never collides with the keys delta-rs writes itself."""
    return {META_PREFIX + k: v if isinstance(v, str) else json.dumps(v, default=str) for k, v in metadata.items()}


def lake_for(settings) -> Lake:
    """The lake configured in ``settings`` (creates the local root folder when it is a path)."""
    root = settings.lake
    if "://" not in root:
        Path(root).mkdir(parents=True, exist_ok=True)
        root = str(Path(root).resolve())
    return Lake(root)


def lock_path(home: str | Path, name: str = "ingest") -> Path:
    """The lock file of one kind of writer of a home: ``<home>/locks/<name>.lock``."""
    return Path(home) / "locks" / f"{name}.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _holder(fd: int, wait_s: float = 1.0) -> str:
    """Who holds the lock, from the file its holder writes right after taking it (waits briefly for that write)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            info = json.loads(os.pread(fd, 4096, 0).decode() or "null")
            if isinstance(info, dict) and _alive(int(info["pid"])):
                return f"pid {info['pid']}, since {info['since']}"
        except (ValueError, KeyError, TypeError):
            pass
        if time.monotonic() > deadline:
            return "pid unknown"
        time.sleep(0.02)


@contextmanager
def writer_lock(
    home: str | Path, name: str = "ingest", what: str = "ingestion", *, wait_seconds: float = 0.0
) -> Iterator[Path]:
    """Hold the home's exclusive ``name`` lock for the block: one writer of the Data-level tables at a time.

    Non-blocking ``fcntl.flock`` on ``<home>/locks/<name>.lock``; the holder writes its pid and start time (UTC)
    into the file. A second writer gets ``TradeopsError("another ingestion is running (pid N, since T)")``, after
    retrying for up to ``wait_seconds`` (default 0: at once; pipelines whose per-ticker steps run in parallel
    processes wait their turn). The kernel drops the lock when its process dies, even by ``kill -9``, so a crash
    never leaves a stale lock. Per open file, so two threads of one process exclude each other too.
    """
    import fcntl

    path = lock_path(home, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + max(wait_seconds, 0.0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    waited = f" after waiting {wait_seconds:g}s" if wait_seconds > 0 else ""
                    raise TradeopsError(f"another {what} is running ({_holder(fd)}){waited}; lock {path}") from None
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "since": utcnow().isoformat(timespec="seconds")}).encode(), 0)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)  # a later writer never reports this finished run as the holder
    finally:
        os.close(fd)  # closing the only descriptor releases the lock
