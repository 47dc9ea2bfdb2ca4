"""schemathesis against /openapi.json on a running daemon: no 5xx, answers as documented.

Bounded in examples and time, so it stays a few seconds of the suite.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.core.result import Ok

from tests.conftest import spawn_daemon, write_config
from tests.integration.admin_support import OPS_TOKEN, admin_config

pytestmark = pytest.mark.slow


def fuzz(base_url: str) -> tuple[list[str], dict[str, int], list[str]]:
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    problems: list[str] = []
    calls: dict[str, int] = {}
    documented: list[str] = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operation = result.ok()
        documented.append(operation.label)

        @settings(
            max_examples=15,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def check(case: schemathesis.Case[schemathesis.APIOperation[Any, Any, Any, Any]]) -> None:
            # Called right away in this iteration, so `operation` is this one.
            calls[operation.label] = calls.get(operation.label, 0) + 1  # noqa: B023
            case.call_and_validate(
                base_url=base_url,
                headers={"Authorization": f"Bearer {OPS_TOKEN}"},
                timeout=10,
                # The schema cannot say everything the validators check (a real address, an
                # IANA zone, a signature): schema-valid requests may rightly get a 4xx.
                excluded_checks=[schemathesis.checks.positive_data_acceptance],
            )

        try:
            check()
        except (Exception, BaseExceptionGroup) as error:  # collect every failure, report all
            problems.append(f"{operation.label}: {str(error)[:1500]}")
    return problems, calls, documented


async def test_the_api_answers_as_its_openapi_document_says(
    tmp_path: Path, database_url: str
) -> None:
    path = write_config(tmp_path / "notifyd.toml", admin_config(tmp_path, database_url, None))
    daemon = await spawn_daemon(path)
    try:
        problems, calls, documented = await asyncio.wait_for(
            asyncio.to_thread(fuzz, daemon.base_url), 150
        )
    finally:
        daemon.process.send_signal(signal.SIGTERM)
        await daemon.wait_exit()
    assert problems == []
    # Every documented operation was exercised (the privacy routes of issue 18 among them:
    # a route added later is fuzzed the day it is documented)...
    assert sorted(calls) == sorted(documented)
    assert {
        "POST /v1/links/{token}/renew",
        "GET /v1/admin/subscribers/{account_id}/export",
        "DELETE /v1/admin/subscribers/{account_id}",
        "PUT /v1/admin/subscribers/{account_id}/restriction",
        "DELETE /v1/admin/subscribers/{account_id}/restriction",
        "POST /v1/admin/subscribers/{account_id}/links/revoke",
        "PATCH /v1/admin/subscribers/{account_id}",
        "GET /v1/admin/audit",
        "GET /export.schema.json",
    } <= set(calls)
    assert sum(calls.values()) >= 10 * len(documented)  # ...with a fair number of requests
