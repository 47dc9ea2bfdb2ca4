"""The browser tests' ground: Debian's chromium under Playwright opens the preference link of
a real welcome email (received by aiosmtpd) at a phone's width, axe-core runs inside the page,
and the page's Content-Security-Policy refuses nothing the page itself asks for (a page that
needed 'unsafe-inline' or a third-party request would show it here first)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import SmtpSink, load_config, running_daemon
from tests.integration.admin_support import admin_config
from tests.integration.browser_support import (
    PHONE,
    accessibility_violations,
    phone,
    screenshot,
)
from tests.integration.daemon_support import welcome


async def test_chromium_opens_a_preference_link_from_a_real_email(
    tmp_path: Path, database_url: str, smtp_sink: SmtpSink
) -> None:
    settings = load_config(tmp_path, admin_config(tmp_path, database_url, smtp_sink.port))
    async with running_daemon(settings) as daemon:
        link = await welcome(daemon, smtp_sink)
        async with phone() as page:
            refused: list[str] = []
            page.on(
                "console",
                lambda message: (
                    refused.append(message.text)
                    if "Content Security Policy" in message.text
                    else None
                ),
            )
            response = await page.goto(link)
            assert response is not None
            assert response.status == 200
            assert await page.evaluate("window.innerWidth") == PHONE["width"]
            assert await page.locator("form").count() >= 1
            violations = await accessibility_violations(page)
            assert isinstance(violations, list)
            shot = await screenshot(page, "setup-preference-page")
            assert shot.stat().st_size > 1000
            assert refused == []
