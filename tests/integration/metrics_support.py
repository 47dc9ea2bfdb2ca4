"""Reading /metrics as Prometheus does, and the metric names a PromQL expression uses: for
test_metrics.py (what is served) and test_monitoring_contrib.py (the alert rules and the
Grafana dashboard in contrib/ name only what is served).

Neighbours: conftest.py's `running_daemon`; notifyd/metrics.py, notifyd/http/health.py."""

from __future__ import annotations

import math
import re

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Running

# The sample names a family of each type writes (a counter's family is named without
# _total). A labelled family with no child yet writes only its HELP and TYPE lines, so its
# names come from the type, not from samples.
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "gauge": ("",),
    "info": ("_info",),
}

# PromQL words that look like metric names but are not: functions, aggregations, keywords.
_PROMQL_WORDS = {
    "rate", "irate", "increase", "delta", "deriv", "sum", "avg", "min", "max", "count",
    "histogram_quantile", "by", "without", "on", "ignoring", "group_left", "group_right",
    "and", "or", "unless", "bool", "offset", "clamp_min", "clamp_max", "max_over_time",
    "min_over_time", "avg_over_time", "absent", "time", "topk", "le", "vector", "scalar",
    "changes", "resets", "label_replace", "sgn", "abs",
}  # fmt: skip


async def scrape(daemon: Running) -> tuple[str, str]:
    """/metrics' Content-Type and text."""
    async with daemon.session.get(f"{daemon.admin_url}/metrics") as response:
        assert response.status == 200
        return response.headers["Content-Type"], await response.text()


def samples(text: str) -> dict[str, float]:
    """Every sample, keyed `name{label="value",...}` with labels sorted, as written."""
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            found[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return found


def value(text: str, key: str) -> float:
    found = samples(text)
    assert key in found, f"{key} not in /metrics: {sorted(found)}"
    return found[key]


def is_nan(number: float) -> bool:
    return math.isnan(number)


def exposed_names(text: str) -> set[str]:
    """Every series name the text can show, including labelled families not yet used."""
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.update(family.name + suffix for suffix in _SUFFIXES[family.type])
        names.update(sample.name for sample in family.samples)
    return names


def promql_names(expression: str) -> set[str]:
    """The metric names an expression (PromQL, or a Grafana label_values query) selects:
    identifiers not followed by `(`, outside braces (label matchers), strings, range
    brackets and `by (...)` lists."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expression)
    # Grafana's label_values(metric, label): its second argument is a label.
    text = re.sub(r"label_values\(([^,()]+),\s*\w+\)", r"(\1)", text)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for found in re.finditer(r"(?<![\w.])([a-zA-Z_:][\w:]*)\s*(\()?", text):
        word, call = found.group(1), found.group(2)
        if call is None and word not in _PROMQL_WORDS and not word[0].isdigit():
            names.add(word)
    return names
