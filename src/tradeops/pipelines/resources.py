"""Resources of the tradeops code location: the validated :class:`~tradeops.config.Settings` of the home."""

from __future__ import annotations

SETTINGS_KEY = "tradeops"  # assets take ``tradeops: dg.ResourceParam[Settings]``
LOCK_WAIT_SECONDS = 600.0  # per-ticker steps in parallel processes wait this long for the home's writer locks
