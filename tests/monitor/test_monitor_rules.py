"""Rules files (validation with file, line and field) and pure rule evaluation: comparisons, missing values,
``for``, cooldown in sessions, same-day re-runs and de-duplication of conflicting actions."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest

from tradeops.errors import UsageError
from tradeops.monitor.metrics import METRIC_NAMES, Metric, missing
from tradeops.monitor.rules import (
    Firing,
    Rule,
    RuleSet,
    compare,
    cooldown_end,
    default_rules_path,
    evaluate,
    load_rules,
)

GOOD = """\
rules:
  - name: feature-drift
    metric: data.psi_drifted_share
    window: 20
    comparison: ">"
    threshold: 0.3
    severity: warning
    action: retrain
    cooldown: 10
  - name: max-drawdown
    metric: trading.champion.drawdown
    window: 60
    comparison: ">="
    threshold: 0.2
    severity: critical
    action: halt
    cooldown: 5
    for: 2
resume:
  after_clean_passes: 3
"""


def weekdays_between(a: date, b: date) -> int:
    """Sessions after ``a`` up to and including ``b`` on a weekdays-only calendar (0 when ``b <= a``)."""
    return 0 if b <= a else int(np.busday_count(a + timedelta(days=1), b + timedelta(days=1)))


def rule(**kw) -> Rule:
    base = {
        "name": "r",
        "metric": "data.psi_max",
        "comparison": ">",
        "threshold": 0.5,
        "severity": "warning",
        "action": "notify",
        "cooldown": 0,
    }
    return Rule.model_validate(base | kw)


def event(r: Rule, model: str, day: date, status: str = "done") -> dict:
    return {"rule": r.name, "model": model, "as_of": day, "status": status, "action": r.action}


def run(rules, metrics, history=(), as_of=date(2024, 3, 4)) -> list[Firing]:
    return evaluate(RuleSet(rules=tuple(rules)), metrics, list(history), as_of=as_of, sessions_between=weekdays_between)


# -------------------------------------------------------------------------------------------------------- loading


def test_a_good_file_loads_with_its_fields(write_rules):
    rs = load_rules(write_rules(GOOD))
    assert [r.name for r in rs.rules] == ["feature-drift", "max-drawdown"]
    drift, dd = rs.rules
    assert (drift.threshold, drift.comparison, drift.cooldown, drift.for_, drift.window) == (0.3, ">", 10, 1, 20)
    assert (dd.action, dd.severity, dd.for_) == ("halt", "critical", 2)
    assert rs.resume is not None and rs.resume.after_clean_passes == 3


def test_the_bundled_rules_ship_in_the_package_and_load():
    path = default_rules_path()
    assert path.name == "rules.yaml" and path.is_file()
    assert path.parent == Path(__import__("tradeops.monitor").monitor.__file__).parent
    rs = load_rules(path)
    by_name = {r.name: r for r in rs.rules}
    assert by_name["max-drawdown"].action == "halt" and by_name["max-drawdown"].severity == "critical"
    assert by_name["feature-drift"].action == "retrain"
    assert by_name["live-decay"].action == "rollback" and by_name["live-decay"].threshold == 0.2
    assert all(r.metric in METRIC_NAMES and 5 <= r.cooldown <= 60 for r in rs.rules)
    # a retrain at most once a quarter: drift of price-level indicators is permanent (two simulated years of IBM)
    assert by_name["feature-drift"].cooldown == 60
    assert rs.resume is None  # a monitor halt is lifted by an operator unless a policy is configured


def error_of(write_rules, text: str) -> str:
    path = write_rules(text)
    with pytest.raises(UsageError) as exc:
        load_rules(path)
    msg = str(exc.value)
    assert msg.startswith(f"{path} line "), msg
    return msg[len(str(path)) + 1 :]


def test_a_wrong_type_names_the_line_and_the_field(write_rules):
    text = GOOD.replace("threshold: 0.2", "threshold: high")
    assert error_of(write_rules, text) == "line 14: rules[1].threshold: must be a number (got 'high')"


def test_a_quoted_number_is_not_a_number(write_rules):
    text = GOOD.replace("threshold: 0.3", 'threshold: "0.3"')
    assert error_of(write_rules, text) == "line 6: rules[0].threshold: must be a number (got '0.3')"


def test_an_unknown_field_names_its_line_and_the_allowed_fields(write_rules):
    text = GOOD.replace("    cooldown: 10\n", "    cooldown: 10\n    colldown: 3\n")
    msg = error_of(write_rules, text)
    assert msg.startswith("line 10: rules[0].colldown: unknown field (allowed: name, metric, window,"), msg
    assert "for)" in msg


def test_an_unknown_metric_names_the_nearest_valid_names(write_rules):
    text = GOOD.replace("metric: data.psi_drifted_share", "metric: data.psi_drifted_shares")
    msg = error_of(write_rules, text)
    assert msg.startswith("line 3: rules[0].metric: unknown metric 'data.psi_drifted_shares'; did you mean "), msg
    assert "data.psi_drifted_share" in msg


def test_a_bad_comparison_lists_the_valid_ones(write_rules):
    text = GOOD.replace('comparison: ">="', 'comparison: "=>"')
    assert (
        error_of(write_rules, text) == "line 13: rules[1].comparison: must be one of '>', '>=', '<' or '<=' (got '=>')"
    )


def test_a_duplicate_rule_name_points_at_the_second_one(write_rules):
    text = GOOD.replace("name: max-drawdown", "name: feature-drift")
    assert error_of(write_rules, text) == (
        "line 10: rules[1].name: duplicate rule name 'feature-drift' (first used by rules[0])"
    )
    with pytest.raises(ValueError, match="duplicate rule name"):
        RuleSet(rules=(rule(name="a"), rule(name="a")))


def test_a_yaml_syntax_error_names_its_line(write_rules):
    text = GOOD.replace("    severity: critical\n", "    severity: [critical\n")
    assert error_of(write_rules, text) == (
        "line 16: YAML syntax error: expected ',' or ']', but got ':' "
        "(while parsing a flow sequence that starts on line 15)"
    )
    unquoted = GOOD.replace('comparison: ">="', "comparison: >=")
    assert error_of(write_rules, unquoted).startswith("line 13: YAML syntax error: expected chomping")
    assert error_of(write_rules, unquoted).endswith('quote a comparison: comparison: ">="')
    broken = "rules:\n  - name: a\n    metric: data.psi_max\n  bad indent: [\n"
    msg = error_of(write_rules, broken)
    assert msg.startswith("line 4: YAML syntax error"), msg


def test_a_missing_field_names_the_rule_line(write_rules):
    text = GOOD.replace("    severity: warning\n", "")
    assert error_of(write_rules, text) == "line 2: rules[0].severity: is required"


def test_bad_names_counts_and_enums_are_refused_with_their_lines(write_rules):
    assert error_of(write_rules, GOOD.replace("name: max-drawdown", "name: Max_DD")).startswith(
        "line 10: rules[1].name: must match ^[a-z0-9-]+$"
    )
    assert error_of(write_rules, GOOD.replace("cooldown: 5", "cooldown: -1")) == (
        "line 17: rules[1].cooldown: must be greater than or equal to 0 (got -1)"
    )
    assert error_of(write_rules, GOOD.replace("for: 2", "for: 0")) == (
        "line 18: rules[1].for: must be greater than or equal to 1 (got 0)"
    )
    assert error_of(write_rules, GOOD.replace("action: halt", "action: panic")).startswith(
        "line 16: rules[1].action: must be one of 'notify', 'retrain', 'rollback', 'halt', 'resume' or 'none'"
    )
    assert error_of(write_rules, GOOD.replace("after_clean_passes: 3", "after_clean_passes: 3.5")) == (
        "line 20: resume.after_clean_passes: must be a whole number (got 3.5)"
    )
    assert error_of(write_rules, "- a\n- b\n") == "line 1: the file must be a mapping with a 'rules' list"


def test_a_missing_file_is_a_usage_error_naming_it(tmp_path):
    with pytest.raises(UsageError, match="nope.yaml"):
        load_rules(tmp_path / "nope.yaml")


# ----------------------------------------------------------------------------------------------------- evaluation


@pytest.mark.parametrize(
    ("comparison", "value", "fires"),
    [
        (">", 0.51, True),
        (">", 0.5, False),
        (">=", 0.5, True),
        (">=", 0.49, False),
        ("<", 0.49, True),
        ("<", 0.5, False),
        ("<=", 0.5, True),
        ("<=", 0.51, False),
    ],
)
def test_comparisons_are_exact_at_the_threshold(comparison, value, fires):
    assert compare(value, comparison, 0.5) is fires
    firings = run([rule(comparison=comparison)], [Metric("m", "data.psi_max", value)])
    assert [f.suppressed for f in firings] == ([None] if fires else [])


def test_a_missing_value_never_fires_whatever_the_comparison():
    none = missing("m", "data.psi_max", "too few served rows")
    for cmp in (">", ">=", "<", "<="):
        assert run([rule(comparison=cmp, threshold=0.0)], [none]) == []
    assert compare(None, "<", 1.0) is False


def test_a_rule_fires_per_model_and_only_on_its_metric():
    r = rule(threshold=0.2)
    metrics = [
        Metric("a", "data.psi_max", 0.3),
        Metric("b", "data.psi_max", 0.1),
        Metric("c", "data.psi_max", 0.9),
        Metric("a", "data.domain_auc", 0.99),
    ]
    firings = run([r], metrics)
    assert [(f.model, f.metric.value, f.suppressed) for f in firings] == [("a", 0.3, None), ("c", 0.9, None)]


def test_cooldown_suppresses_a_repeat_within_n_sessions_and_allows_it_after():
    r = rule(cooldown=3)
    fired_on = date(2024, 3, 1)  # a Friday
    hist = [event(r, "m", fired_on)]
    m = [Metric("m", "data.psi_max", 0.9)]
    # Mon 3/4 (1 session), Tue (2): held back until Wed 3/6 (3 sessions later); the weekend does not count.
    for day in (date(2024, 3, 4), date(2024, 3, 5)):
        (f,) = run([r], m, hist, as_of=day)
        assert f.suppressed == "cooldown until 2024-03-06 (fired 2024-03-01, 3 sessions)"
    (f,) = run([r], m, hist, as_of=date(2024, 3, 6))
    assert f.suppressed is None
    assert cooldown_end(fired_on, 3, weekdays_between) == date(2024, 3, 6)


def test_cooldown_counts_only_executed_firings_and_only_the_same_model():
    r = rule(cooldown=5)
    m = [Metric("m", "data.psi_max", 0.9)]
    day = date(2024, 3, 5)
    assert run([r], m, [event(r, "m", date(2024, 3, 4), "suppressed")], as_of=day)[0].suppressed is None
    assert run([r], m, [event(r, "other", date(2024, 3, 4))], as_of=day)[0].suppressed is None
    assert run([r], m, [event(r, "m", date(2024, 3, 4), "failed")], as_of=day)[0].suppressed.startswith("cooldown")
    assert run([rule(cooldown=0)], m, [event(r, "m", date(2024, 3, 4))], as_of=day)[0].suppressed is None


def test_the_same_date_evaluated_twice_does_not_fire_twice():
    r = rule(cooldown=0)
    day = date(2024, 3, 4)
    (f,) = run([r], [Metric("m", "data.psi_max", 0.9)], [event(r, "m", day)], as_of=day)
    assert f.suppressed == "already evaluated"
    (f,) = run([r], [Metric("m", "data.psi_max", 0.9)], [event(r, "m", day, "suppressed")], as_of=day)
    assert f.suppressed == "already evaluated"


def test_for_needs_consecutive_sessions_of_the_condition():
    r = rule(**{"for": 3})
    m = [Metric("m", "data.psi_max", 0.9)]
    fri, mon, tue = date(2024, 3, 1), date(2024, 3, 4), date(2024, 3, 5)
    assert run([r], m, [], as_of=tue)[0].suppressed == "pending: condition held 1 of 3 consecutive passes"
    pending = [event(r, "m", mon, "suppressed")]
    assert run([r], m, pending, as_of=tue)[0].suppressed == "pending: condition held 2 of 3 consecutive passes"
    assert run([r], m, [event(r, "m", fri, "suppressed"), *pending], as_of=tue)[0].suppressed is None
    # A session without the condition (Thu 2/29, then no event on Fri 3/1) breaks the streak.
    gap = [event(r, "m", date(2024, 2, 29), "suppressed"), *pending]
    assert run([r], m, gap, as_of=tue)[0].suppressed == "pending: condition held 2 of 3 consecutive passes"


def test_only_the_strongest_action_runs_per_model_and_notify_always_runs():
    rules_ = [
        rule(name="drift", metric="data.psi_drifted_share", action="retrain", severity="warning"),
        rule(name="decay", metric="quality.champion.macro_f1", comparison="<", threshold=0.2, action="rollback"),
        rule(name="dd", metric="trading.champion.drawdown", threshold=0.2, action="halt", severity="critical"),
        rule(name="tell", metric="data.domain_auc", threshold=0.75, action="notify"),
        rule(name="back", metric="data.psi_max", threshold=0.1, action="resume"),
    ]
    metrics = [
        Metric("a", "data.psi_drifted_share", 0.9),
        Metric("a", "quality.champion.macro_f1", 0.1),
        Metric("a", "trading.champion.drawdown", 0.3),
        Metric("a", "data.domain_auc", 0.9),
        Metric("a", "data.psi_max", 0.2),
        Metric("b", "data.psi_drifted_share", 0.9),
        Metric("b", "quality.champion.macro_f1", 0.1),
    ]
    got = {(f.rule.name, f.model): f.suppressed for f in run(rules_, metrics)}
    assert got == {
        ("drift", "a"): "superseded by halt of rule dd",
        ("decay", "a"): "superseded by halt of rule dd",
        ("dd", "a"): None,
        ("tell", "a"): None,
        ("back", "a"): "superseded by halt of rule dd",
        ("drift", "b"): "superseded by rollback of rule decay",
        ("decay", "b"): None,
    }


def test_a_cooled_down_winner_does_not_hold_back_the_next_action():
    halt = rule(name="dd", metric="trading.champion.drawdown", threshold=0.2, action="halt", cooldown=5)
    retrain = rule(name="drift", metric="data.psi_drifted_share", action="retrain")
    metrics = [Metric("a", "trading.champion.drawdown", 0.3), Metric("a", "data.psi_drifted_share", 0.9)]
    firings = run([halt, retrain], metrics, [event(halt, "a", date(2024, 3, 1))], as_of=date(2024, 3, 4))
    assert [f.suppressed is None for f in firings] == [False, True]


def test_the_same_action_twice_keeps_the_more_severe_rule():
    r1 = rule(name="soft", action="retrain", severity="warning")
    r2 = rule(name="hard", metric="data.domain_auc", action="retrain", severity="critical")
    firings = run([r1, r2], [Metric("a", "data.psi_max", 0.9), Metric("a", "data.domain_auc", 0.9)])
    assert [(f.rule.name, f.suppressed) for f in firings] == [
        ("soft", "superseded by retrain of rule hard"),
        ("hard", None),
    ]
