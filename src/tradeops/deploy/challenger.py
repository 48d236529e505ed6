"""Which challengers are ready to be promoted: the decision behind the promotion sensor (pure, over
:func:`tradeops.model.registry.describe_all` records)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from tradeops.model.registry import CHALLENGER, CHAMPION


@dataclass(frozen=True)
class ChallengerDecision:
    """For one registered model: the challenger version, whether it may be promoted, and why (or why not).

    ``settled`` is false while the answer may still change (a registration still being written): such a version is
    looked at again next time instead of being recorded as handled."""

    model: str
    version: str
    promotable: bool
    reason: str
    settled: bool = True

    @property
    def key(self) -> str:
        """``model:version``: the run key of its promotion and its entry in the handled set."""
        return f"{self.model}:{self.version}"


def challenger_decisions(models: Iterable[Mapping], handled: Iterable[str] = ()) -> list[ChallengerDecision]:
    """One decision per model whose ``challenger`` alias points at a version not handled before.

    Promotable = the version is complete, tagged ``blessed=true`` and not the champion. Models without a challenger
    and ``model:version`` keys in ``handled`` give no decision.
    """
    done = set(handled)
    out = []
    for model in models:
        name = str(model["name"])
        aliases = model.get("aliases") or {}
        version = aliases.get(CHALLENGER)
        if version is None or f"{name}:{version}" in done:
            continue
        version = str(version)
        record = next((v for v in model.get("versions", []) if str(v["version"]) == version), None)
        if record is None:
            out.append(ChallengerDecision(name, version, False, f"version {version} is not in the registry", False))
        elif str(aliases.get(CHAMPION)) == version:
            out.append(ChallengerDecision(name, version, False, "it is already the champion"))
        elif not record.get("complete"):
            missing = ", ".join(record.get("missing_tags") or []) or "?"
            out.append(ChallengerDecision(name, version, False, f"its registration is incomplete ({missing})", False))
        elif (record.get("tags") or {}).get("blessed") != "true":
            out.append(ChallengerDecision(name, version, False, "it is not blessed"))
        else:
            out.append(ChallengerDecision(name, version, True, "complete, blessed and not the champion"))
    return out
