"""``tradeops features ...``: build, show, export and report (thin wrappers over tradeops.features.store)."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Optional

import typer

from tradeops.cli.common import console, fail, progress_bar, settings_of, split_tickers
from tradeops.errors import TradeopsError, UsageError

app = typer.Typer(help="Features, labels and the feature store.", no_args_is_help=True, rich_markup_mode=None)

PresetOpt = Annotated[Optional[str], typer.Option("--preset", help="thesis (default) or cnn-ta.")]


def feature_set(settings, preset: str | None):
    from tradeops.features.store import FeatureSet

    cfg = settings.features
    return FeatureSet.from_preset(preset or cfg.preset, cfg.windows, cfg.label_window)


def run_build(settings, preset: str | None, tickers: list[str] | None):
    from tradeops.data.store import lake_for
    from tradeops.features.store import build_features

    fs = feature_set(settings, preset)
    with progress_bar() as (bar, task):

        def tick(t: str, i: int, n: int) -> None:
            bar.update(task, description=f"features {fs.preset} {t}", completed=i, total=n)

        return build_features(lake_for(settings), fs, tickers, progress=tick)


def print_build(result, as_json: bool) -> None:
    from tradeops.cli.render import build_summary, class_balance_table

    if as_json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2, default=str) + "\n")
        return
    build_summary(result.to_dict(), console)
    class_balance_table(result.class_balance, console)


@app.command("build")
def build_cmd(
    ctx: typer.Context,
    preset: PresetOpt = None,
    tickers: Annotated[Optional[str], typer.Option(help="Comma-separated tickers (default: all).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Compute features and labels from the stored bars into the feature store (one Delta version each)."""
    try:
        result = run_build(settings_of(ctx), preset, split_tickers(tickers))
    except TradeopsError as exc:
        fail(exc)
    print_build(result, as_json)


def _parse_date(value: str) -> datetime:
    try:
        return datetime.strptime(value, "%Y-%m-%d")
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date YYYY-MM-DD") from None


@app.command("show")
def show_cmd(
    ctx: typer.Context,
    ticker: Annotated[str, typer.Argument(help="Ticker, e.g. IBM.")],
    on: Annotated[str, typer.Option("--date", help="Trading date YYYY-MM-DD (default: latest).")] = "",
    preset: PresetOpt = None,
    png: Annotated[Optional[Path], typer.Option(help="Image path (default <home>/reports/T_DATE.png).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the vector as JSON.")] = False,
) -> None:
    """Print a ticker's feature vector on a date (computed online from stored bars) and write its image as PNG.

    The image scaling is fitted point-in-time: on the rows known by that date only.
    """
    from tradeops.cli.render import vector_table
    from tradeops.data.store import lake_for
    from tradeops.features.store import fit_image_transform, online_features
    from tradeops.features.transform import to_png

    settings = settings_of(ctx)
    ticker = ticker.strip().upper()
    when = _parse_date(on) if on else None
    try:
        fs = feature_set(settings, preset)
        lake = lake_for(settings)
        vec = online_features(lake, fs, ticker, as_of=when)
        if when is not None and vec.date != when:
            raise UsageError(
                f"{ticker}: {when.date()} is not a stored trading date (latest before it: {vec.date.date()})"
            )
        transform = fit_image_transform(lake, fs, [ticker], as_of=vec.date)
        image = transform.transform(vec.values.to_frame().T.astype("float64"))[0]
        out = png or settings.reports_dir / f"{ticker}_{vec.date:%Y-%m-%d}_{fs.preset}.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        to_png(image, out)
    except TradeopsError as exc:
        fail(exc)
    except ValueError as exc:
        fail(TradeopsError(f"{ticker}: {exc}"))
    if as_json:
        sys.stdout.write(
            json.dumps(
                {
                    "ticker": ticker,
                    "date": f"{vec.date:%Y-%m-%d}",
                    "preset": fs.preset,
                    "feature_set_version": fs.version,
                    "png": str(out),
                    "features": {k: float(v) for k, v in vec.values.items()},
                    "image_features": list(transform.selected_),
                },
                indent=2,
            )
            + "\n"
        )
        return
    vector_table(ticker, vec, fs, console)
    console.print(
        f"image ({transform.side}x{transform.side}, scaling fitted on data known by {vec.date:%Y-%m-%d}): {out}"
    )


@app.command("export")
def export_cmd(
    ctx: typer.Context,
    ticker: Annotated[str, typer.Option(help="Ticker to export.")],
    out: Annotated[Path, typer.Option(help="Output .parquet file.")],
    preset: PresetOpt = None,
) -> None:
    """Write date, every feature, label (BUY/SELL/HOLD) and label_known_at for one ticker to Parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tradeops.data.store import lake_for
    from tradeops.features.store import export_frame

    settings = settings_of(ctx)
    try:
        fs = feature_set(settings, preset)
        frame = export_frame(lake_for(settings), fs, ticker.strip().upper())
    except TradeopsError as exc:
        fail(exc)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    table = pa.Table.from_pandas(frame, preserve_index=False)
    table = table.replace_schema_metadata(
        {
            **(table.schema.metadata or {}),
            b"tradeops.feature_set_version": fs.version.encode(),
            b"tradeops.preset": fs.preset.encode(),
        }
    )
    pq.write_table(table, tmp)
    tmp.replace(out)
    console.print(
        f"wrote {len(frame)} rows x {frame.shape[1]} columns ({fs.preset}, feature set {fs.version}) to {out}"
    )


def write_report(settings, fs, tickers: list[str] | None = None, *, selection=None, out: Path | None = None) -> Path:
    """Write the exploration report of feature set ``fs`` (default path under ``<home>/reports``); returns it."""
    from tradeops.data.store import lake_for
    from tradeops.features.store import read_features, read_labels
    from tradeops.report.features import write_features_report

    lake = lake_for(settings)
    path = out or settings.reports_dir / f"features_{fs.preset}_{fs.version}.html"
    write_features_report(
        path,
        features=read_features(lake, fs, tickers),
        labels=read_labels(lake, fs, tickers),
        preset=fs.preset,
        feature_set_version=fs.version,
        registry=list(fs.defs),
        selection=selection,
    )
    return path.resolve()


@app.command("report")
def report_cmd(
    ctx: typer.Context,
    preset: PresetOpt = None,
    out: Annotated[Optional[Path], typer.Option(help="HTML path (default <home>/reports/).")] = None,
    tickers: Annotated[Optional[str], typer.Option(help="Comma-separated tickers (default: all).")] = None,
    as_of: Annotated[
        str,
        typer.Option(
            "--as-of",
            help="Fit the selection shown on labels known by this date (thesis preset; default: none fitted).",
        ),
    ] = "",
) -> None:
    """Write a self-contained HTML exploration report (distributions, correlations, class balance, selection)."""
    from tradeops.data.store import lake_for
    from tradeops.features.store import fit_image_transform

    settings = settings_of(ctx)
    try:
        fs = feature_set(settings, preset)
        names = split_tickers(tickers)
        selection = None
        if as_of and fs.preset == "thesis":
            selection = fit_image_transform(lake_for(settings), fs, names, as_of=_parse_date(as_of)).selection_
        path = write_report(settings, fs, names, selection=selection, out=out)
    except TradeopsError as exc:
        fail(exc)
    except ValueError as exc:
        fail(TradeopsError(f"features report: {exc}"))
    console.print(f"report: {path}")
