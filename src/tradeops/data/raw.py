"""Raw bars as delivered by a source, before any check: bytes plus provenance."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime


@dataclass(frozen=True)
class RawFile:
    """One ticker's raw payload from a source.

    ``declared_size`` is the byte size the source announced (file size on disk, HTTP Content-Length) so the ingestion
    check can compare it with what was read; ``None`` when the source announces none.
    ``location`` names where it came from (a path or a URL with the API key removed).
    """

    ticker: str
    content: bytes
    source: str
    location: str
    declared_size: int | None = None
    fetched_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    fmt_hint: str | None = None  # "json" for Alpha Vantage JSON payloads, else CSV is assumed
    expected_symbol: str | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()

    def provenance(self) -> dict:
        return {
            "ticker": self.ticker,
            "source": self.source,
            "location": self.location,
            "bytes": len(self.content),
            "sha256": self.sha256,
            "fetched_at": self.fetched_at.isoformat(),
        }
