"""`tradeops simulate` (thin wrapper over ``tradeops.sim.run.simulate`` and ``tradeops.sim.report.finish``)."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.markup import escape

from tradeops.cli.common import console, err_console, fail, progress_bar, settings_of, split_tickers
from tradeops.errors import TradeopsError, UsageError


class DayLine:
    """The progress bar's text: the day, the champion, the day's signals, decisions so far and the latest
    paper-trading return the monitor measured (its window, realistic fills, net of costs)."""

    def __init__(self) -> None:
        self.decisions = 0
        self.paper: str = "-"

    def __call__(self, record: dict[str, Any]) -> str:
        served = record.get("served", [])
        signals = " ".join(f"{s['ticker']}:{s.get('signal', s.get('rule'))}" for s in served[:5])
        if len(served) > 5:
            signals += f" (+{len(served) - 5})"
        monitor = record.get("monitor", {})
        self.decisions += len(monitor.get("actions", []))
        for key, value in monitor.get("metrics", {}).items():
            if key.endswith("|trading.champion.return") and value is not None:
                self.paper = f"{value:+.1%}"
        champ = record.get("aliases", {}).get("champion")
        return f"{record['date']} champion v{champ} {signals} | decisions {self.decisions} | paper {self.paper}"


def decision_lines(decisions: list[dict[str, Any]]) -> list[str]:
    """One line per retrain, rollback, halt and resume (what changed models or serving); notifications and failed
    actions grouped per rule and outcome with their count, first and last date and the first message."""
    lines: list[str] = []
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for a in decisions:
        if a.get("action") in ("retrain", "rollback", "halt", "resume") and a.get("status") == "done":
            result = a.get("result") or {}
            why = result.get("why") or ""
            lines.append(
                f"  {a['as_of']} {a['rule']}: {a['metric']} = {a['value']:.4g} -> {a['action']}"
                + (f" ({why})" if why else "")
            )
        else:
            groups.setdefault((a["rule"], a["action"], a["status"]), []).append(a)
    for (rule, action, status), items in groups.items():
        first = items[0]
        msg = (first.get("result") or {}).get("error") or first.get("reason") or ""
        lines.append(
            f"  {rule} -> {action} {status} x{len(items)} ({items[0]['as_of']}..{items[-1]['as_of']})"
            + (f": {msg}" if msg and status != "done" else "")
        )
    return lines


def print_simulation(out: dict[str, Any]) -> None:
    """The summary, the decisions and the models of a simulation, as `tradeops simulate` prints them."""
    s = out["summary"]
    console.print(
        escape(
            f"simulated {s['trading_days']} trading days {s['start']}..{s['completed_through']} on {s['tickers']}: "
            f"{s['signals_served']} signals served, {s['monitoring_passes']} monitoring passes, {s['decisions']} "
            f"decisions ({s['retrains']} retrain, {s['promotions']} promotion, {s['rollbacks']} rollback, "
            f"{s['halts']} halt), {s['blocked_ingests']} ingests blocked by checks"
        ),
        highlight=False,
        soft_wrap=True,
    )
    fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
    console.print(
        f"equity ({s['fills']}): champion {fmt(s['equity_champion'])}, shadow challenger "
        f"{fmt(s['equity_challenger'])}, Buy & Hold {fmt(s['equity_buy_and_hold'])}",
        highlight=False,
        soft_wrap=True,
    )
    for line in decision_lines(out["decisions"]):
        console.print(escape(line), highlight=False, soft_wrap=True)
    for m in out["models"]:
        events = ", ".join(f"{e['event']} {e['as_of']}" for e in m["events"])
        console.print(
            escape(
                f"  {m['name']} v{m['version']}: trained as of {m.get('trained_as_of')}, bars v{m.get('bars_version')}"
                f" features v{m.get('features_version')} labels v{m.get('labels_version')}; {events}"
            ),
            highlight=False,
            soft_wrap=True,
        )
    for k, v in out["reports"].items():
        console.print(f"{k}: {v}", highlight=False, soft_wrap=True)


@contextlib.contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    """While simulating, a plain ``kill`` stops like Ctrl-C (completed days are journaled; the same command
    resumes); the previous handler is put back afterwards."""
    import signal
    import threading

    def stop(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def register(app: typer.Typer) -> None:
    """Add ``simulate`` to the root app."""

    @app.command("simulate")
    def simulate_cmd(
        ctx: typer.Context,
        start: Annotated[str, typer.Option("--start", help="First simulated trading date (YYYY-MM-DD).")],
        end: Annotated[str, typer.Option("--end", help="Last simulated trading date (YYYY-MM-DD).")],
        tickers: Annotated[
            Optional[str], typer.Option("--tickers", help="Comma-separated tickers (default: IBM).")
        ] = None,
        source: Annotated[str, typer.Option("--source", help="sample | csv | alphavantage.")] = "sample",
        path: Annotated[Optional[Path], typer.Option("--path", help="Directory of CSV files (--source csv).")] = None,
        home: Annotated[
            Optional[Path],
            typer.Option(
                "--home",
                help="The simulation's own home (default <home>/simulations/<start>_<end>_<id>); the same command "
                "resumes there.",
            ),
        ] = None,
        preset: Annotated[str, typer.Option("--preset", help="Feature preset of the models.")] = "cnn-ta",
        monitor_every: Annotated[
            int, typer.Option("--monitor-every", help="Sessions between monitoring passes (and on the last day).")
        ] = 5,
        epochs: Annotated[
            Optional[int], typer.Option("--epochs", help="Training epochs of every model (default: the recipe's).")
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    ) -> None:
        """Replay history day by day through production's code: ingest with blocking checks, champion + shadow
        signals through the service, monitoring and its actions (retrain, promote, rollback, halt); then reports."""
        from tradeops.data.calendar import parse_day
        from tradeops.sim.journal import Plan
        from tradeops.sim.report import finish
        from tradeops.sim.run import plan_fingerprint, simulate

        base = settings_of(ctx)
        try:
            if source not in ("sample", "csv", "alphavantage"):
                raise UsageError(f"--source {source!r}: choose sample, csv or alphavantage")
            if source == "csv" and path is None:
                raise UsageError("--source csv needs --path DIR")
            if epochs is not None and epochs < 1:
                raise UsageError(f"--epochs must be >= 1, got {epochs}")
            plan = Plan(
                start=parse_day(start).isoformat(),
                end=parse_day(end).isoformat(),
                tickers=tuple(sorted(split_tickers(tickers) or ["IBM"])),
                source=source,
                path=None if path is None else str(path.resolve()),
                preset=preset,
                monitor_every=monitor_every,
                epochs=epochs,
            )
            sim_home = home or base.home / "simulations" / f"{plan.start}_{plan.end}_{plan_fingerprint(plan)}"
            settings = base.model_copy(update={"home": sim_home})
            err_console.print(f"simulation home: {sim_home.resolve()}", highlight=False, soft_wrap=True)
            line = DayLine()
            with _stop_on_sigterm(), progress_bar() as (bar, task):

                def on_day(record: dict[str, Any], done: int, total: int) -> None:
                    bar.update(task, total=total, completed=done, description=escape(line(record)))

                def say(text: str) -> None:
                    bar.update(task, description=escape(text))

                result = simulate(settings, plan, on_day=on_day, say=say)
            if result.resumed_from:
                err_console.print(f"resumed after {result.resumed_from}", highlight=False)
            result = finish(settings, result)
        except KeyboardInterrupt:
            err_console.print(
                "interrupted: completed days are kept; run the same command to resume from the last one",
                highlight=False,
            )
            raise typer.Exit(130) from None
        except TradeopsError as exc:
            fail(exc)
        out = result.to_dict()
        if as_json:
            sys.stdout.write(json.dumps(out, indent=2, default=str) + "\n")
        else:
            print_simulation(out)
