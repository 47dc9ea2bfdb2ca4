"""Benchmarks are not part of the test run, but each must keep working: a tiny run of each."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"

pytestmark = pytest.mark.slow


def test_e2e_latency_benchmark_runs_and_prints_its_table() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH / "e2e_latency.py"), "--events", "3", "--runs", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "notifyd 202->250" in result.stdout
    assert "raw aiosmtplib send" in result.stdout
    assert "ratio notifyd/baseline" in result.stdout


def test_delivery_benchmark_runs_and_prints_its_table() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH / "delivery.py"), "--notices", "100", "--runs", "1"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "plain" in result.stdout
    assert "with 200 KB audio on 1/10" in result.stdout
    assert "aiosmtplib" in result.stdout
