"""Fixtures shared by the integration tests beyond tests/conftest.py's."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.integration.catalogue_support import RawSink, raw_smtp_server


@pytest.fixture
async def sink() -> AsyncIterator[RawSink]:
    """An SMTP server on loopback keeping every message's raw bytes (catalogue_support)."""
    async with raw_smtp_server() as server:
        yield server
