"""Human output of the CLI (rich tables). Pure formatting of report dicts; no domain logic."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

STATUS_STYLE = {"accepted": "green", "accepted_with_warnings": "yellow", "quarantined": "bold red"}


def ingest_summary(report: dict, console: Console) -> None:
    table = Table(title=f"Validation summary: {report['report_id']} (source {report['source']})")
    columns: tuple[tuple[str, dict[str, Any]], ...] = (
        ("ticker", {}),
        ("status", {}),
        ("rows in", {"justify": "right"}),
        ("new", {"justify": "right"}),
        ("updated", {"justify": "right"}),
        ("stored", {"justify": "right"}),
        ("period", {}),
        ("err", {"justify": "right"}),
        ("warn", {"justify": "right"}),
    )
    for col, kw in columns:
        table.add_column(col, **kw)
    for t in report["tickers"]:
        style = STATUS_STYLE.get(t["status"], "")
        period = f"{t['first_date']}..{t['last_date']}" if t["first_date"] else "-"
        table.add_row(
            t["ticker"],
            f"[{style}]{t['status']}[/{style}]",
            str(t["rows_in"]),
            str(t["rows_new"]),
            str(t["rows_updated"]),
            str(t["rows_total"]),
            period,
            str(len(t["errors"])),
            str(len(t["warnings"])),
        )
    console.print(table)
    for t in report["tickers"]:
        items = [("red", e) for e in t["errors"][:5]] + [("yellow", w) for w in t["warnings"][:5]]
        for colour, f in items:
            console.print(
                f"  [{colour}]{f['severity']:7}[/{colour}] {t['ticker']} {_where(f)}"
                + escape(f"[{f['rule']}] {f['message']}"),
                highlight=False,
                soft_wrap=True,
            )
        hidden = len(t["errors"]) + len(t["warnings"]) - len(items)
        if hidden > 0:
            console.print(f"  ... {hidden} more finding(s) for {t['ticker']} in the JSON report")
        for e in t["events"]:
            what = e.get("ratio_text") or f"x{e.get('price_ratio', 1):.6g} on {e.get('rows', 0)} stored rows"
            console.print(
                f"  [cyan]event  [/cyan] {t['ticker']} {e.get('date', e.get('anchor_date', ''))}: {e['type']} {what}",
                highlight=False,
                soft_wrap=True,
            )
    for r in report.get("repairs", []):  # left by an interrupted earlier ingestion (tradeops.data.repair)
        console.print(f"  [cyan]repaired[/cyan] {escape(r['message'])}", highlight=False, soft_wrap=True)
    s = report["summary"]
    before = report["bars_version_before"]
    console.print(
        f"{s['accepted']} accepted, {s['accepted_with_warnings']} accepted with warnings, "
        f"{s['quarantined']} quarantined; bars table version "
        f"{'(none)' if before is None else before} -> {report['bars_version_after']}"
    )


def _where(f: dict) -> str:
    parts = [p for p in (f.get("date"), f"row {f['row']}" if f.get("row") is not None else None) if p]
    return f"{' '.join(parts)} " if parts else ""


def catalog_tables(catalog: dict, console: Console) -> None:
    console.print(f"Catalog of {catalog['lake']}")
    overview = Table(title="Datasets")
    for col in ("dataset", "version", "rows", "tickers", "owner", "description"):
        overview.add_column(col, overflow="fold")
    for d in catalog["datasets"]:
        overview.add_row(
            d["name"],
            "-" if d["current_version"] is None else str(d["current_version"]),
            "-" if d["rows"] is None else str(d["rows"]),
            str(len(d["rows_per_ticker"])),
            d["owner"],
            d["description"].split(": ")[0].split("; ")[0],
        )
    console.print(overview)
    bars = catalog["datasets"][0]
    if bars["rows_per_ticker"]:
        t = Table(title=f"{bars['name']}: per ticker (latest validation)")
        for col in ("ticker", "rows", "sources", "status", "errors", "warnings", "report"):
            t.add_column(col)
        for ticker, n in bars["rows_per_ticker"].items():
            st = bars["validation_status"].get(ticker, {})
            style = STATUS_STYLE.get(st.get("status", ""), "")
            t.add_row(
                ticker,
                str(n),
                ",".join(bars["sources"].get(ticker, [])),
                f"[{style}]{st.get('status', '-')}[/{style}]" if style else "-",
                str(st.get("errors", "-")),
                str(st.get("warnings", "-")),
                st.get("report_id", "-"),
            )
        console.print(t)
        readers: dict[int, list[str]] = {}
        for item in bars["lineage"]:
            readers.setdefault(item["dataset_version"], []).append(f"{item['consumer']} v{item['consumer_version']}")
        h = Table(title=f"{bars['name']}: versions (newest first) and lineage")
        for col in ("version", "time", "operation", "source", "rows written", "report", "read by"):
            h.add_column(col, overflow="fold")
        for v in bars["versions"][:10]:
            h.add_row(
                str(v.get("version")),
                str(v.get("timestamp", ""))[:19],
                str(v.get("operation", v.get("delta_operation", ""))),
                str(v.get("source", "")),
                str(v.get("rows_written", "")),
                str(v.get("report_id", "")),
                "\n".join(sorted(set(readers.get(v.get("version"), [])))) or "-",
            )
        console.print(h)


def build_summary(result: dict, console: Console) -> None:
    console.print(
        f"features [bold]{result['preset']}[/bold]: {result['n_features']} features x {result['rows']} rows "
        f"for {len(result['tickers'])} tickers -> {result['features_table']} v{result['features_version']}, "
        f"{result['labels_table']} v{result['labels_version']} (from bars v{result['bars_version']}; "
        f"feature set {result['feature_set_version']})",
        highlight=False,
    )


def class_balance_table(balance, console: Console) -> None:
    """Counts and shares of BUY/SELL/HOLD per ticker and year (balance: DataFrame indexed by ticker, year)."""
    t = Table(title="Class balance per ticker and year (Sezer labels, window 11)")
    for col in ("ticker", "year", "BUY", "SELL", "HOLD", "n", "BUY %", "SELL %", "HOLD %"):
        t.add_column(col, justify="left" if col in ("ticker", "year") else "right")
    previous = None
    for (ticker, year), r in balance.iterrows():
        n = max(int(r["n"]), 1)
        t.add_row(
            ticker if ticker != previous else "",
            str(year),
            str(int(r["BUY"])),
            str(int(r["SELL"])),
            str(int(r["HOLD"])),
            str(int(r["n"])),
            f"{100 * r['BUY'] / n:.1f}",
            f"{100 * r['SELL'] / n:.1f}",
            f"{100 * r['HOLD'] / n:.1f}",
        )
        previous = ticker
    console.print(t)
    totals = balance[["BUY", "SELL", "HOLD", "n"]].sum()
    console.print(
        f"all: BUY {100 * totals['BUY'] / totals['n']:.1f}%, SELL {100 * totals['SELL'] / totals['n']:.1f}%, "
        f"HOLD {100 * totals['HOLD'] / totals['n']:.1f}% of {int(totals['n'])} labelled days"
    )


def vector_table(ticker: str, vec, fs, console: Console) -> None:
    """A feature vector as an indicator x window grid (the image layout for cnn-ta)."""
    by_ind: dict[str, dict[int, float]] = {}
    for d in fs.defs:
        by_ind.setdefault(d.indicator, {})[d.window] = float(vec.values[d.name])
    windows = sorted({d.window for d in fs.defs})
    t = Table(
        title=f"{ticker} {vec.date:%Y-%m-%d}: {fs.preset} features (feature set {fs.version})",
        box=box.SIMPLE_HEAD,
        padding=(0, 0),
        pad_edge=False,
    )
    t.add_column("ind. \\ window")
    for w in windows:
        t.add_column(str(w), justify="right")
    for ind, vals in by_ind.items():
        t.add_row(ind, *[f" {vals[w]:+.2f}" if w in vals else "" for w in windows])
    console.print(t)


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:+.1f}%"


def _num(x, fmt: str = ".2f") -> str:
    return "-" if x is None else format(x, fmt)


def class_table(cls: dict, title: str) -> Table:
    """Per-class precision/recall/F1/support of a classification_metrics dict."""
    t = Table(title=title)
    for col in ("class", "precision", "recall", "F1", "support"):
        t.add_column(col, justify="right" if col != "class" else "left")
    for c in ("BUY", "SELL", "HOLD"):
        t.add_row(
            c, _num(cls[f"precision_{c}"]), _num(cls[f"recall_{c}"]), _num(cls[f"f1_{c}"]), str(cls[f"support_{c}"])
        )
    return t


def train_summary(out: dict, console: Console) -> None:
    """What `tradeops train` prints: identity, classification, backtests, blessing."""
    f = out["fold"]
    console.print(
        f"model [bold]{out['name']}[/bold] v{out['version']}  run {out['run_id']}  "
        f"(bars v{out['versions']['bars']}, features v{out['versions']['features']})",
        highlight=False,
    )
    console.print(
        f"fit {f['train_start']}..{f['train_end']}  val {f['val_start']}..{f['val_end']}  "
        f"test {f['test_start']}..{f['test_end']}",
        highlight=False,
    )
    s = out["summary"]
    cls = out["evaluation"]["classification"]
    console.print(class_table(cls, "Test window: classification"))
    console.print(
        f"macro-F1 {s['macro_f1']:.3f}  accuracy {s['accuracy']:.3f}  confusion (rows true BUY/SELL/HOLD, "
        f"cols predicted): {cls['confusion_matrix']}",
        highlight=False,
    )
    slices = cls.get("slices", [])
    if slices:
        console.print(
            "macro-F1 by slice: "
            + ", ".join(f"{r['slice']} {r['value']} {r['macro_f1']:.2f} (n={r['n']})" for r in slices),
            highlight=False,
        )
    backtest_table(out["evaluation"]["backtests"], console)
    d = out["decision"]
    colour = "green" if d["blessed"] else "red"
    console.print(f"blessing: [{colour}]{'BLESSED' if d['blessed'] else 'NOT BLESSED'}[/{colour}]")
    for check in d["checks"]:
        mark = "ok " if check["passed"] else "FAIL"
        console.print(f"  {mark} {escape(check['message'])}", highlight=False)
    console.print(
        f"aliases: challenger -> v{out['version']}; champion -> "
        f"{'v' + out['champion_after'] if out['champion_after'] else 'none'}"
        f"{' (auto-promoted)' if out['promoted'] else ''}",
        highlight=False,
    )


def backtest_table(backtests: dict, console: Console) -> None:
    t = Table(title="Test window: backtests (realistic = next open, costs; paper = signal close, $1/trade)")
    for col in (
        "ticker",
        "strategy",
        "ann. return (realistic)",
        "Sharpe",
        "max DD",
        "trades/yr",
        "win rate",
        "exposure",
        "ann. return (paper)",
    ):
        t.add_column(col, justify="left" if col in ("ticker", "strategy") else "right")
    for ticker, strategies in backtests.items():
        for name, modes in strategies.items():
            r, p = modes["realistic"], modes["paper"]
            t.add_row(
                ticker,
                name,
                _pct(r["annualized_return"]),
                _num(r["sharpe"]),
                _pct(r["max_drawdown"]),
                _num(r["trades_per_year"], ".1f"),
                _pct(r["win_rate"]),
                _pct(r["exposure"]),
                _pct(p["annualized_return"]),
            )
    console.print(t)


def walkforward_tables(result: dict, console: Console) -> None:
    from tradeops.model.walkforward import STRATEGIES

    mode = result["mode"]
    t = Table(
        title=f"Walk-forward {result['test_years'][0]}-{result['test_years'][-1]}: annualised return "
        f"({mode} fills), {result['preset']}, {'pooled' if result['pooled'] else 'per-ticker'} models"
    )
    t.add_column("ticker")
    names = {
        "model": "CNN-TA",
        "buy_and_hold": "Buy&Hold",
        "lightgbm": "LightGBM",
        "rsi_14_30_70": "RSI 30/70",
        "sma_50_cross": "SMA50 cross",
    }
    present = [s for s in STRATEGIES if any(s in row for row in result["table"])]
    for s in present:
        t.add_column(names[s], justify="right")
    t.add_column("CNN Sharpe", justify="right")
    t.add_column("CNN trades/yr", justify="right")
    for row in result["table"]:
        t.add_row(
            row["ticker"],
            *[_pct(row.get(s)) for s in present],
            _num(row["model_sharpe"]),
            _num(row["model_trades_per_year"], ".1f"),
        )
    console.print(t)
    cls = result["evaluation"]["classification"]
    console.print(class_table(cls, "Pooled test classification (all tickers, all test years)"))
    cm = cls["confusion_matrix"]
    console.print("confusion matrix (rows: true BUY/SELL/HOLD; columns: predicted BUY/SELL/HOLD)")
    for label, row in zip(("BUY", "SELL", "HOLD"), cm):
        console.print(f"  {label:>4} " + " ".join(f"{v:>6}" for v in row))
    console.print(
        f"macro-F1 {cls['macro_f1']:.3f}, accuracy {cls['accuracy']:.3f}; {len(result['folds'])} folds"
        + (f"; skipped: {'; '.join(result['skipped'])}" if result["skipped"] else ""),
        highlight=False,
    )


def models_table(models: list[dict], console: Console) -> None:
    """What `tradeops models` prints: one row per registered version; incomplete versions say what they lack."""
    t = Table(title="Registered models")
    for col in ("model", "version", "aliases", "status", "blessed", "run", "feature set", "bars v"):
        t.add_column(col, overflow="fold")
    for m in models:
        by_version: dict[str, list[str]] = {}
        for alias, v in m["aliases"].items():
            by_version.setdefault(str(v), []).append(alias)
        if not m["versions"]:
            t.add_row(m["name"], "-", "-", "no versions", "-", "-", "-", "-")
        for v in m["versions"]:
            tags = v["tags"]
            status = (
                "complete"
                if v["complete"]
                else f"[bold red]INCOMPLETE[/bold red] (missing {escape(', '.join(v['missing_tags']))})"
            )
            t.add_row(
                m["name"],
                v["version"],
                ",".join(sorted(by_version.get(v["version"], []))) or "-",
                status,
                tags.get("blessed", "?"),
                (v["run_id"] or "-")[:12],
                tags.get("feature_set_version", "?"),
                tags.get("bars_version", "?"),
            )
    console.print(t)
