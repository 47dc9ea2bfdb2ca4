"""Log context: a line about a notice never carries the request_id of some webhook.

Tasks copy the context of the code that creates them; the commit lane and the sends are
created while a webhook is answered, and must not keep its request_id."""

from __future__ import annotations

from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import structlog

from notifyd.catalogue.samples import sample_event
from tests.conftest import (
    BILLING_SECRET,
    SmtpSink,
    base_config,
    eventually,
    load_config,
    running_daemon,
)


async def test_delivery_lines_carry_their_notice_and_event_never_a_request_id(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink
) -> None:
    settings = load_config(tmp_path, base_config(tmp_path, database_url, smtp_sink.port))
    merge = structlog.contextvars.merge_contextvars
    with structlog.testing.capture_logs(processors=[merge]) as logs:
        async with running_daemon(settings) as daemon:
            for number in range(3):
                event = sample_event("account.created", f"acc-{number}")
                status, _ = await daemon.post(
                    "billing", event, BILLING_SECRET, headers={"X-Request-Id": f"req-{number}"}
                )
                assert status == 202
            await smtp_sink.wait_for(3)

            async def delivered() -> list[MutableMapping[str, Any]]:
                lines = [line for line in logs if line["event"] == "delivery"]
                return lines if len(lines) == 3 else []

            deliveries = await eventually(delivered, "a delivery line for each notice")
    stored = [line for line in logs if line["event"] == "event stored"]
    # The webhook's own lines keep their request_id: that is what it is for.
    assert [line["request_id"] for line in stored] == ["req-0", "req-1", "req-2"]
    event_ids = {line["event_id"] for line in stored}
    for line in deliveries:
        assert "request_id" not in line, line
        assert line["notice_id"]
        assert line["event_id"] in event_ids
