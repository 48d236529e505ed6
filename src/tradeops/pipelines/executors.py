"""The executor of every job, chosen by configuration (``pipelines.executor``), never by code changes."""

from __future__ import annotations

from tradeops.config import Settings


def executor_for(settings: Settings):
    """The Dagster executor definition for ``settings.pipelines.executor`` (scale-out engines added by their work)."""
    import dagster as dg

    kind = settings.pipelines.executor
    if kind == "in_process":
        return dg.in_process_executor
    if kind == "multiprocess":
        return dg.multi_or_in_process_executor
    raise NotImplementedError(f"pipelines.executor={kind!r} is not wired yet")
