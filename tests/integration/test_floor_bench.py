"""bench/webhook_cost.py --floor keeps working: notifyd's app with no database behind it
(bench/floor_server.py) answers the ingest mix with 202s, and its CPU per webhook is
printed beside the bare parse-only server's. Not a measure: figures are only numbers."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


@pytest.mark.timeout(180)
def test_the_floor_server_answers_the_mix_and_its_cost_is_printed_beside_a() -> None:
    script = ROOT / "bench" / "webhook_cost.py"
    result = subprocess.run(
        [sys.executable, str(script), "--floor", "--requests", "40", "--rounds", "1", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=170,
        check=False,
    )
    # The load generator refuses any answer but 200 and 202: a refused webhook fails here.
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(rf"^{re.escape(str(ROOT))}: \d+ us \(median \d+\)$", result.stdout, re.M)
    assert re.search(r"^\(a\) parse only: \d+ us \(median \d+\)$", result.stdout, re.M)
