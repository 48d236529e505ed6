"""`tradeops monitor` (thin wrapper over ``tradeops.monitor.run.monitor_pass``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from tradeops.cli.common import console, fail, settings_of
from tradeops.errors import TradeopsError


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"


def print_pass(out: dict[str, Any]) -> None:
    """Status banner, the metrics table (with why a value is missing), the firings and actions of one pass."""
    st = out["status"]
    banner = f"HALTED: {st['reason']}" if st["halted"] else "serving"
    console.print(escape(f"monitoring as of {out['as_of']}: {banner}"), highlight=False)
    for name, v in st["models"].items():
        console.print(escape(f"  {name}: champion v{v['champion']}, challenger v{v['challenger'] or '-'}"))
    table = Table("model", "metric", "value", "window / why missing", box=None, pad_edge=False)
    for m in out["metrics"]:
        table.add_row(m["model"], m["name"], _fmt(m["value"]), escape(m["reason"] or m["window"]))
    console.print(table)
    if not out["firings"]:
        console.print("rules: nothing fired")
    for f in out["firings"]:
        console.print(
            escape(
                f"rule {f['rule']} ({f['severity']}) on {f['model']}: {f['metric']} = {_fmt(f['value'])} "
                f"{f['comparison']} {f['threshold']} -> {f['action']}: {f['status']}"
                + (f" ({f['reason']})" if f.get("reason") else "")
            ),
            highlight=False,
        )
    if out.get("report"):
        console.print(escape(f"report: {out['report']}"), highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``monitor`` to the root app."""

    @app.command("monitor")
    def monitor_cmd(
        ctx: typer.Context,
        as_of: Annotated[
            Optional[str],
            typer.Option("--as-of", help="Monitoring date (YYYY-MM-DD); default: the latest date the data supports."),
        ] = None,
        report: Annotated[
            Optional[Path],
            typer.Option("--report", help="Also write the HTML monitoring report here (e.g. monitoring.html)."),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the pass as one JSON object.")] = False,
    ) -> None:
        """Run every monitor, record the metrics, apply the rules (notify, retrain, rollback, halt, resume) and show
        the status, open alerts and recent actions. Exits 1 when an action failed."""
        from tradeops.data.calendar import parse_day
        from tradeops.monitor.run import monitor_pass
        from tradeops.pipelines.run import latest_date

        try:
            settings = settings_of(ctx)
            day = parse_day(as_of, "--as-of") if as_of else latest_date(settings, settings.pipelines.universe)
            # No daemon configured: a retrain a rule asks for runs here, in-process, through the same job.
            result = monitor_pass(settings, day, report=report, retrain_here=settings.pipelines.dagster_url is None)
        except TradeopsError as exc:
            fail(exc)
        out = result.to_dict()
        if as_json:
            sys.stdout.write(json.dumps(out, indent=2, default=str) + "\n")
        else:
            print_pass(out)
        if result.failed_actions:
            raise typer.Exit(1)
