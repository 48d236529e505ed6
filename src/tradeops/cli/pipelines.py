"""`tradeops pipelines` commands (thin wrappers over :mod:`tradeops.pipelines.run`): run, backfill, list."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Optional

import typer
from rich.markup import escape

from tradeops.cli.common import console, err_console, fail, settings_of, split_tickers
from tradeops.errors import TradeopsError

app = typer.Typer(
    help="Dagster jobs of the code location, run in-process against the home's instance (<home>/dagster).",
    no_args_is_help=True,
    rich_markup_mode=None,
)

TickersOpt = Annotated[
    Optional[str], typer.Option("--tickers", help="Comma-separated tickers (default: pipelines.universe).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the runs as JSON.")]
SUMMARY_KEYS = (
    "rows",
    "rows_written",
    "bars_version",
    "features_version",
    "labels_version",
    "feature_set_version",
    "mlflow_run_id",
    "model_version",
    "blessed",
    "promoted",
    "champion_after",
    "report_path",
)


def print_runs(runs, as_json: bool) -> None:
    """Run ids, status and a per-asset metadata summary (or the runs as JSON)."""
    if as_json:
        doc = {"ok": all(r.ok for r in runs), "runs": [r.to_dict() for r in runs]}
        sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")
        return
    for r in runs:
        colour = "green" if r.ok else "bold red"
        console.print(
            f"[{colour}]{r.status:8}[/{colour}] {r.job} {escape(r.partition)}  run {r.run_id}", highlight=False
        )
        for asset, meta in r.materializations.items():
            shown = ", ".join(f"{k}={meta[k]}" for k in SUMMARY_KEYS if k in meta)
            console.print(f"  {asset}: {escape(shown)}", highlight=False, soft_wrap=True)
        warned = [c for c in r.checks if c["passed"] and c.get("warnings")]
        for c in warned:
            console.print(f"  check {c['asset']}:{c['check']} passed with {c['warnings']} warning(s)", highlight=False)
        if r.skipped and r.ok:
            console.print(f"  skipped: {', '.join(r.skipped)}", highlight=False)
    for r in runs:
        if not r.ok:
            err_console.print(f"[bold red]error:[/bold red] {escape(r.message())}", highlight=False, soft_wrap=True)


def _exit_code(runs) -> int:
    codes = [r.exit_code for r in runs if not r.ok]
    return max(codes) if codes else 0


@app.command("run")
def run_cmd(
    ctx: typer.Context,
    job: Annotated[str, typer.Argument(help="ingest_daily, train, retrain, walkforward or promote.")],
    tickers: TickersOpt = None,
    day: Annotated[
        Optional[str],
        typer.Option("--date", help="Trading date YYYY-MM-DD (default: the latest date the data supports)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run JOB for one trading date: one run per ticker for ingest_daily, one run for the others."""
    from tradeops.pipelines.run import run_job

    try:
        runs = run_job(settings_of(ctx), job, day=day, tickers=split_tickers(tickers))
    except TradeopsError as exc:
        fail(exc)
    print_runs(runs, as_json)
    raise typer.Exit(_exit_code(runs))


@app.command("backfill")
def backfill_cmd(
    ctx: typer.Context,
    start: Annotated[str, typer.Option("--start", help="First date YYYY-MM-DD (inclusive).")],
    end: Annotated[str, typer.Option("--end", help="Last date YYYY-MM-DD (inclusive).")],
    tickers: TickersOpt = None,
    job: Annotated[str, typer.Option("--job", help="The job to backfill.")] = "ingest_daily",
    as_json: JsonOpt = False,
) -> None:
    """Run JOB for every trading date from --start to --end (weekends and holidays have no partition), in date
    order; a failed partition does not stop the later ones."""
    from tradeops.pipelines.run import backfill

    try:
        runs = backfill(settings_of(ctx), job, start=start, end=end, tickers=split_tickers(tickers))
    except TradeopsError as exc:
        fail(exc)
    print_runs(runs, as_json)
    if not as_json:
        ok = sum(r.ok for r in runs)
        console.print(f"backfill {job}: {ok}/{len(runs)} partition(s) succeeded", highlight=False)
    raise typer.Exit(_exit_code(runs))


@app.command("list")
def list_cmd(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Jobs, assets, checks, schedules and sensors of the code location."""
    from tradeops.pipelines.definitions import build_defs
    from tradeops.pipelines.run import describe

    try:
        doc = describe(build_defs(settings_of(ctx)))
    except TradeopsError as exc:
        fail(exc)
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    for section, items in doc.items():
        console.print(f"[bold]{section}[/bold]")
        for item in items:
            console.print(
                f"  {item['name']}" + (f"  {escape(item['info'])}" if item.get("info") else ""), highlight=False
            )


def register(root: typer.Typer) -> None:
    """Add `tradeops pipelines ...` to the root app."""
    root.add_typer(app, name="pipelines")
