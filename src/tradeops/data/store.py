"""Versioned storage of the Data level in Delta Lake tables (delta-rs).

One directory per table under the lake root. Every write is one atomic Delta commit (a new table version) carrying
metadata (operation, source, report id, row counts), so the table history is the audit trail and any past version
is readable with ``version=N`` (time travel). Dates are stored as ``date32`` (the trading date), times as UTC.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

BARS = "bars"
QUARANTINE = "quarantine"
STATS = "bar_stats"
REPORTS = "validation_reports"
LINEAGE = "lineage"

_F = pa.float64()
BARS_SCHEMA = pa.schema([
    ("ticker", pa.string()), ("date", pa.date32()),
    ("open", _F), ("high", _F), ("low", _F), ("close", _F), ("volume", _F),
    ("adj_open", _F), ("adj_high", _F), ("adj_low", _F), ("adj_close", _F), ("adj_volume", _F),
    ("dividend", _F), ("split_ratio", _F),
    ("source", pa.string()), ("ingested_at", pa.timestamp("us", tz="UTC")), ("report_id", pa.string()),
])
QUARANTINE_SCHEMA = pa.schema([
    ("ticker", pa.string()), ("date", pa.date32()), ("row", pa.int64()),
    ("open", _F), ("high", _F), ("low", _F), ("close", _F), ("volume", _F), ("adj_close", _F),
    ("rules", pa.string()), ("reason", pa.string()), ("payload_excerpt", pa.string()),
    ("source", pa.string()), ("location", pa.string()), ("report_id", pa.string()),
    ("quarantined_at", pa.timestamp("us", tz="UTC")),
])
STATS_SCHEMA = pa.schema([
    ("ticker", pa.string()), ("n_rows", pa.int64()), ("first_date", pa.string()), ("last_date", pa.string()),
    ("adj_close_min", _F), ("adj_close_max", _F), ("ret_mean", _F), ("ret_std", _F), ("ret_q01", _F),
    ("ret_q99", _F), ("ret_absmax", _F), ("volume_median", _F), ("logvol_mean", _F), ("logvol_std", _F),
    ("zero_volume_frac", _F), ("null_frac", _F), ("bars_version", pa.int64()), ("report_id", pa.string()),
    ("computed_at", pa.timestamp("us", tz="UTC")),
])
REPORTS_SCHEMA = pa.schema([
    ("report_id", pa.string()), ("ticker", pa.string()), ("status", pa.string()), ("source", pa.string()),
    ("location", pa.string()), ("sha256", pa.string()), ("bytes", pa.int64()), ("rows_in", pa.int64()),
    ("rows_written", pa.int64()), ("errors", pa.int64()), ("warnings", pa.int64()), ("findings_json", pa.string()),
    ("bars_version", pa.int64()), ("created_at", pa.timestamp("us", tz="UTC")),
])
LINEAGE_SCHEMA = pa.schema([
    ("dataset", pa.string()), ("dataset_version", pa.int64()), ("consumer_kind", pa.string()),
    ("consumer", pa.string()), ("consumer_version", pa.string()), ("recorded_at", pa.timestamp("us", tz="UTC")),
])
SCHEMAS = {BARS: BARS_SCHEMA, QUARANTINE: QUARANTINE_SCHEMA, STATS: STATS_SCHEMA, REPORTS: REPORTS_SCHEMA,
           LINEAGE: LINEAGE_SCHEMA}
KEYS = {BARS: ("ticker", "date"), STATS: ("ticker",)}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _to_arrow(df: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    """Frame -> table with exactly ``schema``'s columns and types (missing nullable columns become null)."""
    data = {}
    n = len(df)
    for field in schema:
        if field.name in df.columns:
            col = df[field.name]
            if pa.types.is_date32(field.type):
                col = pd.to_datetime(col).dt.date
            data[field.name] = pa.array(col, type=field.type, from_pandas=True)
        else:
            data[field.name] = pa.nulls(n, type=field.type)
    return pa.table(data, schema=schema)


def read_delta(dt, schema: pa.Schema | None = None, *, tickers: list[str] | None = None,
               columns: list[str] | None = None) -> pa.Table:
    """Read a Delta table snapshot into Arrow, optionally only ``tickers`` and ``columns``.

    Scans single-threaded on purpose: pyarrow's threaded dataset scan over delta-rs files makes the interpreter
    abort at exit ("terminate called without an active exception") in about a third of runs here, which would turn
    a successful CLI command into exit code 134. Strings come back as declared in ``schema`` (delta-rs may hand back
    ``string_view``).
    """
    import pyarrow.dataset as ds

    dataset = dt.to_pyarrow_dataset()
    flt = None
    if tickers:
        ttype = dataset.schema.field("ticker").type
        flt = ds.field("ticker").isin(pa.array(list(tickers), pa.string()).cast(ttype))
    tbl = dataset.to_table(columns=columns, filter=flt, use_threads=False)
    if schema is not None:
        names = set(schema.names)
        tbl = tbl.cast(pa.schema([schema.field(n) if n in names else tbl.schema.field(n)
                                  for n in tbl.column_names]))
    elif any(pa.types.is_string_view(f.type) for f in tbl.schema):
        tbl = tbl.cast(pa.schema([pa.field(f.name, pa.string()) if pa.types.is_string_view(f.type) else f
                                  for f in tbl.schema]))
    return tbl


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
        from deltalake import DeltaTable

        return DeltaTable(self.uri(table), version=version, storage_options=self.storage_options)

    def version(self, table: str) -> int | None:
        """Current version of ``table``, ``None`` when it does not exist yet."""
        return self.table(table).version() if self.exists(table) else None

    def read(self, table: str, *, version: int | None = None, tickers: list[str] | None = None,
             columns: list[str] | None = None) -> pd.DataFrame:
        """Read a table (optionally an older version) as pandas; an absent table reads as empty."""
        schema = SCHEMAS[table]
        if not self.exists(table):
            return schema.empty_table().to_pandas()
        tbl = self.arrow(table, version=version, tickers=tickers, columns=columns)
        df = tbl.to_pandas()
        if "date" in df.columns and len(df):
            df["date"] = pd.to_datetime(df["date"])
        return df

    def arrow(self, table: str, *, version: int | None = None, tickers: list[str] | None = None,
              columns: list[str] | None = None) -> pa.Table:
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

    def _write(self, table: str, df: pd.DataFrame, metadata: dict[str, Any], mode: str = "append") -> int:
        from deltalake import CommitProperties, write_deltalake

        data = _to_arrow(df, SCHEMAS[table])
        write_deltalake(self.uri(table), data, mode=mode, storage_options=self.storage_options,
                        commit_properties=CommitProperties(custom_metadata=_meta(metadata)),
                        name=table)
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
        (dt.merge(_to_arrow(df, SCHEMAS[table]), predicate=predicate, source_alias="s", target_alias="t",
                  commit_properties=CommitProperties(custom_metadata=_meta(metadata)))
           .when_matched_update_all().when_not_matched_insert_all().execute())
        return self.table(table).version()

    def restore(self, table: str, version: int, reason: str) -> int:
        """Make ``version``'s content current again (a new version); used when a later step of a write fails."""
        from deltalake import CommitProperties

        dt = self.table(table)
        dt.restore(version, commit_properties=CommitProperties(custom_metadata=_meta({"operation": "restore",
                                                                                       "reason": reason})))
        return self.table(table).version()

    def history(self, table: str) -> list[dict]:
        """Table versions, newest first: version, timestamp, operation and our commit metadata."""
        if not self.exists(table):
            return []
        out = []
        for h in self.table(table).history():
            meta = {"version": h.get("version"), "delta_operation": h.get("operation")}
            meta.update({k.removeprefix(META_PREFIX): v for k, v in h.items() if k.startswith(META_PREFIX)})
            ts = h.get("timestamp")
            meta["timestamp"] = (datetime.fromtimestamp(ts / 1000, timezone.utc).isoformat()
                                 if isinstance(ts, (int, float)) else ts)
            out.append(meta)
        return out

    def record_lineage(self, dataset: str, dataset_version: int, consumer_kind: str, consumer: str,
                       consumer_version: str) -> int:
        """Record that ``consumer`` (e.g. a registered model version) read ``dataset`` at ``dataset_version``."""
        row = pd.DataFrame([{"dataset": dataset, "dataset_version": dataset_version, "consumer_kind": consumer_kind,
                             "consumer": consumer, "consumer_version": consumer_version, "recorded_at": utcnow()}])
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
