"""Dagster code location of tradeops (thin wiring over the domain packages): ``defs``.

``defs`` is built on first access from the environment's settings (``TRADEOPS_HOME`` / ``TRADEOPS_CONFIG``), so
``import tradeops.pipelines`` stays cheap and ``dagster -m tradeops.pipelines`` / executor workers load the same jobs.
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    if name == "defs":
        from tradeops.pipelines.definitions import defs

        return defs
    raise AttributeError(name)
