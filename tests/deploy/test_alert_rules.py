"""The Prometheus alert rules in deploy/prometheus are valid (`promtool check rules`), fire when they should and stay
quiet when they should not (`promtool test rules`), and name only metrics the services really export."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


PROMTOOL = shutil.which("promtool")  # Debian's prometheus package; .ci/run installs it when it is missing


def _rules() -> list[dict]:
    from ruamel.yaml import YAML

    document = YAML(typ="safe").load((RULES / "alerts.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_every_rule_has_an_expression_a_severity_and_a_summary():
    rules = _rules()
    assert len(rules) >= 6
    for rule in rules:
        assert rule["alert"].startswith("Netvaerk") and rule["expr"].strip(), rule
        assert rule["labels"]["severity"] in {"page", "ticket"}, rule
        assert rule["annotations"]["summary"], rule


def test_the_rules_are_valid_and_fire_as_their_unit_tests_say():
    if PROMTOOL is None:  # a laptop without Debian's package: the structural test above still holds the file
        print("promtool not installed: `apt-get install prometheus` to check the rules with it")
        return
    result = subprocess.run([PROMTOOL, "check", "rules", str(RULES / "alerts.yml")], capture_output=True, text=True)
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr
    result = subprocess.run([PROMTOOL, "test", "rules", "alerts_test.yml"], cwd=RULES, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_metric_the_rules_name_is_exported_by_a_service():
    from netvaerk_shared import metrics
    from notifications import bootstrap  # noqa: F401 - registers the notifications gauges

    exported = set()
    for collector in metrics.REGISTRY._collector_to_names:  # noqa: SLF001 - the names a scrape would show
        exported |= set(metrics.REGISTRY._collector_to_names[collector])
    named = set()
    for rule in _rules():
        expr = re.sub(r"\{[^}]*\}", "", rule["expr"])  # label matchers
        expr = re.sub(r"\b(by|without)\s*\([^)]*\)", "", expr)  # grouping labels
        expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors
        named |= {
            name
            for name in re.findall(r"\b[a-z_][a-z0-9_]*\b", expr)
            if name not in {"max", "sum", "rate", "increase", "up"}
        }
    text = sorted(named)
    assert len(named) >= 5, text
    missing = named - exported
    assert not missing, f"alert rules name metrics nobody exports: {sorted(missing)}"
