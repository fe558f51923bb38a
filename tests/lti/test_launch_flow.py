"""Complete launches against the test LMS over HTTP."""

from __future__ import annotations

from tests.conftest import make_user


def test_learner_launch_lands_on_course_home(browser, reg, learner):
    page = browser.launch(reg, learner)
    assert page.status_code == 200
    assert "外国人支援コーディネーター養成研修 2026" in page.text
    assert "Nguyen Thi Lan" in page.text


def test_instructor_launch_lands_on_overview(browser, reg, instructor, learner):
    browser.launch(reg, learner)
    page = browser.launch(reg, instructor)
    assert page.status_code == 200
    assert "/course/overview" in page.url
    assert "Nguyen Thi Lan" in page.text and "田中 花子" in page.text
