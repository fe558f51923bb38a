"""The tool inside the LMS's iframe (another site), under each cookie policy a browser may have.

DESIGN.md, Iframes: cookies are `SameSite=None; Secure; Partitioned`; where the browser refuses
them the tool continues with its signed token, and "open in a new window" always works.
"""

from __future__ import annotations

import re

import pytest
from flask import Flask
from playwright.sync_api import BrowserContext, Frame, Page

from lti_tool.web.session import SessionError
from tests.browser.conftest import (
    ALLOW_THIRD_PARTY,
    BLOCK_THIRD_PARTY,
    refuse_tool_cookies,
)
from tests.browser.pages import (
    LANDING,
    binding_cookie,
    console_errors,
    go_to_overview,
    html_lang,
    launch_in_frame,
    session_of,
    third_party_cookies_kept,
    tool_cookies,
)
from tests.conftest import make_user
from tests.platform.lms import TestLMS

# The link in either language (the launches here default to Japanese).
NEW_WINDOW = re.compile("Open in a new window|新しいウィンドウで開く")

pytestmark = pytest.mark.browser

COURSE_TITLE = "外国人支援コーディネーター養成研修 2026"


def tool_host(app: Flask) -> str:
    url: str = app.extensions["tsunagu.config"].tool_base_url
    return url.split("//", 1)[1].split(":", 1)[0]


def lms_host(lms: TestLMS) -> str:
    return lms.base_url.split("//", 1)[1].split(":", 1)[0]


def assert_course_home(frame: Frame, lang: str) -> None:
    assert frame.locator("h1").inner_text() == COURSE_TITLE
    assert html_lang(frame) == lang
    assert "/course?" in frame.url


def switch_language(frame: Frame, to_label: str) -> None:
    button = frame.get_by_role("button", name=to_label)
    with frame.expect_navigation():
        button.click()
    frame.wait_for_url(LANDING)


def assert_partitioned_binding(app: Flask, ctx: BrowserContext, frame: Frame, lms: TestLMS) -> None:
    """The binding cookie was kept, in the LMS site's partition, and binds the frame's token."""
    bind = binding_cookie(ctx)
    assert bind is not None, ctx.cookies()
    assert bind["secure"] is True and bind["sameSite"] == "None" and bind["httpOnly"] is True
    assert bind["partitionKey"] == f"http://{lms_host(lms)}"
    session = session_of(app, frame.url, bind["value"])
    assert session.binding is not None
    with pytest.raises(SessionError, match="bound to another browser"):
        session_of(app, frame.url, None)


def test_third_party_cookies_allowed(app, lms, reg, learner, profile_context):
    ctx = profile_context(ALLOW_THIRD_PARTY)
    page = ctx.new_page()
    assert third_party_cookies_kept(page, lms), "the profile should allow third-party cookies"
    errors = console_errors(page)

    frame = launch_in_frame(page, lms, reg, learner)
    assert_course_home(frame, "ja")
    names = tool_cookies(ctx, app.extensions["tsunagu.config"].tool_base_url)
    # The login's state cookie is deleted once the launch used it; the binding cookie stays.
    assert names == ["tsunagu_bind"]
    assert_partitioned_binding(app, ctx, frame, lms)

    switch_language(frame, "English")
    assert_course_home(frame, "en")
    assert session_of(app, frame.url, binding_cookie(ctx)["value"]).locale == "en"
    assert frame.get_by_role("button", name="日本語").is_visible()
    assert errors == []


def test_third_party_cookies_blocked_partitioned_still_kept(app, lms, reg, profile_context):
    """Chromium's "block third-party cookies" blocks unpartitioned cookies only: the tool's
    `Partitioned` ones (CHIPS) are still kept, so the session is bound as above."""
    ctx = profile_context(BLOCK_THIRD_PARTY)
    page = ctx.new_page()
    assert not third_party_cookies_kept(page, lms), "third-party cookies should be blocked"
    errors = console_errors(page)

    instructor = make_user("Instructor", name="田中 花子")
    frame = launch_in_frame(page, lms, reg, instructor)
    assert "/link/setup?" in frame.url
    assert_partitioned_binding(app, ctx, frame, lms)
    go_to_overview(frame)

    with frame.expect_navigation():
        frame.locator("a[href^='/course?']").first.click()
    frame.wait_for_url(LANDING)
    assert_course_home(frame, "ja")
    assert session_of(app, frame.url, binding_cookie(ctx)["value"]).is_staff
    assert errors == []


def test_tool_cookies_refused_in_frame(app, lms, reg, learner, profile_context):
    """As Safari does (and any browser told to refuse the tool's cookies when embedded): no
    cookie at all, partitioned or not. The launch goes through on the server-side state, and
    the session lives on its unbound signed token."""
    ctx = profile_context(refuse_tool_cookies(tool_host(app), lms_host(lms)))
    page = ctx.new_page()
    assert not third_party_cookies_kept(page, lms)
    errors = console_errors(page)

    frame = launch_in_frame(page, lms, reg, learner, locale="en")
    assert_course_home(frame, "en")
    assert tool_cookies(ctx, app.extensions["tsunagu.config"].tool_base_url) == []
    assert session_of(app, frame.url, None).binding is None

    switch_language(frame, "日本語")
    assert_course_home(frame, "ja")
    assert session_of(app, frame.url, None).locale == "ja"
    assert errors == []


def open_new_window(page: Page, frame: Frame) -> Page:
    with page.expect_popup() as popup_info:
        frame.get_by_role("link", name=NEW_WINDOW).click()
    popup = popup_info.value
    popup.wait_for_url(LANDING)
    popup.wait_for_load_state()
    return popup


def test_new_window_after_a_partitioned_binding(app, lms, reg, learner, context):
    """The frame's binding cookie lives in the LMS's partition, which a top-level window of
    the tool never sees: the window must not need it."""
    page = context.new_page()
    frame = launch_in_frame(page, lms, reg, learner)
    assert_partitioned_binding(app, context, frame, lms)

    popup = open_new_window(page, frame)
    assert popup.locator("h1").inner_text() == COURSE_TITLE
    first_party = [
        c
        for c in context.cookies()
        if c["name"] == "tsunagu_bind" and c["partitionKey"] == f"http://{tool_host(app)}"
    ]
    assert len(first_party) == 1
    assert session_of(app, popup.url, first_party[0]["value"]).binding is not None


@pytest.mark.parametrize("embedder", ["lms", "everywhere"])
def test_new_window_when_cookies_are_refused(app, lms, reg, learner, profile_context, embedder):
    """Refused only in the frame, the window binds to a first-party cookie; refused
    everywhere, it goes on with the unbound token instead of dead-ending."""
    refused_in = lms_host(lms) if embedder == "lms" else None
    ctx = profile_context(refuse_tool_cookies(tool_host(app), refused_in))
    page = ctx.new_page()
    frame = launch_in_frame(page, lms, reg, learner)
    assert tool_cookies(ctx, app.extensions["tsunagu.config"].tool_base_url) == []

    popup = open_new_window(page, frame)
    assert popup.locator("h1").inner_text() == COURSE_TITLE
    bind = binding_cookie(ctx)
    if embedder == "lms":
        assert bind is not None and bind["partitionKey"] == f"http://{tool_host(app)}"
        assert session_of(app, popup.url, bind["value"]).binding is not None
    else:
        assert bind is None
        assert session_of(app, popup.url, None).binding is None
