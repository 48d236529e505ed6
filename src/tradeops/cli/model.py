"""Model-level commands: train, tune, walkforward, promote, rollback, models, reproduce, ui (thin wrappers)."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Annotated, Optional

import typer

from tradeops.cli.common import console, err_console, fail, progress_bar, settings_of, split_tickers
from tradeops.errors import TradeopsError, UsageError

PresetOpt = Annotated[str, typer.Option("--preset", help="cnn-ta or thesis.")]
TickersOpt = Annotated[str, typer.Option("--tickers", help="Comma-separated tickers, e.g. IBM or AAPL,IBM,MSFT.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as one JSON object.")]


def _tickers(value: str) -> list[str]:
    tickers = split_tickers(value)
    if not tickers:
        raise UsageError("--tickers is required (e.g. --tickers IBM)")
    return tickers


def _preset(value: str) -> str:
    """A known feature preset, else a UsageError naming the valid ones (checked before any work)."""
    from tradeops.features.definitions import PRESETS

    if value not in PRESETS:
        raise UsageError(f"--preset {value!r} is unknown; valid presets: {', '.join(PRESETS)}")
    return value


def _check_recipe(value: str | None) -> None:
    """``--recipe``, when given, is paper or default (a UsageError before any work)."""
    if value is not None and value not in ("paper", "default"):
        raise UsageError(f"--recipe must be paper or default, got {value!r}")


def _with_overrides(settings, **model_overrides):
    """Settings with CLI flags applied to the model section (flags beat config)."""
    changes = {k: v for k, v in model_overrides.items() if v is not None}
    if not changes:
        return settings
    return settings.model_copy(update={"model": settings.model.model_copy(update=changes)})


def run_train(settings, preset: str, tickers: list[str], epochs: int | None):
    from tradeops.model.training import train_model

    with progress_bar() as (bar, task):

        def status(msg: str) -> None:
            bar.update(task, description=msg)

        def epoch(i: int, record: dict) -> None:
            loss = record.get("val_macro_f1")
            bar.update(task, description=f"epoch {i}" + (f" val macro-F1 {loss:.3f}" if loss is not None else ""))

        return train_model(settings, preset=preset, tickers=tickers, epochs=epochs, on_epoch=epoch, status=status)


def print_train(out, as_json: bool) -> None:
    from tradeops.cli.render import train_summary

    if as_json:
        sys.stdout.write(json.dumps(out.to_dict(), indent=2, default=str) + "\n")
    else:
        train_summary(out.to_dict(), console)


def train_cmd(
    ctx: typer.Context,
    preset: PresetOpt = "cnn-ta",
    tickers: TickersOpt = "",
    epochs: Annotated[Optional[int], typer.Option(help="Epochs (default: the recipe's).", min=1)] = None,
    recipe: Annotated[Optional[str], typer.Option(help="paper or default (config model.recipe).")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed (config model.seed).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Train, evaluate, bless and register one model; prints run id, version, metrics and the blessing decision."""
    try:
        _check_recipe(recipe)
        settings = _with_overrides(settings_of(ctx), recipe=recipe, seed=seed)
        out = run_train(settings, _preset(preset), _tickers(tickers), epochs)
    except TradeopsError as exc:
        fail(exc)
    print_train(out, as_json)


def walkforward_cmd(
    ctx: typer.Context,
    preset: PresetOpt = "cnn-ta",
    tickers: TickersOpt = "",
    train_years: Annotated[float, typer.Option("--train-years", help="Sliding training years.")] = 5,
    test_years: Annotated[str, typer.Option("--test-years", help="e.g. 2007-2012 or 2010,2011.")] = "2007-2012",
    mode: Annotated[str, typer.Option(help="Fill rule of the table: paper or realistic.")] = "realistic",
    pooled: Annotated[bool, typer.Option(help="One multi-ticker model per fold.")] = False,
    epochs: Annotated[Optional[int], typer.Option(help="Epochs per fold.", min=1)] = None,
    recipe: Annotated[Optional[str], typer.Option(help="paper or default.")] = None,
    seeds: Annotated[str, typer.Option(help="Comma list: one CNN per seed and fold; the table scores the first.")] = "",
    workers: Annotated[int, typer.Option(help="Fold processes (1: this process).", min=1)] = 1,
    threads: Annotated[
        Optional[int], typer.Option(help="Torch threads per fold (default model.torch_threads).", min=1)
    ] = None,
    track: Annotated[
        bool, typer.Option("--track/--no-track", help="Record the run in MLflow (one parent run, one per fold).")
    ] = True,
    as_json: JsonOpt = False,
) -> None:
    """Retrain per test year, concatenate the test signals and compare with Buy & Hold and the baselines."""
    from tradeops.cli.render import walkforward_tables
    from tradeops.model.walkforward import run_walkforward

    try:
        from tradeops.model.walkforward import check_arguments

        years = parse_years(test_years)
        check_arguments(mode=mode, train_years=train_years, test_years=years)
        _check_recipe(recipe)
        preset, names = _preset(preset), _tickers(tickers)
        settings = _with_overrides(settings_of(ctx), recipe=recipe)
        with progress_bar() as (bar, task):
            result = run_walkforward(
                settings,
                preset=preset,
                tickers=names,
                test_years=years,
                train_years=train_years,
                mode=mode,
                pooled=pooled,
                epochs=epochs,
                seeds=parse_seeds(seeds),
                workers=workers,
                threads=threads,
                progress=lambda m: bar.update(task, description=f"fold {m}"),
            )
        # Logged after every fold ran, never inside the training loop.
        run_id = track_walkforward(settings, result, train_years=train_years, epochs=epochs) if track else None
    except TradeopsError as exc:
        fail(exc)
    if as_json:
        doc = result.to_dict() | ({"mlflow_run_id": run_id} if track else {})
        sys.stdout.write(json.dumps(doc, indent=2, default=str) + "\n")
        return
    walkforward_tables(result.to_dict(), console)
    if run_id is not None:
        console.print(f"MLflow run {run_id} ({len(result.folds)} fold runs)")


def track_walkforward(settings, result, *, train_years: float, epochs: int | None) -> str:
    """Record a finished walk-forward in MLflow with the arguments it ran with; return the parent run id."""
    from tradeops.model.tracking import log_walkforward
    from tradeops.model.training import walkforward_config

    config = walkforward_config(settings, result, train_years=train_years, epochs=epochs)
    return log_walkforward(settings, result, config=config)


def parse_seeds(text: str) -> list[int] | None:
    """``0,1,2`` -> [0, 1, 2]; empty -> None (the configured ``model.seed``); bad text is a UsageError."""
    if not text.strip():
        return None
    try:
        seeds = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"--seeds {text!r}: use non-negative integers like 0,1,2") from None
    if not seeds or any(x < 0 for x in seeds):
        raise UsageError(f"--seeds {text!r}: use non-negative integers like 0,1,2")
    return seeds


def parse_years(text: str) -> list[int]:
    """``2007-2012`` (inclusive range) or ``2010,2011`` -> sorted distinct years; bad text is a UsageError."""
    try:
        if "-" in text:
            a, b = (int(x) for x in text.split("-", 1))
            if a > b:
                raise UsageError(f"--test-years {text!r} is a reversed range: write {b}-{a}")
            years = list(range(a, b + 1))
        else:
            years = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"--test-years {text!r}: use a range like 2007-2012 or a list like 2010,2011") from None
    if not years:
        raise UsageError("--test-years names no year")
    bad = [y for y in years if not 1900 <= y <= 2100]
    if bad:
        raise UsageError(f"--test-years {text!r}: {bad[0]} is not a plausible calendar year")
    return sorted(set(years))


def tune_cmd(
    ctx: typer.Context,
    preset: PresetOpt = "cnn-ta",
    tickers: TickersOpt = "",
    trials: Annotated[Optional[int], typer.Option(help="Trials this worker runs (config model.tune).", min=1)] = None,
    storage: Annotated[Optional[str], typer.Option(help="Optuna RDB URL (default sqlite under home).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Tune the CNN with Optuna (TPE + median pruning); several workers may share one study through the storage."""
    from tradeops.model.tune import run_tune

    try:
        with progress_bar() as (bar, task):
            result = run_tune(
                settings_of(ctx),
                preset=_preset(preset),
                tickers=_tickers(tickers),
                trials=trials,
                storage=storage,
                on_trial=lambda n, v, s: bar.update(
                    task, description=f"trial {n}: {s.lower()} {'' if v is None else f'{v:.3f}'}"
                ),
            )
    except TradeopsError as exc:
        fail(exc)
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
        return
    console.print(
        f"study {result.study} ({result.storage}): {result.n_trials} trials, {result.n_pruned} pruned; "
        f"best validation macro-F1 {result.best_value:.4f} with {result.best_params}",
        highlight=False,
    )


def promote_cmd(
    ctx: typer.Context,
    version: Annotated[str, typer.Argument(help="Registered model version.")],
    model: Annotated[Optional[str], typer.Option(help="Registered model name (default: the only one).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Promote a version that is not blessed.")] = False,
) -> None:
    """Make VERSION the champion (by registry alias; recorded for rollback). Incomplete versions are refused;
    unblessed ones need --force."""
    from tradeops.model import registry as reg

    try:
        settings = settings_of(ctx)
        name = reg.resolve_name(settings, model)
        entry = reg.promote(
            settings,
            name,
            version,
            force=force,
            reason="manual promotion (tradeops promote" + (" --force)" if force else ")"),
        )
    except TradeopsError as exc:
        fail(exc)
    if entry["forced"]:
        err_console.print(
            f"[bold yellow]warning:[/bold yellow] {name} v{entry['champion']} is not blessed; "
            "promoted because of --force",
            highlight=False,
        )
    if not entry["changed"]:
        console.print(f"{name}: v{entry['champion']} is already the champion (nothing changed)", highlight=False)
        return
    console.print(
        f"{name}: champion is now v{entry['champion']} (was "
        f"{'v' + entry['previous'] if entry['previous'] else 'none'}; run {entry['run_id']})",
        highlight=False,
    )


def rollback_cmd(
    ctx: typer.Context,
    model: Annotated[Optional[str], typer.Option(help="Registered model name (default: the only one).")] = None,
) -> None:
    """Restore the champion before the current one; repeated, walks back through the recorded champions."""
    from tradeops.model import registry as reg

    try:
        settings = settings_of(ctx)
        name = reg.resolve_name(settings, model)
        entry = reg.rollback(settings, name)
    except TradeopsError as exc:
        fail(exc)
    console.print(
        f"{name}: rolled back, champion is now v{entry['champion']} (was v{entry['previous']})", highlight=False
    )


def models_cmd(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Registered models with their versions, aliases, blessing and completeness."""
    from tradeops.cli.render import models_table
    from tradeops.model import registry as reg

    try:
        out = reg.describe_all(settings_of(ctx))
    except TradeopsError as exc:
        fail(exc)
    if as_json:
        sys.stdout.write(json.dumps(out, indent=2) + "\n")
        return
    if not out:
        console.print(f"no registered models in {settings_of(ctx).tracking_uri}; train one with `tradeops train`")
        return
    models_table(out, console)


def reproduce_cmd(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="NAME or NAME@VERSION (a version number or alias; default champion).")],
    as_json: JsonOpt = False,
) -> None:
    """Rebuild a registered model from what it recorded (table versions, config, seed, threads, commit, packages),
    retrain, and verify bit-identical weights and ONNX and identical metrics. Exit 1 naming each difference as
    data, code, environment or result."""
    from tradeops.model import registry as reg
    from tradeops.model.reproduce import parse_model_ref, reproduce

    try:
        settings = settings_of(ctx)
        ref, version = parse_model_ref(model)
        name = reg.resolve_name(settings, ref)
        with progress_bar() as (bar, task):
            report = reproduce(
                settings, name, version or reg.CHAMPION, status=lambda m: bar.update(task, description=m)
            )
    except TradeopsError as exc:
        fail(exc)
    if as_json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2, default=str) + "\n")
    else:
        print_reproduce(report)
    if not report.ok:
        raise typer.Exit(1)


def print_reproduce(report) -> None:
    c = report.checked
    head = f"{report.name} v{report.version} (run {report.run_id})"
    if report.ok:
        console.print(
            f"{head}: reproduced bit for bit (rebuild run {report.rebuild_run_id}): weights sha256 "
            f"{c['weights_sha256']}, ONNX sha256 {c['onnx_sha256']}, {c['metrics']} metrics identical; tables "
            + ", ".join(f"{k} v{v}" for k, v in c["table_versions"].items())
            + f", commit {c['git_commit']}",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    else:
        console.print(
            f"{head}: NOT reproduced ({', '.join(report.kinds())}); "
            + (f"rebuild run {report.rebuild_run_id}" if report.rebuilt else "not rebuilt"),
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        for d in report.differences:
            console.print(f"  {d}", highlight=False, markup=False, soft_wrap=True)
    for note in report.notes:
        console.print(f"note: {note}", highlight=False, markup=False, soft_wrap=True)


def dagster_ui_commands(host: str, port: int) -> list[tuple[str, list[str]]]:
    """The two processes of ``tradeops ui dagster``: the webserver and the daemon, on the tradeops code location."""
    from tradeops.pipelines import LOCATION_ARGS

    return [
        (
            "dagster-webserver",
            [sys.executable, "-m", "dagster_webserver", *LOCATION_ARGS, "-h", host, "-p", str(port)],
        ),
        ("dagster-daemon", [sys.executable, "-m", "dagster._daemon", "run", *LOCATION_ARGS]),
    ]


def ui_cmd(
    ctx: typer.Context,
    which: Annotated[str, typer.Argument(help="dagster or mlflow")] = "mlflow",
    port: Annotated[Optional[int], typer.Option(help="Port (default 3000 for dagster, 5000 for mlflow).")] = None,
    host: Annotated[str, typer.Option(help="Host.")] = "127.0.0.1",
) -> None:
    """Open the Dagster UI (webserver + daemon on <home>/dagster) or the MLflow UI; blocks until Ctrl-C."""
    import os

    from tradeops.model import registry as reg

    if which not in ("dagster", "mlflow"):
        err_console.print(f"[bold red]error:[/bold red] unknown UI {which!r}; available: dagster, mlflow")
        raise typer.Exit(2)
    settings = settings_of(ctx)
    if which == "dagster":
        from tradeops.cli.supervise import supervise
        from tradeops.pipelines.instance import ensure_dagster_home, instance_for

        port = 3000 if port is None else port
        # Regression: webserver and daemon both created the SQLite storage of a fresh home at once and one died
        # with "table secondary_indexes already exists". Create (or migrate) it here, once, before either starts.
        instance_for(settings).dispose()
        env = {
            **os.environ,
            "DAGSTER_HOME": str(ensure_dagster_home(settings)),
            "DAGSTER_DISABLE_TELEMETRY": "1",
            "TRADEOPS_HOME": str(settings.home.resolve()),
        }
        outcome = supervise(
            dagster_ui_commands(host, port),
            env=env,
            on_started=lambda: console.print(
                f"Dagster UI on http://{host}:{port} (DAGSTER_HOME {env['DAGSTER_HOME']}); Ctrl-C stops it",
                highlight=False,
            ),
        )
        if outcome.exit_code:
            err_console.print(f"[bold red]error:[/bold red] {outcome.message}", highlight=False)
        else:
            console.print(outcome.message, highlight=False)
        raise typer.Exit(outcome.exit_code)
    port = 5000 if port is None else port
    reg.configure_mlflow(settings)
    console.print(f"MLflow UI on http://{host}:{port} (store {settings.tracking_uri})")
    cmd = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        settings.tracking_uri,
        "--default-artifact-root",
        settings.artifact_root,
        "--host",
        host,
        "--port",
        str(port),
    ]
    raise typer.Exit(subprocess.call(cmd))


def register(app: typer.Typer) -> None:
    app.command("train")(train_cmd)
    app.command("tune")(tune_cmd)
    app.command("walkforward")(walkforward_cmd)
    app.command("promote")(promote_cmd)
    app.command("rollback")(rollback_cmd)
    app.command("models")(models_cmd)
    app.command("reproduce")(reproduce_cmd)
    app.command("ui")(ui_cmd)
