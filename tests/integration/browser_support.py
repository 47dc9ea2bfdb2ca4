"""A real browser for the subscriber's side: Debian's chromium (/usr/bin/chromium, never a
browser that Playwright downloads) driven by Playwright, at a phone's width, with axe-core
from the npm registry run inside the page.

`make test` installs both where it can (the `browser` target: apt-get as root, `npm ci
--prefix tests/browser`); where either is missing the browser tests skip and say which and
how to get it. Screenshots go to test-artifacts/screenshots/ (CI keeps them; the current
ones of the pages are copied to docs/ by hand, where docs/subscribers.md shows them).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, ViewportSize, async_playwright

ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "tests" / "browser" / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
# A small phone held upright (Galaxy S-class, the narrowest width still common).
PHONE: ViewportSize = {"width": 360, "height": 740}
# Chromium as the machine's closed network needs it: without the background-networking
# flags it tries Google's hosts at every start and is refused many times over.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# axe's impacts that fail a test; "moderate" and "minor" are reported in the message only.
FAILING_IMPACTS = ("serious", "critical")


def chromium_path() -> str:
    """Debian's chromium, or skip the test saying how to get it."""
    found = os.environ.get("NOTIFYD_CHROMIUM") or shutil.which("chromium")
    if not found:
        pytest.skip(
            "no chromium: install Debian's package (apt-get install chromium; make test does "
            "it when run as root) or set NOTIFYD_CHROMIUM to a Chromium executable"
        )
    return found


@asynccontextmanager
async def browser() -> AsyncIterator[Browser]:
    """One headless chromium for the test, closed after it whatever happens."""
    executable = chromium_path()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=executable, headless=True, args=FLAGS, timeout=30_000
        )
        try:
            yield launched
        finally:
            await launched.close()


@asynccontextmanager
async def phone(**context: Any) -> AsyncIterator[Page]:
    """A page 360 px wide at a phone's pixel ratio, with a touch screen; `context` adds
    Playwright's context options (locale, timezone_id, java_script_enabled...)."""
    async with browser() as launched:
        opened = await launched.new_context(
            viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True, **context
        )
        page = await opened.new_page()
        page.set_default_timeout(15_000)
        try:
            yield page
        finally:
            await opened.close()


def viewport_width(page: Page) -> int:
    """The width the page was opened at. Not window.innerWidth: a mobile browser widens its
    layout viewport to content that does not fit (and zooms out), so innerWidth grows with
    the overflow it should reveal (an offer measured 381 against 381)."""
    return (page.viewport_size or PHONE)["width"]


async def horizontal_overflow(page: Page) -> int:
    """How many CSS pixels the page is wider than its viewport (0: nothing to scroll
    sideways)."""
    width: int = await page.evaluate(
        "(viewport) => Math.max(document.documentElement.scrollWidth, document.body ? "
        "document.body.scrollWidth : 0) - viewport",
        viewport_width(page),
    )
    return max(width, 0)


async def widest_elements(page: Page, limit: int = 3) -> list[str]:
    """The elements that reach furthest right, for a failure message."""
    found: list[str] = await page.evaluate(
        """([limit, viewport]) => [...document.querySelectorAll('body *')]
            .map(e => [e.getBoundingClientRect().right, e])
            .filter(([right]) => right > viewport)
            .sort((a, b) => b[0] - a[0]).slice(0, limit)
            .map(([right, e]) => `${e.tagName.toLowerCase()}${e.className ? '.' + e.className : ''}`
                 + ` right=${Math.round(right)} "${(e.textContent || '').trim().slice(0, 40)}"`)""",
        [limit, viewport_width(page)],
    )
    return found


async def assert_fits(page: Page, what: str) -> None:
    overflow = await horizontal_overflow(page)
    if overflow:
        widest = "; ".join(await widest_elements(page))
        raise AssertionError(f"{what} is {overflow} px wider than {viewport_width(page)}: {widest}")


def axe_path() -> Path:
    if not AXE.is_file():
        pytest.skip(
            "no axe-core: run `npm ci --prefix tests/browser` (make test does it where npm is)"
        )
    return AXE


async def accessibility_violations(page: Page) -> list[dict[str, Any]]:
    """axe-core's WCAG 2.1 A and AA rules run in the page as it is now; every violation.
    axe is evaluated through the DevTools protocol, which the page's Content-Security-Policy
    does not govern: a script tag would be refused (rightly) by default-src 'none'."""
    await page.evaluate(axe_path().read_text(encoding="utf-8") + "\n;true")
    result: dict[str, Any] = await page.evaluate(
        "axe.run(document, {runOnly: {type: 'tag', values: "
        "['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}})"
    )
    violations: list[dict[str, Any]] = result["violations"]
    return violations


async def assert_accessible(page: Page, what: str) -> None:
    """No serious or critical violation; the others are named in the message if it fails."""
    violations = await accessibility_violations(page)
    failing = [v for v in violations if v.get("impact") in FAILING_IMPACTS]
    if failing:
        lines = [
            f"{v['impact']}: {v['id']} ({v['help']}) at "
            + ", ".join(str(node["target"]) for node in v["nodes"][:3])
            for v in violations
        ]
        raise AssertionError(f"{what}: axe found\n" + "\n".join(lines))


async def screenshot(page: Page, name: str) -> Path:
    """The whole page as a PNG test artifact."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path
