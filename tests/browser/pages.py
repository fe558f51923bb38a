"""Browser steps: launch in the LMS's iframe, read the tool's session, probe cookie policies."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

from flask import Flask
from playwright.sync_api import BrowserContext, Frame, Page

from lti_tool.web.session import BINDING_COOKIE, TOKEN_PARAM, ToolSession
from tests.platform.lms import TestLMS, ToolRegistration, User

# A learner lands on the course page; an instructor on an activity not yet linked lands on the
# one-time choice of what it shows.
LANDING = re.compile(r"/(course(/overview)?|link/setup)\?")
OVERVIEW = re.compile(r"/course/overview\?")


def go_to_overview(frame: Frame) -> None:
    """From the instructor's landing page to the course overview ("Not now")."""
    with frame.expect_navigation():
        frame.locator("a[href^='/course/overview?']").first.click()
    frame.wait_for_url(OVERVIEW)
    frame.wait_for_load_state()


def launch_in_frame(
    page: Page, lms: TestLMS, reg: ToolRegistration, user: User, locale: str = "ja"
) -> Frame:
    """Open the LMS's course page; the tool launches in its iframe and lands on its home."""
    page.goto(lms.course_page_url(reg, user, locale=locale))
    frame = page.frame(name="contentframe")
    assert frame is not None, "the LMS page has no contentframe"
    frame.wait_for_url(LANDING)
    frame.wait_for_load_state()
    return frame


def token_of(url: str) -> str:
    values = parse_qs(urlsplit(url).query).get(TOKEN_PARAM)
    assert values, f"no session token in {url}"
    return values[0]


def session_of(app: Flask, url: str, binding_cookie: str | None) -> ToolSession:
    """The tool's session in a page's URL, as the tool reads it with this binding cookie."""
    codec = app.extensions["tsunagu.codec"]
    session: ToolSession = codec.loads(token_of(url), binding_cookie)
    return session


def cookie(ctx: BrowserContext, name: str) -> dict[str, Any] | None:
    found = [dict(c) for c in ctx.cookies() if c["name"] == name]
    assert len(found) <= 1, found
    return found[0] if found else None


def binding_cookie(ctx: BrowserContext) -> dict[str, Any] | None:
    return cookie(ctx, BINDING_COOKIE)


def tool_cookies(ctx: BrowserContext, tool_url: str) -> list[str]:
    host = urlsplit(tool_url).hostname
    return sorted(
        c["name"] for c in ctx.cookies() if c["domain"] == host and c["name"].startswith("tsunagu_")
    )


def third_party_cookies_kept(page: Page, lms: TestLMS) -> bool:
    """Whether this browser keeps an unpartitioned `SameSite=None; Secure` cookie in a
    cross-site iframe: the LMS's page frames the LMS's probe under its other host name
    (127.0.0.1, another site than localhost), twice; the second load reports the cookie."""
    probe = lms.base_url.replace("//localhost:", "//127.0.0.1:") + "/cookie-probe"
    assert probe != lms.base_url + "/cookie-probe", "the LMS is expected on localhost"
    page.goto(lms.base_url + "/jwks")
    page.set_content(f'<iframe name="probe" src="{probe}?first"></iframe>')
    frame = page.frame(name="probe")
    assert frame is not None
    frame.wait_for_load_state()
    frame.goto(probe + "?second")
    kept = frame.locator("#probe").inner_text()
    page.context.clear_cookies(name="probe")
    return kept == "kept"


def console_errors(page: Page) -> list[str]:
    """Errors the page and its frames log from now on (CSP refusals, failed loads, scripts)."""
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def html_lang(target: Page | Frame) -> str:
    return str(target.evaluate("document.documentElement.lang"))
