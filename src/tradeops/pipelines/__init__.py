"""Dagster code location of tradeops (thin wiring over the domain packages): ``defs``.

``defs`` is built on first access from the environment's settings (``TRADEOPS_HOME`` / ``TRADEOPS_CONFIG``), so
``import tradeops.pipelines`` stays cheap and executor workers load the same jobs. Dagster tools must name the
attribute (``-m tradeops.pipelines -a defs``, :data:`LOCATION_ARGS`): without ``-a`` Dagster scans the module's
variables, where a lazily built ``defs`` is not yet.
"""

from __future__ import annotations

from typing import Any

LOCATION_ARGS = ("-m", "tradeops.pipelines", "-a", "defs")


def __getattr__(name: str) -> Any:
    if name == "defs":
        from tradeops.pipelines.definitions import defs

        return defs
    raise AttributeError(name)
