"""Module, unit and test pages in the LMS's iframe: the furigana switch, the self-check, the
test's timer and saving, and axe-core (WCAG 2.1 AA) on each page, in Japanese and English."""

from __future__ import annotations

import pytest
from playwright.sync_api import Frame

from tests.browser.pages import go_to_overview, launch_in_frame, token_of
from tests.browser.test_accessibility import LOCALES, assert_accessible
from tests.conftest import make_user

pytestmark = pytest.mark.browser


def open_in_frame(frame: Frame, path: str) -> None:
    separator = "&" if "?" in path else "?"
    with frame.expect_navigation():
        frame.evaluate(
            "(url) => { window.location.href = url; }", f"{path}{separator}ts={token_of(frame.url)}"
        )
    frame.wait_for_load_state()


def rt_display(frame: Frame) -> str:
    return frame.evaluate("getComputedStyle(document.querySelector('.unit-body rt')).display")


def test_the_furigana_switch_hides_readings_and_is_remembered(context, lms, reg, app):
    page = context.new_page()
    learner = make_user("Learner", name="Nguyen Thi Lan")
    frame = launch_in_frame(page, lms, reg, learner, locale="ja")
    open_in_frame(frame, "/modules/A/a01-first")
    assert rt_display(frame) != "none"
    switch = frame.locator("form.reading-aids button[aria-pressed]").first
    assert switch.get_attribute("aria-pressed") == "true"
    with frame.expect_navigation():
        switch.click()
    frame.wait_for_load_state()
    assert rt_display(frame) == "none"
    assert frame.locator("form.reading-aids button[aria-pressed='false']").count() >= 1
    # Remembered for this person: a new launch shows the page without readings.
    again = launch_in_frame(context.new_page(), lms, reg, learner, locale="ja")
    open_in_frame(again, "/modules/A/a01-first")
    assert rt_display(again) == "none"


def test_easy_japanese_switch_shows_the_easy_version(context, lms, reg):
    frame = launch_in_frame(context.new_page(), lms, reg, make_user("Learner"), locale="ja")
    open_in_frame(frame, "/modules/A/a01-first")
    assert "やさしい ほんぶん" not in frame.content()
    easy = frame.locator("form.reading-aids button[aria-pressed]").nth(1)
    with frame.expect_navigation():
        easy.click()
    frame.wait_for_load_state()
    assert "やさしい ほんぶん" in frame.content()


def test_reading_to_the_end_and_the_self_check(context, lms, reg, db):
    frame = launch_in_frame(context.new_page(), lms, reg, make_user("Learner"), locale="en")
    open_in_frame(frame, "/modules/B/b01-first")
    # Scrolling to the end marks the unit read (the button is hidden once the tool confirms).
    frame.locator("#unit-end").scroll_into_view_if_needed()
    frame.wait_for_selector("#unit-end[data-read='true']", state="attached")
    frame.locator("#self-check input[type=radio]").first.check()
    with frame.expect_navigation():
        frame.locator("#self-check button[type=submit]").click()
    frame.wait_for_load_state()
    assert frame.locator(".feedback").count() == 1


@pytest.mark.parametrize("lang", LOCALES)
def test_learning_pages_are_accessible(axe, context, lms, reg, lang):
    frame = launch_in_frame(context.new_page(), lms, reg, make_user("Learner"), locale=lang)
    for path in ("/modules/", "/modules/C", "/modules/C/c01-first", "/quiz/"):
        open_in_frame(frame, path)
        assert_accessible(axe, frame, lang)


@pytest.mark.parametrize("lang", LOCALES)
def test_a_test_attempt_is_accessible_and_saves_as_you_answer(axe, context, lms, reg, db, lang):
    from sqlalchemy import func, select

    from lti_tool.quiz.models import AttemptAnswer

    frame = launch_in_frame(context.new_page(), lms, reg, make_user("Learner"), locale=lang)
    open_in_frame(frame, "/quiz/")
    with frame.expect_navigation():
        frame.locator("form[action^='/quiz/start'] button").click()
    frame.wait_for_load_state()
    assert frame.locator("#timer").inner_text().strip() != ""
    assert_accessible(axe, frame, lang)
    # Answering saves at once (no button pressed).
    # The first radio or checkbox answer of the page (not the flag), whatever the draw put there.
    answers = (
        "fieldset.question input[type=radio], "
        "fieldset.question input[type=checkbox]:not([name=flagged])"
    )
    frame.locator(answers).first.check()
    frame.wait_for_selector("#save-status:not(:empty)", state="attached")
    with db.session_scope() as session:
        assert session.scalar(select(func.count()).select_from(AttemptAnswer)) == 1
    with frame.expect_navigation():
        frame.locator("button[value='summary']").click()
    frame.wait_for_load_state()
    assert_accessible(axe, frame, lang)
    with frame.expect_navigation():
        frame.locator("form[action*='/submit'] button").click()
    frame.wait_for_load_state()
    assert_accessible(axe, frame, lang)


@pytest.mark.parametrize("lang", LOCALES)
def test_instructor_pages_are_accessible(axe, context, lms, reg, browser, lang):
    browser.launch(reg, make_user("Learner", name="Maria Santos"))
    frame = launch_in_frame(context.new_page(), lms, reg, make_user("Instructor"), locale=lang)
    assert_accessible(axe, frame, lang)  # the one-time choice of what the activity shows
    go_to_overview(frame)
    for path in (
        "/modules/progress",
        "/modules/A/settings",
        "/quiz/results",
        "/quiz/settings",
        "/course/grades",
    ):
        open_in_frame(frame, path)
        assert_accessible(axe, frame, lang)
