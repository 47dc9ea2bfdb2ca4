"""The monitoring kit in contrib/ (issue 21): the Prometheus alert rules pass `promtool check
rules` and fire on the series of their unit tests (`promtool test rules`); they and the
Grafana dashboard name only metrics a running daemon serves; each alert has its runbook
entry in docs/operations.md, whose scrape config passes `promtool check config` with them."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from notifyd.settings.listeners import AdminListenerSettings
from tests.conftest import base_config, load_config, running_daemon
from tests.integration.metrics_support import exposed_names, promql_names, scrape
from tests.integration.send_support import OPERATIONS, snippet

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "contrib" / "prometheus" / "notifyd-alerts.yml"
RULE_TESTS = ROOT / "contrib" / "prometheus" / "notifyd-alerts.test.yml"
DASHBOARD = ROOT / "contrib" / "grafana" / "notifyd.json"
# Prometheus' own series about the scrape, there without notifyd writing them.
SCRAPE_SERIES = {"up"}


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _expressions(node: Any) -> Iterator[str]:
    """Every PromQL expression of the dashboard: panel targets and template queries."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "definition") and isinstance(value, str):
                yield value
            else:
                yield from _expressions(value)
    elif isinstance(node, list):
        for item in node:
            yield from _expressions(item)


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("no promtool: `make prometheus` installs Debian's prometheus (as root)")
    return subprocess.run(
        [promtool, *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_alert_rules_pass_promtool_check() -> None:
    checked = _promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in checked.stdout


def test_every_alert_fires_in_promtool_unit_tests() -> None:
    tested = _promtool("test", "rules", str(RULE_TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    # Each alert is expected to fire somewhere, not only to stay quiet.
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    fired = {
        case["alertname"]
        for test in tests
        for case in test["alert_rule_test"]
        if case.get("exp_alerts")
    }
    assert fired == {rule["alert"] for rule in _rules()}


def test_the_guides_scrape_config_passes_promtool_with_the_rules(tmp_path: Path) -> None:
    # docs/operations.md "Scraping": the job the rules name, each host's admin port, the
    # rules file where the config points (this repository's copy in its place).
    text = snippet("prometheus-scrape", OPERATIONS)
    (job,) = yaml.safe_load(text)["scrape_configs"]
    assert f'job="{job["job_name"]}"' in RULES.read_text()
    (targets,) = [static["targets"] for static in job["static_configs"]]
    assert {target.rsplit(":", 1)[1] for target in targets} == {str(AdminListenerSettings().port)}
    (rule_file,) = yaml.safe_load(text)["rule_files"]
    assert f"# contrib/prometheus/{RULES.name}" in text
    config = tmp_path / "prometheus.yml"
    config.write_text(text.replace(rule_file, str(RULES)))
    checked = _promtool("check", "config", str(config))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in checked.stdout


def test_every_alert_has_its_runbook_entry() -> None:
    headings = {
        line.removeprefix("### ").strip()
        for line in OPERATIONS.read_text().splitlines()
        if line.startswith("### ")
    }
    for rule in _rules():
        assert rule["alert"] in headings, f"docs/operations.md has no ### {rule['alert']}"
        anchor = rule["alert"].lower()
        assert rule["annotations"]["runbook"] == f"docs/operations.md#{anchor}"


async def test_dashboard_and_rules_name_only_served_metrics(
    tmp_path: Path, database_url: str
) -> None:
    settings = load_config(tmp_path, base_config(tmp_path, database_url, None))
    async with running_daemon(settings) as daemon:
        _, text = await scrape(daemon)
    served = exposed_names(text) | SCRAPE_SERIES
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = list(_expressions(dashboard)) + [rule["expr"] for rule in _rules()]
    assert len(expressions) > len(dashboard["panels"])
    for expression in expressions:
        names = promql_names(expression)
        assert names, f"no metric found in {expression!r}"
        assert names <= served, f"{expression!r} names {sorted(names - served)}, not served"
