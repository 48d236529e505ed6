"""The data catalog: every dataset with description, owner, schema, versions, row counts, sources, validation
status and lineage (the model versions that read each version; filled by the Model level)."""

from __future__ import annotations

import json

import pandas as pd

from tradeops.data import store as st
from tradeops.data.repair import pending_repairs

OWNER = "data-platform"
DESCRIPTIONS = {
    st.BARS: "Validated daily bars, one row per (ticker, trading date): raw OHLCV as traded plus split/dividend "
    "adjusted OHLCV (adj = raw x adj_close/close; volume x later split ratios). Upserted on (ticker, date).",
    st.QUARANTINE: "Rows of batches that failed validation, with the rules broken and the reason; never read by "
    "features or models.",
    st.STATS: "Statistical schema per ticker inferred from accepted bars (ranges, return and volume distributions, "
    "null fractions); new data is checked against it.",
    st.REPORTS: "One row per ticker per ingestion run: status, provenance (source, location, sha256, bytes), row "
    "counts and findings.",
    st.LINEAGE: "Which consumer (e.g. a registered model version) read which version of which dataset.",
}


def _schema(table: str) -> list[dict]:
    return [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in st.SCHEMAS[table]]


def build_catalog(lake: st.Lake) -> dict:
    """Describe every dataset in the lake as a JSON-safe dict."""
    lineage = lake.read(st.LINEAGE)
    datasets = []
    for table in (st.BARS, st.QUARANTINE, st.STATS, st.REPORTS):
        entry: dict = {
            "name": table,
            "description": DESCRIPTIONS[table],
            "owner": OWNER,
            "uri": lake.uri(table),
            "schema": _schema(table),
            "exists": lake.exists(table),
            "current_version": lake.version(table),
            "versions": lake.history(table),
            "rows": 0,
            "rows_per_ticker": {},
            "sources": {},
            "validation_status": {},
            "lineage": [],
        }
        if entry["exists"]:
            cols = ["ticker"] + (["source"] if table in (st.BARS, st.QUARANTINE, st.REPORTS) else [])
            df = lake.read(table, columns=cols)
            entry["rows"] = int(len(df))
            entry["rows_per_ticker"] = {str(k): int(v) for k, v in df["ticker"].value_counts().sort_index().items()}
            if "source" in df:
                entry["sources"] = {
                    str(t): sorted(g["source"].dropna().unique().tolist()) for t, g in df.groupby("ticker")
                }
        if len(lineage):
            rows = lineage.loc[lineage["dataset"] == table]
            entry["lineage"] = json.loads(rows.drop(columns="dataset").to_json(orient="records", date_format="iso"))
        datasets.append(entry)
    reports = lake.read(st.REPORTS)
    status = {}
    if len(reports):
        latest = reports.sort_values("created_at").groupby("ticker").tail(1)
        for r in latest.to_dict("records"):
            status[r["ticker"]] = {
                "status": r["status"],
                "report_id": r["report_id"],
                "errors": int(r["errors"]),
                "warnings": int(r["warnings"]),
                "checked_at": pd.Timestamp(r["created_at"]).isoformat(),
            }
    datasets[0]["validation_status"] = status
    datasets.extend(_derived_tables(lake))
    # Left by an interrupted ingestion until the next `tradeops ingest` repairs it (tradeops.data.repair).
    return {"lake": lake.root, "datasets": datasets, "needs_repair": pending_repairs(lake)}


def _derived_tables(lake: st.Lake) -> list[dict]:
    """Feature and label tables written by the Features level (discovered by name under the lake root)."""
    from pathlib import Path

    root = Path(lake.root)
    if "://" in lake.root or not root.is_dir():
        return []
    out = []
    for path in sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith(("features_", "labels_"))):
        if not lake.exists(path.name):
            continue
        history = lake.history(path.name)
        latest = history[0] if history else {}
        dt = lake.table(path.name)
        schema = [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in dt.schema().to_arrow()]
        tickers = json.loads(latest.get("tickers", "[]")) if isinstance(latest.get("tickers"), str) else []
        kind = "features" if path.name.startswith("features_") else "labels"
        desc = (
            f"Offline features, preset {latest.get('preset', '?')} ({latest.get('n_features', '?')} float32 "
            f"columns), feature-set version {latest.get('feature_set_version', '?')}"
            if kind == "features"
            else f"Sezer labels (window {latest.get('label_window', '?')}) with label_known_at; "
            "kept apart from features"
        )
        out.append(
            {
                "name": path.name,
                "description": desc,
                "owner": "features",
                "uri": lake.uri(path.name),
                "schema": schema if len(schema) <= 40 else schema[:4] + [{"name": f"... {len(schema) - 4} more"}],
                "exists": True,
                "current_version": dt.version(),
                "versions": history,
                "rows": None,
                "rows_per_ticker": {t: None for t in tickers},
                "sources": {},
                "validation_status": {},
                "lineage": [],
                "derived_from": {"dataset": st.BARS, "version": latest.get("bars_version")},
            }
        )
    return out
