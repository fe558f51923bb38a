"""axe-core on the tool's pages, WCAG 2.1 A and AA rules, in Japanese and in English.

Session pages are checked where trainees see them: inside the LMS's iframe.
"""

from __future__ import annotations

import re
from urllib.parse import urlencode

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import BrowserContext, Frame, Page

from tests.browser.pages import go_to_overview, html_lang, launch_in_frame
from tests.conftest import make_user

pytestmark = pytest.mark.browser

AXE_OPTIONS = {
    "runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]},
    "resultTypes": ["violations"],
}
LOCALES = ["ja", "en"]
JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


def assert_accessible(axe: Axe, target: Page | Frame, lang: str) -> None:
    assert html_lang(target) == lang
    results = axe.run(target, options=AXE_OPTIONS)
    assert results.violations_count == 0, results.generate_report()


def tool_page(context: BrowserContext, app, path: str, status: int) -> Page:
    page = context.new_page()
    response = page.goto(app.extensions["tsunagu.config"].tool_base_url + path)
    assert response is not None and response.status == status, (path, response and response.status)
    return page


@pytest.mark.parametrize("lang", LOCALES)
def test_learner_course_home(axe, app, lms, reg, context, lang):
    frame = launch_in_frame(context.new_page(), lms, reg, make_user("Learner"), locale=lang)
    assert_accessible(axe, frame, lang)


@pytest.mark.parametrize("lang", LOCALES)
def test_instructor_overview(axe, app, lms, reg, context, browser, lang):
    for name in ("Nguyen Thi Lan", "Maria Santos"):
        browser.launch(reg, make_user("Learner", name=name))
    instructor = make_user("Instructor", name="田中 花子")
    frame = launch_in_frame(context.new_page(), lms, reg, instructor, locale=lang)
    assert "/link/setup?" in frame.url
    assert_accessible(axe, frame, lang)
    go_to_overview(frame)
    assert frame.get_by_role("cell", name="Maria Santos").is_visible()
    assert_accessible(axe, frame, lang)


@pytest.mark.parametrize("lang", LOCALES)
def test_error_page_without_session(axe, app, context, lang):
    page = tool_page(context, app, f"/course?lang={lang}", 401)
    assert_accessible(axe, page, lang)


@pytest.mark.parametrize("lang", LOCALES)
def test_index(axe, app, context, lang):
    page = tool_page(context, app, f"/?lang={lang}", 200)
    assert_accessible(axe, page, lang)


@pytest.mark.parametrize("lang", LOCALES)
def test_registration_confirmation(axe, app, lms, context, lang):
    query = urlencode(
        {
            "openid_configuration": lms.base_url + "/.well-known/openid-configuration",
            "registration_token": "T",
            "lang": lang,
        }
    )
    page = tool_page(context, app, "/lti/register?" + query, 200)
    assert page.get_by_role("button", name=re.compile("Register|登録")).is_visible()
    assert_accessible(axe, page, lang)


def test_japanese_pages_are_in_japanese(app, context):
    """`<html lang="ja">` must hold Japanese text (WCAG 3.1.1), not the English originals."""
    page = tool_page(context, app, "/?lang=ja", 200)
    for selector in (".skip-link", "h2", ".site-footer"):
        text = page.locator(selector).first.inner_text()
        assert JAPANESE.search(text), f"{selector} is not in Japanese: {text!r}"


def test_axe_reports_violations_inside_the_frame(axe, app, lms, reg, context):
    """The harness itself can fail: a defect put into the framed tool page is reported."""
    frame = launch_in_frame(context.new_page(), lms, reg, make_user("Learner"))
    frame.evaluate(
        """() => {
            const img = document.createElement("img");
            img.src = "/static/img/tsunagu-logo.svg";
            document.querySelector("main").append(img);
            document.querySelector("h1").style.color = "#bbbbbb";
        }"""
    )
    results = axe.run(frame, options=AXE_OPTIONS)
    found = {violation["id"] for violation in results.response["violations"]}
    assert found == {"image-alt", "color-contrast"}, results.generate_report()
