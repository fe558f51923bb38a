"""Complete launches against the test LMS over HTTP."""

from __future__ import annotations


def test_learner_launch_lands_on_course_home(browser, reg, learner):
    page = browser.launch(reg, learner)
    assert page.status_code == 200
    assert "外国人支援コーディネーター養成研修 2026" in page.text
    assert "Nguyen Thi Lan" in page.text


def test_learner_of_an_unlinked_activity_is_told_it_waits(browser, reg, learner):
    page = browser.launch(reg, learner)
    assert "activity=pending" in page.url
    assert 'id="pending-title"' in page.text


def test_instructor_launch_of_an_unlinked_activity_offers_the_choice(
    browser, reg, instructor, learner
):
    browser.launch(reg, learner)
    page = browser.launch(reg, instructor)
    assert page.status_code == 200
    assert "/link/setup" in page.url
    assert 'value="module:A"' in page.text
    overview = browser.get(page.url.replace("/link/setup", "/course/overview"))
    assert "Nguyen Thi Lan" in overview.text and "田中 花子" in overview.text
