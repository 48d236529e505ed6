"""Alert rules: a YAML file of thresholds on monitoring metrics, and their pure evaluation (cooldown, de-duplication).

A rules file (see the bundled ``rules.yaml``)::

    rules:
      - name: feature-drift          # unique, [a-z0-9-]+
        metric: data.psi_drifted_share
        window: 20                   # sessions the metric is computed over (informational)
        comparison: ">"              # > >= < <=
        threshold: 0.3
        severity: warning            # info | warning | critical
        action: retrain              # notify | retrain | rollback | halt | resume | none
        cooldown: 10                 # sessions during which the same rule + model does not fire again
        for: 1                       # consecutive passes the condition must hold (default 1)
    resume:                          # optional; absent = a monitor-made halt is lifted by hand only
      after_clean_passes: 3

Time convention: ``as_of`` is a trading date; a monitoring pass runs once per session, so "consecutive passes" are
consecutive sessions, and cooldowns count sessions (``sessions_between``), never calendar days.
"""

from __future__ import annotations

import difflib
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tradeops.errors import UsageError
from tradeops.monitor.metrics import METRIC_NAMES, Metric

Comparison = Literal[">", ">=", "<", "<="]
Severity = Literal["info", "warning", "critical"]
Action = Literal["notify", "retrain", "rollback", "halt", "resume", "none"]

COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
}
SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
# Of the actions that change what is served, only the strongest runs per model and pass: halt beats rollback beats
# retrain (retraining a model that is being rolled back or halted would act on a state about to change).
ACTION_PRIORITY = {"halt": 3, "rollback": 2, "retrain": 1}
EXECUTED = ("fired", "done", "failed")  # event statuses of a firing whose action ran (or started to)
AUTO_RESUME_RULE = "auto-resume"  # the rule name the resume policy records its events under (reserved)
ALREADY_EVALUATED = "already evaluated"

EventRow = Mapping[str, Any]  # one ``monitor_events`` row as ``predlog.events`` returns it


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Rule(_Strict):
    """One alert rule: ``metric comparison threshold`` for ``for_`` consecutive passes -> ``action``."""

    name: str = Field(pattern=r"^[a-z0-9-]+$", min_length=1, max_length=64, strict=True)
    metric: str = Field(strict=True)
    window: int = Field(20, ge=1, strict=True, description="sessions the metric is computed over (informational)")
    comparison: Comparison
    threshold: float = Field(strict=True, allow_inf_nan=False)
    severity: Severity
    action: Action
    cooldown: int = Field(ge=0, strict=True, description="sessions before the same rule + model may fire again")
    for_: int = Field(1, alias="for", ge=1, strict=True, description="consecutive passes the condition must hold")

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, v: str) -> str:
        if v not in METRIC_NAMES:
            near = difflib.get_close_matches(v, METRIC_NAMES, n=3, cutoff=0.6)
            hint = f"did you mean {', '.join(near)}?" if near else f"valid names: {', '.join(METRIC_NAMES)}"
            raise ValueError(f"unknown metric {v!r}; {hint}")
        return v

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, v: str) -> str:
        if v == AUTO_RESUME_RULE:
            raise ValueError(f"{v!r} is reserved for the resume policy's events")
        return v

    def holds(self, value: float | None) -> bool:
        """Whether ``value`` satisfies the rule's comparison; ``None`` (not computable) never does."""
        return compare(value, self.comparison, self.threshold)


class ResumePolicy(_Strict):
    """Lift a halt the monitor made after ``after_clean_passes`` passes in which no halt rule's condition held."""

    after_clean_passes: int = Field(ge=1, strict=True)


class RuleSet(_Strict):
    """The rules of one file, names unique; ``resume`` is the automatic resume policy (``None``: manual only)."""

    rules: tuple[Rule, ...] = ()
    resume: ResumePolicy | None = None

    @model_validator(mode="after")
    def _unique_names(self) -> RuleSet:
        seen: set[str] = set()
        for r in self.rules:
            if r.name in seen:
                raise ValueError(f"duplicate rule name {r.name!r}")
            seen.add(r.name)
        return self


def compare(value: float | None, comparison: str, threshold: float) -> bool:
    """``value <comparison> threshold``; ``None`` or a non-finite value is never true (nothing to compare)."""
    if value is None or not math.isfinite(value):
        return False
    return COMPARISONS[comparison](value, threshold)


# ------------------------------------------------------------------------------------------------------------ loading


def default_rules_path() -> Path:
    """The bundled default rules (``tradeops/monitor/rules.yaml``, shipped as package data)."""
    resource = files("tradeops.monitor") / "rules.yaml"
    with as_file(resource) as path:  # a real file for a normal or editable install
        return Path(path)


def _line(node: yaml.Node | None) -> int:
    return (node.start_mark.line + 1) if node is not None else 1


def _child(node: yaml.Node | None, key: str | int) -> tuple[yaml.Node | None, yaml.Node | None]:
    """(key node, value node) of ``key`` under ``node``; ``(None, None)`` when absent."""
    if isinstance(node, yaml.MappingNode) and isinstance(key, str):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                return k, v
    if isinstance(node, yaml.SequenceNode) and isinstance(key, int) and 0 <= key < len(node.value):
        return None, node.value[key]
    return None, None


def _locate(root: yaml.Node | None, loc: Sequence[str | int], *, key_line: bool = False) -> int:
    """The 1-based line of the YAML node at ``loc``; the deepest existing ancestor when part of it is missing."""
    node, line = root, _line(root)
    for part in loc:
        knode, vnode = _child(node, part)
        if vnode is None:
            break
        node = vnode
        line = _line(knode if key_line and part == loc[-1] and knode is not None else vnode)
    return line


def _field_path(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _describe(err: Mapping[str, Any]) -> str:
    """A short human message for one pydantic error, with the offending value."""
    kind, value = err["type"], err.get("input")
    got = f" (got {value!r})"
    ctx = err.get("ctx") or {}
    if kind in ("float_type", "float_parsing", "finite_number"):
        return "must be a finite number" + got if kind == "finite_number" else "must be a number" + got
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return "must be a whole number" + got
    if kind in ("string_type",):
        return "must be a string" + got
    if kind == "string_pattern_mismatch":
        return f"must match {ctx.get('pattern', '')} (lowercase letters, digits, '-')" + got
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '')}" + got
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        return str(err["msg"]).replace("Input should be", "must be") + got
    if kind in ("tuple_type", "list_type"):
        return "must be a list" + got
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "must be a mapping of fields" + got
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ")


def _allowed_fields(loc: Sequence[str | int]) -> str:
    model: type[BaseModel] = RuleSet
    if loc and loc[0] == "rules":
        model = Rule
    elif loc and loc[0] == "resume":
        model = ResumePolicy
    names = [f.alias or n for n, f in model.model_fields.items()]
    return ", ".join(names)


def load_rules(path: str | Path) -> RuleSet:
    """Read and validate a rules file. Every problem is a :class:`UsageError` naming the file, the line and the
    field, e.g. ``rules.yaml line 9: rules[1].threshold: must be a number (got 'high')``."""
    path = Path(path)
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{where}: [rules] cannot read the rules file ({exc.strerror or exc})") from exc
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        detail = str(exc.problem or exc.context)
        if exc.context and exc.context_mark is not None and exc.problem_mark is not None:
            detail += f" ({exc.context} that starts on line {exc.context_mark.line + 1})"
        if "chomping" in detail:  # a bare > or >= is read as the start of a folded block scalar
            detail += '; quote a comparison: comparison: ">="'
        raise UsageError(f"{where} line {line}: YAML syntax error: {detail}") from exc
    except yaml.YAMLError as exc:
        raise UsageError(f"{where} line 1: YAML syntax error: {exc}") from exc
    if not isinstance(data, dict):
        raise UsageError(f"{where} line {_line(root)}: the file must be a mapping with a 'rules' list")
    rules = data.get("rules")
    if isinstance(rules, list):  # before the model, so the message can point at the repeated name's line
        seen: dict[str, int] = {}
        for i, r in enumerate(rules):
            name = r.get("name") if isinstance(r, dict) else None
            if isinstance(name, str):
                if name in seen:
                    line = _locate(root, ("rules", i, "name"))
                    raise UsageError(
                        f"{where} line {line}: rules[{i}].name: duplicate rule name {name!r} "
                        f"(first used by rules[{seen[name]}])"
                    )
                seen[name] = i
    try:
        return RuleSet.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        lines = [_locate(root, tuple(e["loc"]), key_line=e["type"] == "extra_forbidden") for e in errors]
        first = min(range(len(errors)), key=lambda k: lines[k])  # the problem highest up in the file
        err, line = errors[first], lines[first]
        loc = tuple(err["loc"])
        message = _describe(err)
        if err["type"] == "extra_forbidden":
            message += f" (allowed: {_allowed_fields(loc)})"
        more = len(errors) - 1
        tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise UsageError(f"{where} line {line}: {_field_path(loc)}: {message}{tail}") from exc


# --------------------------------------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class Firing:
    """A rule whose condition holds for a model at ``as_of``; ``suppressed`` says why its action does not run
    (``None``: it runs)."""

    rule: Rule
    model: str
    metric: Metric
    as_of: date
    suppressed: str | None = None


def _as_date(v: Any) -> date:
    if isinstance(v, datetime):
        return v.date()
    if isinstance(v, date):
        return v
    return date.fromisoformat(str(v))


def _streak(prior: Sequence[date], as_of: date, need: int, sessions_between: Callable[[date, date], int]) -> int:
    """Consecutive passes (sessions) ending at ``as_of`` on which the condition held, counting ``as_of``; stops
    counting at ``need``. ``prior``: earlier dates with an event of the same rule and model."""
    streak, current = 1, as_of
    for d in sorted({p for p in prior if p < as_of}, reverse=True):
        if streak >= need or sessions_between(d, current) != 1:
            break
        streak, current = streak + 1, d
    return streak


def cooldown_end(last: date, cooldown: int, sessions_between: Callable[[date, date], int]) -> date:
    """The first session on which a rule that fired on ``last`` may fire again (``cooldown`` sessions later)."""
    day = last + timedelta(days=cooldown)  # a session count never exceeds the calendar days
    while sessions_between(last, day) < cooldown:
        day += timedelta(days=1)
    return day


def evaluate(
    rules: RuleSet,
    metrics: Sequence[Metric],
    history: Sequence[EventRow],
    *,
    as_of: date,
    sessions_between: Callable[[date, date], int],
) -> list[Firing]:
    """Every rule whose condition holds at ``as_of`` for a model, in rule order then metric order, each with the
    reason its action is held back, if any (pure: nothing is recorded here).

    In this order: an event already recorded for (rule, model, ``as_of``) -> ``"already evaluated"`` (a re-run pass
    never fires twice); the condition held on fewer than ``for`` consecutive sessions -> ``"pending: ..."``; the
    same rule and model ran its action within ``cooldown`` sessions before -> ``"cooldown until D"`` (D: the first
    session it may fire again); then per model only the strongest of halt > rollback > retrain runs (ties: higher
    severity, then the earlier rule) and a resume is held back when any halt runs; notify and none always run.
    ``history``: ``monitor_events`` rows (``rule``, ``model``, ``as_of``, ``status``). ``sessions_between(a, b)``:
    sessions after ``a`` up to and including ``b``.
    """
    by_key: dict[tuple[str, str], list[EventRow]] = {}
    for e in history:
        by_key.setdefault((str(e["rule"]), str(e["model"])), []).append(e)
    out: list[Firing] = []
    for rule in rules.rules:
        for m in metrics:
            if m.name != rule.metric or not rule.holds(m.value):
                continue
            past = by_key.get((rule.name, m.model), [])
            dates = [_as_date(e["as_of"]) for e in past]
            reason: str | None = None
            if as_of in dates:
                reason = ALREADY_EVALUATED
            elif rule.for_ > 1 and (n := _streak(dates, as_of, rule.for_, sessions_between)) < rule.for_:
                reason = f"pending: condition held {n} of {rule.for_} consecutive passes"
            else:
                ran = [d for d, e in zip(dates, past) if e["status"] in EXECUTED and d < as_of]
                if ran and rule.cooldown > 0:
                    last = max(ran)
                    if sessions_between(last, as_of) < rule.cooldown:
                        until = cooldown_end(last, rule.cooldown, sessions_between)
                        reason = (
                            f"cooldown until {until.isoformat()} (fired {last.isoformat()}, {rule.cooldown} sessions)"
                        )
            out.append(Firing(rule, m.model, m, as_of, reason))
    return _deduplicate(out)


def _deduplicate(firings: list[Firing]) -> list[Firing]:
    """Hold back all but the strongest halt/rollback/retrain per model, and any resume when a halt runs."""
    live = [(i, f) for i, f in enumerate(firings) if f.suppressed is None]
    winners: dict[str, tuple[int, Firing]] = {}
    for i, f in live:
        if f.rule.action not in ACTION_PRIORITY:
            continue
        best = winners.get(f.model)
        if best is None or _strength(f, i) > _strength(best[1], best[0]):
            winners[f.model] = (i, f)
    halts = [f for _, f in winners.values() if f.rule.action == "halt"]
    out = list(firings)
    for i, f in live:
        win = winners.get(f.model)
        if f.rule.action in ACTION_PRIORITY and win is not None and win[0] != i:
            w = win[1]
            out[i] = Firing(f.rule, f.model, f.metric, f.as_of, f"superseded by {w.rule.action} of rule {w.rule.name}")
        elif f.rule.action == "resume" and halts:
            w = halts[0]
            out[i] = Firing(f.rule, f.model, f.metric, f.as_of, f"superseded by halt of rule {w.rule.name}")
    return out


def _strength(f: Firing, index: int) -> tuple[int, int, int]:
    return (ACTION_PRIORITY[f.rule.action], SEVERITY_RANK[f.rule.severity], -index)
