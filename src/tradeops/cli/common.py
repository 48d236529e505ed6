"""Shared CLI plumbing: consoles, settings from the context, error -> exit code, progress bars."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from tradeops.config import Settings
from tradeops.errors import TradeopsError

# Wide enough for the tables when output is piped (CI logs, `make demo | tee`); a terminal keeps its own width.
console = Console(width=None if sys.stdout.isatty() else 120)
err_console = Console(stderr=True)


def settings_of(ctx: typer.Context) -> Settings:
    """The validated settings of this invocation, loaded on first use; a bad config exits 2 with its message."""
    obj = ctx.find_root().obj
    if obj["settings"] is None:
        try:
            obj["settings"] = obj["load"]()
        except TradeopsError as exc:
            fail(exc)
    return obj["settings"]


def fail(exc: TradeopsError) -> None:
    # The message carries "[rule]" tags: escape them or rich would swallow them as markup.
    err_console.print(f"[bold red]error:[/bold red] {escape(str(exc))}", markup=True, highlight=False, soft_wrap=True)
    raise typer.Exit(exc.exit_code)


def split_tickers(tickers: str | None) -> list[str] | None:
    if not tickers:
        return None
    out = [t.strip().upper() for t in tickers.split(",") if t.strip()]
    return out or None


class PlainProgress:
    """Progress for logs (CI, pipes): a plain stderr line when the step changes, at most one per ``interval``
    seconds while it stays the same; the same ``update`` call as a rich progress bar."""

    def __init__(
        self, stream: TextIO | None = None, interval: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.stream = stream
        self.interval = interval
        self.clock = clock
        self.started = clock()
        self._last_text: str | None = None
        self._last_at = -float("inf")

    def update(
        self,
        task: TaskID,
        *,
        description: str | None = None,
        completed: float | None = None,
        total: float | None = None,
        **_: object,
    ) -> None:
        step = description if description is not None else (self._last_text or "working")
        now = self.clock()
        # "epoch 3" follows "epoch 2": the same step, throttled; "evaluating" after "epoch 19" is a new one.
        changed = self._last_text is None or step.split(" ", 1)[0] != self._last_text.split(" ", 1)[0]
        if not changed and now - self._last_at < self.interval:
            return
        count = f" {completed:g}/{total:g}" if completed is not None and total else ""
        stream = self.stream or sys.stderr
        stream.write(f"[{now - self.started:6.1f}s] {step}{count}\n")
        stream.flush()
        self._last_text, self._last_at = step, now


@contextmanager
def progress_bar() -> Iterator[tuple[Progress | PlainProgress, TaskID]]:
    """A transient rich progress bar on stderr when it is a terminal, plain periodic log lines otherwise."""
    if not err_console.is_terminal:
        yield PlainProgress(), TaskID(0)
        return
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        yield bar, bar.add_task("working", total=None)
