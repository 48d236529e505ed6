"""Champion / challenger routing: which model answers a signal request, and which one is scored in shadow.

Pure and stateless. A request key is ``(ticker, as_of)``; its position in [0, 1) comes from sha256 of
``"TICKER|YYYY-MM-DD"``, so the same key routes the same way in every process, worker and Python version.

Modes (``ROUTING_MODES``):

- ``off``: the champion answers; the challenger (if any) is not scored.
- ``shadow``: the champion answers; the challenger is scored and logged, never returned (``shadow=True``).
- ``canary``: keys with ``route_key < share`` are answered by the challenger (when there is one), all others by the
  champion. The model that does not answer is still scored in shadow (``shadow=True``), so champion/challenger
  disagreement is measured on every canary request, not only on the non-canary slice.

Without a challenger every mode degrades to "champion only, nothing in shadow".
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import date
from typing import Literal

from tradeops.errors import UsageError

ROUTING_MODES = ("off", "shadow", "canary")

Answerer = Literal["champion", "challenger"]


@dataclass(frozen=True)
class Decision:
    """Who answers a request (``answered_by``) and whether the other model is scored alongside (``shadow``)."""

    answered_by: Answerer
    shadow: bool

    @property
    def scored_by(self) -> tuple[Answerer, ...]:
        """Every model that is scored for this request, the answering one first."""
        if not self.shadow:
            return (self.answered_by,)
        other: Answerer = "challenger" if self.answered_by == "champion" else "champion"
        return (self.answered_by, other)


@dataclass(frozen=True)
class RoutingState:
    """A validated routing configuration: ``mode`` in :data:`ROUTING_MODES`, ``share`` in [0, 1] (canary slice)."""

    mode: str
    share: float

    def __post_init__(self) -> None:
        validate_routing(self.mode, self.share)

    def decide(self, ticker: str, as_of: str | date, *, has_challenger: bool) -> Decision:
        """As :func:`decide` with this state (validated once, at construction)."""
        return _decide(self.mode, self.share, ticker, as_of, has_challenger)


def validate_routing(mode: str, share: float) -> None:
    """Raise :class:`UsageError` naming the field (``mode`` or ``share``) when the routing settings are invalid."""
    if not isinstance(mode, str) or mode not in ROUTING_MODES:
        raise UsageError(f"mode: [routing_mode] must be one of {', '.join(ROUTING_MODES)}, got {mode!r}")
    if isinstance(share, bool) or not isinstance(share, int | float):
        raise UsageError(f"share: [routing_share] must be a number in [0, 1], got {share!r}")
    if not math.isfinite(share) or not 0.0 <= share <= 1.0:
        raise UsageError(f"share: [routing_share] must be a number in [0, 1], got {share!r}")


def route_key(ticker: str, as_of: str | date) -> float:
    """The stable position of a request key in [0, 1): the top 53 bits of sha256(``"TICKER|YYYY-MM-DD"``) / 2**53.

    ``ticker`` is upper-cased; ``as_of`` is an ISO date string (``YYYY-MM-DD``) or a date (a datetime or pandas
    Timestamp counts by its date), so ``"2012-06-01"`` and ``date(2012, 6, 1)`` are the same key.
    """
    day = as_of if isinstance(as_of, str) else as_of.isoformat()[:10]
    digest = hashlib.sha256(f"{ticker.upper()}|{day}".encode()).digest()
    # 53-bit mantissa: keep the top 53 bits so the float is exact and strictly below 1.0.
    value = int.from_bytes(digest[:8], "big") >> 11
    return value / float(1 << 53)


def decide(mode: str, share: float, ticker: str, as_of: str | date, *, has_challenger: bool) -> Decision:
    """Route one request (see the module docstring for the rules); invalid ``mode``/``share`` -> :class:`UsageError`."""
    validate_routing(mode, share)
    return _decide(mode, share, ticker, as_of, has_challenger)


_CHAMPION_ONLY = Decision("champion", shadow=False)
_CHAMPION_SHADOW = Decision("champion", shadow=True)
_CHALLENGER_SHADOW = Decision("challenger", shadow=True)


def _decide(mode: str, share: float, ticker: str, as_of: str | date, has_challenger: bool) -> Decision:
    if not has_challenger or mode == "off":
        return _CHAMPION_ONLY
    if mode == "shadow":
        return _CHAMPION_SHADOW
    # canary: both are scored, so disagreement is measured on the canary slice too
    return _CHALLENGER_SHADOW if route_key(ticker, as_of) < share else _CHAMPION_SHADOW
