"""The instructors' grades page: each trainee's latest grade and its delivery, resend, access.
Grades come from the real feature: a module placed as a graded activity, completion sent."""

from __future__ import annotations

import html
import re
from collections import Counter

import pytest
from sqlalchemy import func, select

from lti_tool.grading.delivery import deliver
from lti_tool.grading.models import GradeItem, GradeOutbox, OutboxStatus
from tests.advantage.helpers import (
    Launched,
    follow,
    launch,
    launched,
    member_of,
    outbox_rows,
    path_of,
    queue_score,
    scores_for,
)
from tests.conftest import make_user

EN = {"locale": "en"}


def wait_idle(app) -> None:
    assert app.extensions["tsunagu.after_response"].wait_idle(10)


def self_check(session: Launched, unit: str = "a01-first") -> None:
    page = session.get(f"/modules/A/{unit}")
    assert page.status_code == 200, page.text[:300]
    done = session.post(f"/modules/A/{unit}/check", {f"{unit}-q1": "1"}, page=page)
    assert done.status_code == 303, done.text[:300]


@pytest.fixture
def graded_module(browser, reg, instructor) -> Launched:
    """Activity rl-1 set up by the instructor to show module A (graded by completion)."""
    staff = launched(browser, reg, instructor, **EN)
    assert path_of(staff.page.url) == "/link/setup"
    assert staff.post("/link/setup", {"item": "module:A"}).status_code == 303
    return staff


def row_of(page: str, name: str) -> str:
    found = re.search(r"<tr>\s*<td>" + re.escape(html.escape(name)) + r"</td>.*?</tr>", page, re.S)
    assert found, f"no row for {name}"
    return found.group(0)


def test_completion_goes_to_the_gradebook_and_shows_on_the_grades_page(
    app, browser, lms, reg, learner, graded_module, db, config
):
    trainee = launched(browser, reg, learner)
    assert path_of(trainee.page.url) == "/modules/A"
    self_check(trainee)
    wait_idle(app)  # delivered straight after the request, not by a worker
    assert [s["scoreGiven"] for s in scores_for(lms, learner.sub)] == [50.0]
    # The same progress again sends nothing new.
    self_check(trainee)
    wait_idle(app)
    assert len(lms.scores) == 1

    # Two more trainees: one whose grade the LMS refused, one still waiting.
    refused = make_user("Learner", name="Refused Trainee")
    waiting = make_user("Learner", name="Waiting Trainee")
    for user in (refused, waiting):
        launched(browser, reg, user)
    lms.score_failures.append((400, "Incorrect score received"))
    queue_score(db, member_of(db, refused.sub), 20)
    assert deliver(db, config) == Counter(failed=1)
    queue_score(db, member_of(db, waiting.sub), 30)

    page = graded_module.get("/course/grades")
    assert page.status_code == 200
    text = page.text
    assert "Module A" in text or "科目 A" in text
    delivered = row_of(text, learner.name)
    assert "50 / 100" in delivered and "Delivered" in delivered
    failed = row_of(text, "Refused Trainee")
    assert "20 / 100" in failed and "Failed" in failed and "Incorrect score received" in failed
    pending = row_of(text, "Waiting Trainee")
    assert "30 / 100" in pending and "Waiting to be sent" in pending
    assert text.count('name="member_id"') == 3


def test_send_again_for_one_and_for_all(app, browser, lms, reg, learner, graded_module, db, config):
    trainee = launched(browser, reg, learner)
    self_check(trainee)
    wait_idle(app)
    other = make_user("Learner", name="Second Trainee")
    launched(browser, reg, other)
    lms.score_failures.append((400, "refused"))
    queue_score(db, member_of(db, other.sub), 40)
    assert deliver(db, config) == Counter(failed=1)
    with db.session_scope() as s:
        item_id = s.scalars(select(GradeItem.id)).one()
    page = graded_module.get("/course/grades")

    one = graded_module.post(
        f"/course/grades/{item_id}/resend",
        {"member_id": str(member_of(db, learner.sub))},
        page=page,
    )
    assert one.status_code == 303 and "resent=1" in one.headers["Location"]
    wait_idle(app)
    sent = scores_for(lms, learner.sub)
    assert [s["scoreGiven"] for s in sent] == [50.0, 50.0]
    assert sent[1]["timestamp"] > sent[0]["timestamp"]

    everyone = graded_module.post(f"/course/grades/{item_id}/resend", {}, page=page)
    assert everyone.status_code == 303 and "resent=2" in everyone.headers["Location"]
    wait_idle(app)
    assert [s["scoreGiven"] for s in scores_for(lms, other.sub)] == [40.0]
    assert len(scores_for(lms, learner.sub)) == 3
    rows = outbox_rows(db)
    # The refused grade's row is history now, superseded by the one sent again.
    assert Counter(r.status for r in rows) == Counter(
        {OutboxStatus.DELIVERED: 4, OutboxStatus.SUPERSEDED: 1}
    )
    shown = follow(browser, everyone)[-1]
    assert 'role="status"' in shown.text


def test_a_score_still_waiting_is_not_queued_twice(browser, reg, learner, graded_module, db):
    launched(browser, reg, learner)
    queue_score(db, member_of(db, learner.sub), 30)  # recorded, not yet sent
    with db.session_scope() as s:
        item_id = s.scalars(select(GradeItem.id)).one()
    page = graded_module.get("/course/grades")
    answer = graded_module.post(f"/course/grades/{item_id}/resend", {}, page=page)
    assert answer.status_code == 303 and "resent=0" in answer.headers["Location"]
    assert len(outbox_rows(db)) == 1


def test_a_learner_cannot_see_or_resend_grades(browser, reg, learner, graded_module, db):
    trainee = launched(browser, reg, learner)
    queue_score(db, member_of(db, learner.sub), 30)
    with db.session_scope() as s:
        item_id = s.scalars(select(GradeItem.id)).one()
    assert trainee.get("/course/grades").status_code == 403
    unit = trainee.get("/modules/A/a01-first")
    answer = trainee.post(f"/course/grades/{item_id}/resend", {}, page=unit)
    assert answer.status_code == 403
    assert len(outbox_rows(db)) == 1


def test_another_courses_instructor_sees_none_of_these_grades(
    browser, reg, learner, graded_module, db
):
    launched(browser, reg, learner)
    queue_score(db, member_of(db, learner.sub), 30)
    with db.session_scope() as s:
        item_id = s.scalars(select(GradeItem.id)).one()
    elsewhere = launched(
        browser,
        reg,
        make_user("Instructor", name="Other Teacher"),
        course={"id": "course-2", "title": "Elsewhere"},
        **EN,
    )
    page = elsewhere.get("/course/grades")
    assert page.status_code == 200
    assert learner.name not in page.text and f"/course/grades/{item_id}/" not in page.text
    answer = elsewhere.post(f"/course/grades/{item_id}/resend", {}, page=page)
    assert answer.status_code == 404
    member = str(member_of(db, learner.sub))
    answer = elsewhere.post(f"/course/grades/{item_id}/resend", {"member_id": member}, page=page)
    assert answer.status_code == 404
    with db.session_scope() as s:
        assert s.scalar(select(func.count()).select_from(GradeOutbox)) == 1


def test_completion_grading_can_be_turned_off_in_module_settings(
    app, browser, lms, reg, learner, graded_module, db
):
    form = graded_module.get("/modules/A/settings")
    checkbox = re.search(r'<input[^>]*name="send_grade"[^>]*>', form.text).group(0)
    assert "checked" in checkbox  # placed as a graded activity: on
    saved = graded_module.post(
        "/modules/A/settings",
        [("required", "a01-first"), ("required", "a02-second"), ("note", "")],
        page=form,
    )
    assert saved.status_code == 303
    trainee = launched(browser, reg, learner)
    self_check(trainee)
    wait_idle(app)
    assert outbox_rows(db) == [] and not lms.scores
    # And on again.
    form = graded_module.get("/modules/A/settings")
    graded_module.post(
        "/modules/A/settings",
        [("required", "a01-first"), ("required", "a02-second"), ("send_grade", "on")],
        page=form,
    )
    self_check(trainee, "a02-second")
    wait_idle(app)
    assert [s["scoreGiven"] for s in scores_for(lms, learner.sub)] == [100.0]


def test_an_unlaunched_course_has_no_grades_page_for_learners(browser, reg, learner):
    answer = follow(browser, launch(browser, reg, learner))[-1]
    ts = re.search(r"ts=([^&\"']+)", answer.url).group(1)
    assert browser.get(f"/course/grades?ts={ts}").status_code == 403
