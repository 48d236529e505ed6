"""Shared CLI plumbing: consoles, settings from the context, error -> exit code, progress bars."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from tradeops.config import Settings
from tradeops.errors import TradeopsError

# Wide enough for the tables when output is piped (CI logs, `make demo | tee`); a terminal keeps its own width.
console = Console(width=None if sys.stdout.isatty() else 120)
err_console = Console(stderr=True)


def settings_of(ctx: typer.Context) -> Settings:
    root = ctx.find_root()
    return root.obj["settings"]


def fail(exc: TradeopsError) -> None:
    # The message carries "[rule]" tags: escape them or rich would swallow them as markup.
    err_console.print(f"[bold red]error:[/bold red] {escape(str(exc))}", markup=True, highlight=False, soft_wrap=True)
    raise typer.Exit(exc.exit_code)


def split_tickers(tickers: str | None) -> list[str] | None:
    if not tickers:
        return None
    out = [t.strip().upper() for t in tickers.split(",") if t.strip()]
    return out or None


@contextmanager
def progress_bar() -> Iterator[tuple[Progress, int]]:
    """A transient progress bar on stderr (shown on terminals only, so logs stay clean)."""
    with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(), console=err_console,
                  transient=True, disable=not err_console.is_terminal) as bar:
        yield bar, bar.add_task("working", total=None)
