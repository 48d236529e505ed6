"""The ``tradeops`` command line (Typer). Thin: parse options, call domain functions, render, map exit codes.

Exit codes: 0 success, 1 rejected data or a failed check, 2 usage error.
"""

from __future__ import annotations

import json
import os
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from tradeops import __version__
from tradeops.cli.common import console, err_console, fail, progress_bar, settings_of, split_tickers
from tradeops.cli.features import app as features_app
from tradeops.cli.features import run_build, write_report
from tradeops.cli.keys import register as register_keys_commands
from tradeops.cli.model import register as register_model_commands
from tradeops.cli.monitor import register as register_monitor_commands
from tradeops.cli.pipelines import register as register_pipelines_commands
from tradeops.cli.serve import register as register_serve_commands
from tradeops.cli.simulate import register as register_simulate_commands
from tradeops.config import CONFIG_FILE_ENV, Settings, load_settings
from tradeops.errors import TradeopsError

app = typer.Typer(
    name="tradeops",
    help="DataOps + MLOps for trading-signal models.",
    no_args_is_help=True,
    rich_markup_mode=None,  # plain help: the rich renderer shows flags as "--json <bool>"
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(features_app, name="features")
register_model_commands(app)
register_pipelines_commands(app)
register_keys_commands(app)
register_serve_commands(app)
register_monitor_commands(app)
register_simulate_commands(app)


class SourceName(str, Enum):
    sample = "sample"
    csv = "csv"
    alphavantage = "alphavantage"


def _version(value: bool) -> None:
    if value:
        console.print(f"tradeops {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    home: Annotated[
        Optional[Path], typer.Option(help="State directory (default $TRADEOPS_HOME or ./.tradeops).")
    ] = None,
    config: Annotated[Optional[Path], typer.Option(help="Config file (default ./tradeops.yaml).")] = None,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")] = False,
) -> None:
    """tradeops: ingest, validate and version market data; features, models and deployment build on it."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    if config is not None:
        if not config.is_file():
            err_console.print(
                f"[bold red]error:[/bold red] config file {escape(str(config))} does not exist", soft_wrap=True
            )
            raise typer.Exit(2)
        os.environ[CONFIG_FILE_ENV] = str(config)
    # Loaded on first use, so `--help` of any command works whatever the config file holds.
    ctx.obj = {"settings": None, "load": lambda: load_settings(home=home)}


def run_ingest(settings: Settings, source: SourceName, path: Path | None, tickers: list[str] | None) -> dict:
    """Build the source, run the ingestion with a progress bar, return the report dict."""
    from tradeops.data.ingest import ingest
    from tradeops.data.sources import CsvSource, SampleSource, Source
    from tradeops.errors import UsageError

    if source is SourceName.csv:
        if path is None:
            raise UsageError("--path DIR is required with --source csv")
        src: Source = CsvSource(path)
    elif source is SourceName.alphavantage:
        from tradeops.data.alphavantage import AlphaVantageSource

        src = AlphaVantageSource(settings)
    else:
        src = SampleSource()
    with progress_bar() as (bar, task):

        def tick(ticker: str, i: int, n: int) -> None:
            bar.update(task, description=f"validating {ticker}", completed=i, total=n)

        report = ingest(src, settings, tickers, progress=tick)
    return report.to_dict() | {"report_path": report.path}


@app.command("ingest")
def ingest_cmd(
    ctx: typer.Context,
    source: Annotated[SourceName, typer.Option(help="Where bars come from.")] = SourceName.sample,
    path: Annotated[Optional[Path], typer.Option(help="Directory of <TICKER>.csv files (--source csv).")] = None,
    tickers: Annotated[
        Optional[str], typer.Option(help="Comma-separated tickers, e.g. IBM,MSFT (default: all).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Ingest, validate and store daily bars; exit 1 when any ticker is quarantined."""
    from tradeops.cli.render import ingest_summary

    try:
        report = run_ingest(settings_of(ctx), source, path, split_tickers(tickers))
    except TradeopsError as exc:
        fail(exc)
    if as_json:
        sys.stdout.write(json.dumps(report, indent=2, default=str) + "\n")
    else:
        ingest_summary(report, console)
        console.print(f"report: {report['report_path']}")
    if not report["ok"]:
        raise typer.Exit(1)


@app.command("catalog")
def catalog_cmd(
    ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json", help="Print the catalog as JSON.")] = False
) -> None:
    """List datasets with description, owner, schema, versions, row counts, sources, validation status, lineage."""
    from tradeops.cli.render import catalog_tables
    from tradeops.data.catalog import build_catalog
    from tradeops.data.store import lake_for

    try:
        cat = build_catalog(lake_for(settings_of(ctx)))
    except TradeopsError as exc:
        fail(exc)
    if as_json:
        sys.stdout.write(json.dumps(cat, indent=2, default=str) + "\n")
    else:
        catalog_tables(cat, console)


def graph_ingest(settings: Settings, day: str, tickers: list[str]) -> tuple[dict, list]:
    """``ingest_daily`` for ``tickers`` at ``day`` through the Dagster graph; the runs and one merged report dict
    (the per-run ingest reports, as `tradeops ingest` prints them); a failed run is a TradeopsError naming it."""
    from tradeops.pipelines.run import run_job

    with progress_bar() as (bar, task):

        def tick(run) -> None:
            bar.update(task, description=f"ingest_daily {run.partition} {run.status}")

        runs = run_job(settings, "ingest_daily", day=day, tickers=tickers, on_run=tick)
    failed = [r for r in runs if not r.ok]
    if failed:
        raise TradeopsError("; ".join(r.message() for r in failed))
    reports = [json.loads(Path(r.materializations["bars"]["report_path"]).read_text()) for r in runs]
    tickers_out = [t for rep in reports for t in rep["tickers"]]
    merged = {
        "report_id": f"{len(reports)} ingest_daily runs",
        "source": reports[0]["source"] if reports else "sample",
        "ok": all(rep["ok"] for rep in reports),
        "tickers": tickers_out,
        "repairs": [x for rep in reports for x in rep.get("repairs", [])],
        "summary": {
            s: sum(t["status"] == s for t in tickers_out) for s in ("accepted", "accepted_with_warnings", "quarantined")
        },
        "bars_version_before": reports[0]["bars_version_before"] if reports else None,
        "bars_version_after": reports[-1]["bars_version_after"] if reports else None,
        "report_path": runs[-1].materializations["bars"]["report_path"],
    }
    return merged, runs


def graph_train(settings: Settings, day: str):
    """``train`` as of ``day`` through the Dagster graph; the run and its TrainOutcome, or ``None`` when the
    blocking blessing check stopped an unblessed candidate (a decision, not a failure); any other failure raises."""
    from tradeops.pipelines.run import run_job, train_outcome_of

    with progress_bar() as (bar, task):
        bar.update(task, description=f"train {day} (Dagster run, stages as assets)")
        (run,) = run_job(settings, "train", day=day)
    if run.ok:
        return run, train_outcome_of(settings, run)
    only_blessing = [f"{c['asset']}:{c['check']}" for c in run.failed_checks] == ["blessing:candidate_blessed"]
    if only_blessing and run.error_class in (None, "DagsterAssetCheckFailedError"):
        return run, None
    raise TradeopsError(run.message())


def demo_challenger(settings: Settings):
    """A second, quicker IBM model (1 epoch) registered as challenger, auto-promotion off: what shadow and canary
    routing compare against the champion in the demo."""
    from tradeops.model.training import train_model

    blessing = settings.model.blessing.model_copy(update={"auto_promote": False})
    quick = settings.model_copy(update={"model": settings.model.model_copy(update={"blessing": blessing})})
    with progress_bar() as (bar, task):
        bar.update(task, description="training a 1-epoch challenger")
        return train_model(quick, preset="cnn-ta", tickers=["IBM"], epochs=1)


def demo_monitoring(settings: Settings, day: str):
    """One monitoring pass as of the demo's date with the bundled rules; a retrain a rule asks for is written as a
    request for the Dagster retrain sensor (the demo does not train a third model), every other action runs."""
    from tradeops.cli.monitor import print_pass
    from tradeops.data.calendar import parse_day
    from tradeops.deploy.notify import local_receiver
    from tradeops.deploy.predlog import open_database
    from tradeops.monitor.actions import ActionContext
    from tradeops.monitor.run import monitor_pass, report_path

    engine = open_database(settings.service_database_url)
    try:
        with local_receiver() as hook:  # alerts go to a receiver on 127.0.0.1 unless a webhook is configured
            url = settings.pipelines.alert_webhook_url or hook.url
            demo = settings.model_copy(
                update={"pipelines": settings.pipelines.model_copy(update={"alert_webhook_url": url})}
            )
            ctx = ActionContext(settings=demo, engine=engine)
            result = monitor_pass(demo, parse_day(day), context=ctx, report=report_path(settings))
    finally:
        engine.dispose()
    print_pass(result.to_dict())
    if not settings.pipelines.alert_webhook_url:
        console.print(f"alerts posted to a local webhook receiver: {len(hook.bodies)}", highlight=False)
    if result.failed_actions:
        raise TradeopsError(f"monitoring: [actions] {len(result.failed_actions)} action(s) failed")
    return result


DEMO_SIM_START, DEMO_SIM_END = "2011-01-03", "2012-12-31"
DEMO_SIM_EPOCHS = 3


def demo_simulation(settings: Settings, end: str = DEMO_SIM_END):
    """Two years of IBM simulated in their own home (``<home>/simulations/demo-<start>-<end>``), monitored every 10
    sessions, models trained with ``DEMO_SIM_EPOCHS`` epochs to fit the demo's time; a second demo resumes it."""
    from tradeops.cli.simulate import DayLine, print_simulation
    from tradeops.data.calendar import parse_day
    from tradeops.sim.journal import Plan
    from tradeops.sim.report import finish
    from tradeops.sim.run import simulate

    plan = Plan(DEMO_SIM_START, parse_day(end).isoformat(), ("IBM",), "sample", None, "cnn-ta", 10, DEMO_SIM_EPOCHS)
    home = settings.home / "simulations" / f"demo-{plan.start}-{plan.end}"
    sim_settings = settings.model_copy(update={"home": home})
    line = DayLine()
    with progress_bar() as (bar, task):

        def on_day(record: dict, done: int, total: int) -> None:
            bar.update(task, total=total, completed=done, description=escape(line(record)))

        result = simulate(sim_settings, plan, on_day=on_day, say=lambda t: bar.update(task, description=escape(t)))
    result = finish(sim_settings, result)
    print_simulation(result.to_dict())
    return result


def demo_reproduce(settings: Settings):
    """Rebuild the step-3 champion from its lineage and compare bit for bit. A data or result difference fails the
    demo; a code difference (a checkout with uncommitted changes cannot name its code) is shown, not fatal."""
    from tradeops.cli.model import print_reproduce
    from tradeops.model import registry as reg
    from tradeops.model.reproduce import reproduce

    name = reg.model_name("cnn-ta", ["IBM"])
    with progress_bar() as (bar, task):
        report = reproduce(settings, name, reg.CHAMPION, status=lambda m: bar.update(task, description=escape(m)))
    print_reproduce(report)
    fatal = [k for k in report.kinds() if k in ("data", "result", "environment")]
    if fatal:
        raise TradeopsError(f"reproduce {name} v{report.version}: differs ({', '.join(fatal)})")
    return report


DEMO_RESEARCH_TICKERS, DEMO_RESEARCH_YEARS, DEMO_RESEARCH_EPOCHS, DEMO_RESEARCH_SEEDS = ["IBM"], [2011, 2012], 3, [0, 1]


def demo_research(settings: Settings):
    """The research protocol in miniature: IBM, test years 2011-2012, two seeds, every variant scored on validation
    windows inside the training years, the selection made on validation only, recorded in MLflow."""
    from tradeops.model import protocol as pr

    variants = ["argmax", "thresholds", "min_hold_10", "exit_on_hold", "ensemble", "ensemble_thresholds"]
    with progress_bar() as (bar, task):
        result = pr.run_protocol(
            settings,
            tickers=DEMO_RESEARCH_TICKERS,
            test_years=DEMO_RESEARCH_YEARS,
            train_years=settings.model.train_years,
            variants=variants,
            seeds=DEMO_RESEARCH_SEEDS,
            epochs=DEMO_RESEARCH_EPOCHS,
            progress=lambda m: bar.update(task, description=escape(m)),
        )
    pr.log_protocol(settings, result, {"demo": True, "epochs": DEMO_RESEARCH_EPOCHS, "variants": ",".join(variants)})
    for c in result.candidates:
        s = c.evaluation["summary"]
        console.print(
            f"{c.name:<36} validation {100 * c.val_score:+6.1f} pts/yr vs B&H   test {100 * c.test_excess():+6.1f} "
            f"pts/yr (net {100 * s['net_annualized_return']:+.1f}%, B&H {100 * s['bh_annualized_return']:+.1f}%)",
            highlight=False,
        )
    best = result.selected
    console.print(f"selected on validation: {best.name}; its test years, realistic fills:", highlight=False)
    console.print(escape(pr.format_paper_table(pr.paper_table(best.evaluation, "realistic"))), highlight=False)
    return result


@app.command("demo")
def demo_cmd(
    ctx: typer.Context,
    simulate_until: Annotated[
        str,
        typer.Option(
            "--simulate-until",
            help=f"Last day of the demo's lifecycle simulation (it starts {DEMO_SIM_START}; a shorter one is quicker).",
        ),
    ] = DEMO_SIM_END,
) -> None:
    """Run the whole lifecycle built so far on the bundled sample and say where to look."""
    from tradeops.cli.render import catalog_tables, class_balance_table, ingest_summary
    from tradeops.data.catalog import build_catalog
    from tradeops.data.sources import SampleSource
    from tradeops.data.staging import latest_source_date
    from tradeops.data.store import lake_for

    base = settings_of(ctx)
    # The demo runs the bundled sample through the graph, whatever source the config names.
    sample = SampleSource()
    tickers = sorted(r.ticker for r in sample.fetch(None, {}))
    pipelines = base.pipelines.model_copy(
        update={"source": "sample", "source_path": None, "universe": tuple(tickers), "train_tickers": ("IBM",)}
    )
    settings = base.model_copy(update={"pipelines": pipelines})
    steps = 8
    try:
        day = latest_source_date(settings, tickers, sample).isoformat()
        console.rule(f"[bold]1/{steps} Data: ingest_daily {day} through the Dagster graph (checks, versions)")
        report, ingest_runs = graph_ingest(settings, day, tickers)
        ingest_summary(report, console)
        console.rule(f"[bold]2/{steps} Features: indicators, labels, feature store (presets cnn-ta and thesis)")
        builds = [run_build(settings, preset, None) for preset in ("cnn-ta", "thesis")]
        from tradeops.cli.render import build_summary

        for b in builds:
            build_summary(b.to_dict(), console)
        class_balance_table(builds[0].class_balance, console)
        report_path = write_report(settings, builds[0].feature_set)
        console.print(f"feature report: {report_path}")
        console.rule(f"[bold]3/{steps} Model: train CNN-TA on IBM through the Dagster graph (train {day})")
        from tradeops.cli.model import print_train

        train_run, trained = graph_train(settings, day)
        if trained is not None:
            print_train(trained, as_json=False)
        else:  # e.g. a second demo: the same data and seed cannot beat the champion by the margin
            console.print(escape(f"{train_run.message()}\nnot registered; the champion keeps serving"), highlight=False)
        console.rule(f"[bold]4/{steps} Deployment: a challenger, the signal service (reader key), shadow and canary")
        challenger = demo_challenger(settings)
        console.print(
            f"tradeops train --epochs 1 with auto-promotion off: {challenger.name} v{challenger.version} is the "
            f"challenger (blessed: {str(challenger.decision.get('blessed')).lower()}), "
            f"champion stays v{challenger.champion_after}"
        )
        from tradeops.cli.serve import run_service_demo

        served = run_service_demo(settings, console)
        console.rule(f"[bold]5/{steps} Monitoring: data and prediction drift, live quality, paper trading, rules")
        monitoring = demo_monitoring(settings, day)
        console.rule(
            f"[bold]6/{steps} Lifecycle: IBM lived day by day {DEMO_SIM_START} to {simulate_until} (tradeops simulate)"
        )
        simulated = demo_simulation(settings, simulate_until)
        console.rule(f"[bold]7/{steps} Reproducibility: tradeops reproduce of the champion trained in step 3")
        reproduced = demo_reproduce(settings)
        console.rule(f"[bold]8/{steps} Research: walk-forward candidates chosen on validation years only")
        research = demo_research(settings)
        console.rule("[bold]Data: catalog (datasets, versions, validation status, lineage)")
        catalog_tables(build_catalog(lake_for(settings)), console)
    except TradeopsError as exc:
        fail(exc)
    console.rule("[bold]where to look")
    runs = ", ".join(r.run_id[:8] for r in ingest_runs)
    console.print(
        f"state:          {settings.home.resolve()}\n"
        f"delta tables:   {lake_for(settings).root}\n"
        f"ingest report:  {Path(report['report_path']).resolve()}\n"
        f"feature report: {report_path}\n"
        f"models:         tradeops models | tradeops ui mlflow (store {settings.tracking_uri})\n"
        + (
            f"trained model:  {trained.name} v{trained.version}, MLflow run {trained.run_id}\n"
            if trained is not None
            else f"trained model:  none new (the candidate was not blessed), challenger {challenger.name} "
            f"v{challenger.version}\n"
        )
        + f"dagster runs:   ingest_daily {runs}; train {train_run.run_id} (instance {settings.dagster_home})\n"
        f"service:        tradeops serve | tradeops keys list (prediction log {settings.service_database_url}, "
        f"demo served at {served['url']})\n"
        f"monitoring:     {monitoring.report} | tradeops monitor --as-of {day}\n"
        f"simulation:     {simulated.reports['simulation']} (home {simulated.home}; champion v"
        f"{simulated.summary['champion_final']} at the end, {simulated.summary['decisions']} decisions)\n"
        f"reproduced:     {reproduced.name} v{reproduced.version}: "
        + ("bit for bit" if reproduced.ok else f"differs ({', '.join(reproduced.kinds())})")
        + "\n"
        f"research:       selected {research.selected.name}; MLflow run "
        f"{research.mlflow_runs['per-instrument']} (a child run per fold); python bench/protocol.py for the table\n"
        f"pipelines:      tradeops ui dagster | tradeops pipelines list | tradeops pipelines run train --date {day}\n"
        f"next:           tradeops features show IBM --date 2010-06-01 | tradeops walkforward --preset "
        f"cnn-ta --tickers AAPL,IBM,MSFT --train-years 5 --test-years 2007-2012",
        soft_wrap=True,
    )


def run() -> None:  # pragma: no cover - console entry point wrapper
    app()


if __name__ == "__main__":  # pragma: no cover
    app()
