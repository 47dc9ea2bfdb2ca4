"""Benchmarks are not part of the test run, but each must keep working: `bench/run.py
--smoke` runs every one of them with tiny sizes and prints the table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"

pytestmark = pytest.mark.slow

EXPECTED_ROWS = (
    "| ingest, 32 clients | req/s |",
    "| ingest, 128 clients, p99 | ms |",
    "(a) aiohttp, parse only",
    "(b) aiohttp + INSERT/commit",
    "| ingest, 32 clients, server CPU per request | us |",
    "| ingest, 32 clients, PostgreSQL CPU per request | us |",
    "| intake alone, PostgreSQL CPU per webhook | us |",
    "| intake alone, store_and_lock, time per webhook | us |",
    "| delivery of 40 queued notices, plain | msg/s |",
    "| delivery of 40 queued notices, plain, CPU per message | us |",
    "| delivery of 20 queued notices, 200 KB audio on 1/10 | msg/s |",
    "webhooks/s, p99 | ms |",
    "32 clients, webhook p99 | ms |",
    "32 clients, webhook p99 in the loop's CPU | ms |",
    "32 clients, email end to end p99 | ms |",
    "| backlog of 400: peak RSS | MiB |",
    "| backlog of 400: time to drain | s |",
    "| fan-out to 300 | subscribers/s |",
    "| webhook p99 during the fan-out (50/s) | ms |",
)


# Its own bound, the subprocess's: every benchmark starts daemons of its own, which takes
# longer than the suite's 120 s per test on a loaded 2-core machine.
@pytest.mark.timeout(300)
def test_every_benchmark_runs_and_prints_its_row_with_a_baseline() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--smoke"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    table = result.stdout[result.stdout.index("| benchmark |") :]
    for row in EXPECTED_ROWS:
        assert row in table, f"{row!r} missing from:\n{table}"
    # End to end at two rates (half the ingest maximum, and one delivery keeps up with).
    assert table.count("| end to end at ") == 4
    # Every figure is a number: nothing failed silently into a dash.
    for line in table.splitlines()[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert cells[2][0].isdigit(), line
