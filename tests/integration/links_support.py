"""Links as a daemon configured with two link keys makes them, at any moment the test
chooses (the clock of a link is the time it carries), and the page flows around them."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from notifyd.links import Links
from notifyd.settings import Settings
from tests.conftest import Running, SmtpSink, load_config
from tests.integration.admin_support import admin_config
from tests.integration.daemon_support import form_token

# The rotation under test: the first key seals, the second (last year's) still opens.
NEW_KEY = "new-link-key-QzY1NmE4ZTQtMjAyNi0xMS0yMg"
OLD_KEY = "old-link-key-MTk5OS0xMi0zMSAyMzo1OTo1OQ"


def link_settings(tmp_path: Path, database_url: str, sink: SmtpSink, **links: Any) -> Settings:
    config = admin_config(tmp_path, database_url, sink.port)
    config["daemon"]["link_secret"] = [NEW_KEY, OLD_KEY]
    config["links"] = links
    return load_config(tmp_path, config)


def days_ago(days: float) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)


def preference_link(daemon: Running, account: str, issued: datetime, key: str = NEW_KEY) -> str:
    return Links(key, daemon.base_url).preferences_url(account, issued=issued)


def unsubscribe_link(daemon: Running, account: str, issued: datetime) -> str:
    return Links(NEW_KEY, daemon.base_url).unsubscribe_url(
        account, f"{account}@client.example", issued=issued
    )


async def get(daemon: Running, link: str) -> tuple[int, str]:
    async with daemon.session.get(link) as page:
        return page.status, await page.text()


async def ask_fresh_link(
    daemon: Running, page: str, headers: dict[str, str] | None = None
) -> tuple[int, str]:
    """Press the button of the page an expired or revoked link showed (through a proxy's
    `headers`, if given)."""
    found = re.search(r'<form method="post" action="([^"]+)">', page)
    assert found, page
    action = found.group(1).replace("&amp;", "&")
    form = {"form_token": form_token(page)}
    async with daemon.session.post(
        daemon.base_url + action, data=form, headers=headers
    ) as response:
        return response.status, await response.text()
