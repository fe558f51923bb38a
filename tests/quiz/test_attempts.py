"""The completion test through launched sessions: attempts, rules, review, grades, results."""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select, update

from lti_tool.grading.models import GradeOutbox
from lti_tool.identity.models import ResourceLink
from lti_tool.linking.models import ResourceLinkPlacement
from lti_tool.linking.services import create_placement
from lti_tool.quiz.models import Attempt, AttemptAnswer, AttemptStatus, QuizSettings
from tests.conftest import make_user


def token_of(page) -> str:
    return parse_qs(urlsplit(page.url).query)["ts"][0]


def csrf_of(page) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


class Trainee:
    """A launched learner with helpers to drive the test."""

    def __init__(self, browser, reg, user):
        self.browser = browser
        page = browser.launch(reg, user)
        self.ts = token_of(page)
        self.csrf = csrf_of(browser.get(f"/quiz/?ts={self.ts}"))

    def get(self, path):
        joiner = "&" if "?" in path else "?"
        return self.browser.get(f"{path}{joiner}ts={self.ts}")

    def post(self, path, data=None, fields=None):
        body = {"ts": self.ts, "csrf_token": self.csrf, **(data or {})}
        if fields:
            return self.browser.http.post(
                self.browser.tool_url + path,
                data=[*body.items(), *fields],
                allow_redirects=False,
                timeout=10,
            )
        return self.browser.post(path, body)

    def start(self) -> int:
        response = self.post("/quiz/start")
        assert response.status_code == 303, response.text[:300]
        return int(re.search(r"/quiz/attempt/(\d+)", response.headers["Location"]).group(1))


def right_fields(snapshot: dict) -> list[tuple[str, str]]:
    qid, kind = snapshot["id"], snapshot["type"]
    if kind == "single":
        return [(qid, str(snapshot["answer"]))]
    if kind == "multiple":
        return [(f"{qid}[]", str(i)) for i in snapshot["answer"]]
    if kind == "truefalse":
        return [(qid, "true" if snapshot["answer"] else "false")]
    if kind == "matching":
        return [(f"{qid}:{i}", str(i)) for i in range(len(snapshot["pairs"]))]
    return [(qid, snapshot["accepted"][0])]


def attempt_row(db, attempt_id) -> Attempt:
    with db.session_scope() as session:
        row = session.get(Attempt, attempt_id)
        session.expunge(row)
        return row


def answer_everything(trainee, db, attempt_id, right=True):
    attempt = attempt_row(db, attempt_id)
    fields = []
    for entry in attempt.questions:
        fields.append(("question", entry["id"]))
        if right:
            fields.extend(right_fields(entry["snapshot"]))
    response = trainee.post(f"/quiz/attempt/{attempt_id}/save", {"go": "summary"}, fields)
    assert response.status_code == 303
    return attempt


def test_an_attempt_is_drawn_answered_and_scored_on_the_server(browser, reg, learner, db):
    trainee = Trainee(browser, reg, learner)
    rules = trainee.get("/quiz/")
    assert "13" in rules.text  # 3+3+3+2+2 questions drawn from the fixture bank
    attempt_id = trainee.start()
    page = trainee.get(f"/quiz/attempt/{attempt_id}")
    assert page.status_code == 200
    # The answer key and the explanations never reach the browser during the attempt.
    assert "(right answer)" not in page.text and 'class="key"' not in page.text
    for explanation in ("一つ目", "1と2", "鳴き", "The first", "One and two"):
        assert explanation not in page.text
    attempt = answer_everything(trainee, db, attempt_id)
    assert len(attempt.questions) == 13
    result = trainee.post(f"/quiz/attempt/{attempt_id}/submit")
    assert result.status_code == 303
    stored = attempt_row(db, attempt_id)
    assert stored.status == AttemptStatus.SUBMITTED
    assert stored.percent == 100.0 and stored.passed
    shown = trainee.get(f"/quiz/attempt/{attempt_id}/result")
    assert "100.0%" in shown.text


def test_answers_are_saved_page_by_page_and_survive_a_new_launch(browser, reg, learner, db):
    trainee = Trainee(browser, reg, learner)
    attempt_id = trainee.start()
    first = attempt_row(db, attempt_id).questions[0]
    trainee.post(
        f"/quiz/attempt/{attempt_id}/save",
        {"go": "page:2"},
        [("question", first["id"]), *right_fields(first["snapshot"])],
    )
    again = Trainee(browser, reg, learner)  # a new launch resumes the same attempt
    assert again.start() == attempt_id
    with db.session_scope() as session:
        saved = session.scalars(
            select(AttemptAnswer).where(AttemptAnswer.attempt_id == attempt_id)
        ).all()
        assert [a.question_id for a in saved] == [first["id"]]


def test_one_open_attempt_and_a_double_submit_grades_once(browser, reg, learner, db):
    trainee = Trainee(browser, reg, learner)
    attempt_id = trainee.start()
    assert trainee.start() == attempt_id
    answer_everything(trainee, db, attempt_id)
    trainee.post(f"/quiz/attempt/{attempt_id}/submit")
    first = attempt_row(db, attempt_id)
    second = trainee.post(f"/quiz/attempt/{attempt_id}/submit")
    assert second.status_code == 303
    after = attempt_row(db, attempt_id)
    assert after.submitted_at == first.submitted_at and after.score == first.score
    with db.session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Attempt)) == 1


def test_answers_after_the_deadline_are_refused_and_the_attempt_submitted(
    browser, reg, learner, db
):
    trainee = Trainee(browser, reg, learner)
    attempt_id = trainee.start()
    with db.session_scope() as session:
        session.execute(
            update(Attempt)
            .where(Attempt.id == attempt_id)
            .values(deadline_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5))
        )
    attempt = attempt_row(db, attempt_id)
    first = attempt.questions[0]
    late = trainee.post(
        f"/quiz/attempt/{attempt_id}/save",
        {"go": "page:2"},
        [("question", first["id"]), *right_fields(first["snapshot"])],
    )
    assert late.status_code == 303 and "late=1" in late.headers["Location"]
    stored = attempt_row(db, attempt_id)
    assert stored.status == AttemptStatus.SUBMITTED and stored.auto_submitted
    assert stored.score == 0
    page = browser.get(late.headers["Location"])
    assert 'role="alert"' in page.text


def test_questions_not_in_the_attempt_are_ignored(browser, reg, learner, db):
    trainee = Trainee(browser, reg, learner)
    attempt_id = trainee.start()
    trainee.post(
        f"/quiz/attempt/{attempt_id}/save",
        {"go": "page:1"},
        [("question", "not-a-question"), ("not-a-question", "0")],
    )
    with db.session_scope() as session:
        assert session.scalar(select(func.count()).select_from(AttemptAnswer)) == 0


def test_a_trainee_cannot_open_another_trainees_attempt_or_the_results(browser, reg, learner, db):
    owner = Trainee(browser, reg, learner)
    attempt_id = owner.start()
    other = Trainee(browser, reg, make_user("Learner", name="Other"))
    assert other.get(f"/quiz/attempt/{attempt_id}").status_code == 404
    assert other.post(f"/quiz/attempt/{attempt_id}/submit").status_code == 404
    assert other.get("/quiz/results").status_code == 403
    assert other.get("/quiz/settings").status_code == 403


def test_a_test_not_yet_open_says_when_it_opens(browser, reg, learner, instructor, db):
    staff = Trainee(browser, reg, instructor)
    form = staff.get("/quiz/settings")
    assert form.status_code == 200
    tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=2)).date().isoformat()
    saved = staff.post(
        "/quiz/settings",
        {
            "area:A": "2",
            "area:B": "2",
            "area:C": "1",
            "area:D": "1",
            "area:E": "1",
            "time_limit": "30",
            "attempts": "1",
            "pass_percent": "80",
            "per_page": "5",
            "grading_rule": "best",
            "review_policy": "immediately",
            "opens": tomorrow,
            "closes": "",
        },
    )
    assert saved.status_code == 303
    trainee = Trainee(browser, reg, learner)
    rules = trainee.get("/quiz/")
    assert tomorrow[5:7] in rules.text and 'role="status"' in rules.text
    assert trainee.post("/quiz/start").status_code == 409


def test_switching_language_keeps_the_answers(browser, reg, learner, db):
    trainee = Trainee(browser, reg, learner)
    attempt_id = trainee.start()
    questions = attempt_row(db, attempt_id).questions
    # A single-choice question: its answer shows as `checked` on its page (5 a page).
    number, chosen = next(
        (n, q) for n, q in enumerate(questions, start=1) if q["snapshot"]["type"] == "single"
    )
    trainee.post(
        f"/quiz/attempt/{attempt_id}/save",
        {"go": "page:1"},
        [("question", chosen["id"]), *right_fields(chosen["snapshot"])],
    )
    switched = trainee.post("/language", {"lang": "en", "next": f"/quiz/attempt/{attempt_id}"})
    assert switched.status_code == 303
    token = parse_qs(urlsplit(switched.headers["Location"]).query)["ts"][0]
    page = browser.get(f"/quiz/attempt/{attempt_id}?page={(number - 1) // 5 + 1}&ts={token}")
    assert '<html lang="en">' in page.text
    answer = chosen["snapshot"]["answer"]
    assert re.search(rf'id="q{number}-{answer}" value="{answer}"\s+checked', page.text)


def _place_quiz_on_link(db, resource_link_id="rl-1"):
    with db.session_scope() as session:
        link = session.scalars(
            select(ResourceLink).where(ResourceLink.resource_link_id == resource_link_id)
        ).one()
        placement = create_placement(session, link.course_id, None, "quiz:final", {})
        session.add(ResourceLinkPlacement(resource_link_pk=link.id, placement_id=placement.id))


def test_the_grade_goes_to_the_outbox_once_per_change(browser, reg, learner, db):
    trainee = Trainee(browser, reg, learner)
    _place_quiz_on_link(db)
    attempt_id = trainee.start()
    answer_everything(trainee, db, attempt_id)
    trainee.post(f"/quiz/attempt/{attempt_id}/submit")
    with db.session_scope() as session:
        rows = session.scalars(select(GradeOutbox)).all()
        assert [(r.score_given, r.grading_progress) for r in rows] == [(100.0, "FullyGraded")]
    # A weaker second attempt leaves the best grade unchanged: nothing new is sent.
    second = trainee.start()
    answer_everything(trainee, db, second, right=False)
    trainee.post(f"/quiz/attempt/{second}/submit")
    with db.session_scope() as session:
        assert session.scalar(select(func.count()).select_from(GradeOutbox)) == 1


def test_regrading_after_a_key_fix_changes_scores_and_grades(browser, reg, learner, instructor, db):
    trainee = Trainee(browser, reg, learner)
    _place_quiz_on_link(db)
    attempt_id = trainee.start()
    answer_everything(trainee, db, attempt_id)
    trainee.post(f"/quiz/attempt/{attempt_id}/submit")
    # As if the bank had carried a wrong key when this attempt drew its first question.
    with db.session_scope() as session:
        attempt = session.get(Attempt, attempt_id)
        entries = [dict(e) for e in attempt.questions]
        entries[0] = {**entries[0], "version": "old-version"}
        attempt.questions = entries
    staff = Trainee(browser, reg, instructor)
    before = attempt_row(db, attempt_id).score
    response = staff.post("/quiz/regrade")
    assert response.status_code == 303 and "regraded=0" in response.headers["Location"]
    assert attempt_row(db, attempt_id).score == before
    with db.session_scope() as session:
        attempt = session.get(Attempt, attempt_id)
        entries = [dict(e) for e in attempt.questions]
        broken = {**entries[0]["snapshot"]}
        entries[0] = {**entries[0], "version": "old-version"}
        attempt.questions = entries
        # The trainee's stored answer was wrong under the old key: make it so.
        answer = session.scalars(
            select(AttemptAnswer).where(
                AttemptAnswer.attempt_id == attempt_id, AttemptAnswer.question_id == broken["id"]
            )
        ).one()
        answer.response = None
    response = staff.post("/quiz/regrade")
    assert "regraded=1" in response.headers["Location"]
    after = attempt_row(db, attempt_id)
    assert after.score == before - 1 and after.regraded_at is not None
    with db.session_scope() as session:
        scores = [
            r.score_given for r in session.scalars(select(GradeOutbox).order_by(GradeOutbox.id))
        ]
    assert scores[0] == 100.0 and scores[-1] < 100.0


def test_accommodations_add_time_and_attempts_with_a_reason(browser, reg, learner, instructor, db):
    trainee = Trainee(browser, reg, learner)
    staff = Trainee(browser, reg, instructor)
    results = staff.get("/quiz/results")
    member_id = re.search(r'<option value="(\d+)">Nguyen Thi Lan', results.text).group(1)
    refused = staff.post(
        "/quiz/accommodations",
        {"member_id": member_id, "extra_minutes": "15", "extra_attempts": "1", "reason": ""},
    )
    assert refused.status_code == 400
    granted = staff.post(
        "/quiz/accommodations",
        {
            "member_id": member_id,
            "extra_minutes": "15",
            "extra_attempts": "1",
            "reason": "JLPT N3; reads slowly",
        },
    )
    assert granted.status_code == 303
    rules = trainee.get("/quiz/")
    assert "3 / 3" in rules.text
    attempt_id = trainee.start()
    attempt = attempt_row(db, attempt_id)
    minutes = (attempt.deadline_at - attempt.started_at).total_seconds() / 60
    assert minutes == pytest.approx(75, abs=0.1)


def test_results_show_statistics_distribution_and_csv(browser, reg, learner, instructor, db):
    for index, right in enumerate((True, True, False)):
        trainee = Trainee(browser, reg, make_user("Learner", name=f"Trainee {index}"))
        attempt_id = trainee.start()
        answer_everything(trainee, db, attempt_id, right=right)
        trainee.post(f"/quiz/attempt/{attempt_id}/submit")
    staff = Trainee(browser, reg, instructor)
    page = staff.get("/quiz/results")
    assert page.status_code == 200
    assert "<svg" in page.text and "Trainee 2" in page.text
    assert "0.67" in page.text  # facility of a question two of three got right
    csv = staff.get("/quiz/results.csv")
    assert csv.content.startswith("\ufeff".encode())
    assert csv.content.decode("utf-8-sig").count("\r\n") == 4


def test_settings_are_scoped_to_the_course_and_validated(browser, reg, instructor, db):
    staff = Trainee(browser, reg, instructor)
    bad = staff.post(
        "/quiz/settings",
        {
            "area:A": "99",
            "time_limit": "30",
            "attempts": "1",
            "pass_percent": "70",
            "per_page": "5",
            "grading_rule": "best",
            "review_policy": "never",
        },
    )
    assert bad.status_code == 400
    with db.session_scope() as session:
        assert session.scalar(select(func.count()).select_from(QuizSettings)) == 0


def _save_settings(staff, **changes):
    form = {
        "area:A": "3",
        "area:B": "3",
        "area:C": "3",
        "area:D": "2",
        "area:E": "2",
        "time_limit": "30",
        "attempts": "2",
        "pass_percent": "70",
        "per_page": "5",
        "grading_rule": "best",
        "review_policy": "immediately",
        "opens": "",
        "closes": "",
    }
    form.update(changes)
    response = staff.post("/quiz/settings", form)
    assert response.status_code == 303, response.text[:300]


@pytest.mark.parametrize(
    ("policy", "shown"), [("immediately", True), ("never", False), ("after_close", False)]
)
def test_feedback_follows_the_review_policy(browser, reg, learner, instructor, db, policy, shown):
    staff = Trainee(browser, reg, instructor)
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=3)).date().isoformat()
    _save_settings(staff, review_policy=policy, closes=later)
    trainee = Trainee(browser, reg, learner)
    attempt_id = trainee.start()
    answer_everything(trainee, db, attempt_id)
    trainee.post(f"/quiz/attempt/{attempt_id}/submit")
    result = trainee.get(f"/quiz/attempt/{attempt_id}/result")
    assert result.status_code == 200
    assert ('id="feedback-title"' in result.text) is shown
    # Instructors always see the feedback.
    assert 'id="feedback-title"' in staff.get(f"/quiz/attempt/{attempt_id}/result").text


def test_a_closed_test_refuses_new_attempts_and_says_so(browser, reg, learner, instructor, db):
    staff = Trainee(browser, reg, instructor)
    _save_settings(staff)
    with db.session_scope() as session:
        settings = session.scalars(select(QuizSettings)).one()
        settings.closes_at = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    trainee = Trainee(browser, reg, learner)
    assert 'role="status"' in trainee.get("/quiz/").text
    assert trainee.post("/quiz/start").status_code == 409


def test_another_courses_instructor_sees_none_of_these_results(
    browser, reg, learner, instructor, db, lms
):
    trainee = Trainee(browser, reg, learner)
    attempt_id = trainee.start()
    answer_everything(trainee, db, attempt_id)
    trainee.post(f"/quiz/attempt/{attempt_id}/submit")
    lms.course = {"id": "course-2", "title": "Another course", "label": "OTHER"}
    try:
        other = Trainee(browser, reg, make_user("Instructor", name="Other Teacher"))
    finally:
        lms.course = {
            "id": "course-1",
            "title": "外国人支援コーディネーター養成研修 2026",
            "label": "FRSC-2026",
        }
    results = other.get("/quiz/results")
    assert results.status_code == 200 and "Nguyen Thi Lan" not in results.text
    assert other.get(f"/quiz/attempt/{attempt_id}/result").status_code == 404
