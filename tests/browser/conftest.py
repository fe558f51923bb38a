"""Playwright fixtures: Debian's Chromium, one browser per session and one context per test.

A context of the shared browser is an off-the-record profile, where Chromium blocks third-party
cookies by default. Tests that need another cookie policy get a browser profile of their own
(`launch_persistent_context`, whose preferences can be written before it starts): that costs a
browser start (~0.5 s), so only those tests pay it. Every cookie policy is verified in the test
(`pages.third_party_cookies_kept`), never assumed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, BrowserContext, Playwright, sync_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 10_000

# Chromium's cookie controls (Settings → Privacy → Third-party cookies).
ALLOW_THIRD_PARTY = {"profile": {"cookie_controls_mode": 0, "block_third_party_cookies": False}}
BLOCK_THIRD_PARTY = {"profile": {"cookie_controls_mode": 1, "block_third_party_cookies": True}}


def refuse_tool_cookies(tool_host: str, embedder_host: str | None) -> dict[str, Any]:
    """Preferences that refuse every cookie of `tool_host`, partitioned ones included, where
    it is embedded in `embedder_host` (or everywhere, with None): what Safari does in an
    iframe, or a browser set to block all cookies of the site."""
    secondary = f"http://{embedder_host}:*" if embedder_host else "*"
    exceptions = {f"http://{tool_host}:*,{secondary}": {"setting": 2}}  # 2: block
    return {
        "profile": {
            **BLOCK_THIRD_PARTY["profile"],
            "content_settings": {"exceptions": {"cookies": exceptions}},
        }
    }


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"The browser tests need Debian's Chromium at {CHROMIUM}: "
            "apt-get install chromium fonts-noto-cjk (.ci/run does it)",
            pytrace=False,
        )
    with sync_playwright() as instance:
        yield instance


@pytest.fixture(scope="session")
def chromium(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def context(chromium: Browser) -> Iterator[BrowserContext]:
    ctx = chromium.new_context(viewport={"width": 1024, "height": 800})
    ctx.set_default_timeout(TIMEOUT_MS)
    yield ctx
    ctx.close()


@pytest.fixture
def profile_context(
    playwright: Playwright, tmp_path: Path
) -> Iterator[Callable[[dict[str, Any]], BrowserContext]]:
    """A browser of its own with the given profile preferences (cookie controls)."""
    opened: list[BrowserContext] = []

    def _open(preferences: dict[str, Any]) -> BrowserContext:
        user_data = tmp_path / f"profile-{len(opened)}"
        (user_data / "Default").mkdir(parents=True)
        (user_data / "Default" / "Preferences").write_text(json.dumps(preferences))
        ctx = playwright.chromium.launch_persistent_context(
            user_data,
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            viewport={"width": 1024, "height": 800},
        )
        ctx.set_default_timeout(TIMEOUT_MS)
        opened.append(ctx)
        return ctx

    yield _open
    for ctx in opened:
        ctx.close()


@pytest.fixture(scope="session")
def axe() -> Axe:
    """axe-core, as bundled by axe-playwright-python."""
    return Axe()
