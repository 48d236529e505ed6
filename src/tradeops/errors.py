"""Typed errors shared by every level. The CLI maps them to exit codes (section 5 of ARCHITECTURE.md)."""

from __future__ import annotations

from dataclasses import dataclass, field


class TradeopsError(Exception):
    """Base class for every error tradeops raises on purpose."""

    exit_code: int = 1


class UsageError(TradeopsError):
    """The caller asked for something that cannot be done as asked (exit code 2)."""

    exit_code = 2


class ConfigError(UsageError):
    """The configuration file or an environment override is invalid."""


@dataclass(frozen=True)
class Finding:
    """One validation finding: which ticker, where, which rule, how bad.

    ``severity`` is ``"error"`` (the ticker's batch is quarantined) or ``"warning"`` (accepted, flagged).
    ``date`` is an ISO date or ``None`` when the finding is not about one bar; ``row`` is the 1-based data row
    in the source file (header excluded) when known.
    """

    ticker: str
    rule: str
    message: str
    severity: str = "error"
    date: str | None = None
    row: int | None = None
    details: dict = field(default_factory=dict)

    def where(self) -> str:
        parts = [self.ticker]
        if self.date:
            parts.append(self.date)
        if self.row is not None:
            parts.append(f"row {self.row}")
        return " ".join(parts)

    def __str__(self) -> str:
        return f"{self.where()}: [{self.rule}] {self.message}"

    def to_dict(self) -> dict:
        return {
            "ticker": self.ticker,
            "rule": self.rule,
            "severity": self.severity,
            "date": self.date,
            "row": self.row,
            "message": self.message,
            "details": self.details,
        }


class DataRejected(TradeopsError):
    """Input data broke a rule; carries the findings that name ticker, date/row and rule (exit code 1)."""

    exit_code = 1

    def __init__(self, findings: list[Finding]):
        self.findings = list(findings)
        super().__init__("; ".join(str(f) for f in self.findings) or "data rejected")


class SourceError(TradeopsError):
    """A data source failed (network, throttling, bad symbol or key); nothing was stored."""

    exit_code = 1

    def __init__(self, message: str, *, ticker: str | None = None, rule: str = "source"):
        self.ticker = ticker
        self.rule = rule
        prefix = f"{ticker}: " if ticker else ""
        super().__init__(f"{prefix}[{rule}] {message}")
