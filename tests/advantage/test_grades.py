"""Grades to the LMS gradebook over AGS, against the test LMS: the token, the line item, the
score, and what happens when the LMS answers 500, 409, 401 or 400."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import threading
from collections import Counter
from itertools import pairwise

import pytest
from sqlalchemy import select

from lti_tool.db import utcnow
from lti_tool.errors import BadRequest, NotFound
from lti_tool.grading import delivery
from lti_tool.grading.delivery import deliver
from lti_tool.grading.models import GradeOutbox, OutboxStatus
from lti_tool.grading.services import Progress, grade_item_for, record_score
from lti_tool.identity.models import Member, ResourceLink
from lti_tool.lti import services
from tests.advantage.helpers import (
    GRADABLE,
    NRPS_SCOPE,
    SCORE_SCOPE,
    add_trainees,
    grade_item_url,
    iso_epoch,
    launched,
    make_due,
    member_of,
    outbox,
    outbox_rows,
    queue_score,
    scores_for,
    token_requests,
    verify_tool_jwt,
)
from tests.conftest import make_user

LINEITEM_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"
ISO_SECONDS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.fixture
def trainee(browser, reg, learner, db) -> int:
    """A learner who launched activity rl-1 (whose launch carried its `lineitem`)."""
    launched(browser, reg, learner)
    return member_of(db, learner.sub)


def lineitem_of(lms, resource_link_id: str = "rl-1") -> str:
    return lms.base_url + f"/ags/course-1/lineitems/{resource_link_id}/lineitem"


def test_a_score_reaches_the_gradebook(browser, lms, reg, learner, trainee, db, config):
    row_id = queue_score(db, trainee, 7, maximum=10, comment="よくできました")
    assert deliver(db, config) == Counter(delivered=1)

    # The token: form-encoded (the test LMS refuses anything else), with a client assertion the
    # LMS checked against the tool's JWKS, for the score scope.
    (request,) = lms.token_requests
    assert request["grant_type"] == "client_credentials"
    assert request["client_assertion_type"] == (
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    )
    assert request["scope"].split() == [SCORE_SCOPE]
    assertion = verify_tool_jwt(
        browser, request["client_assertion"], audience=lms.base_url + "/token"
    )
    assert assertion["iss"] == assertion["sub"] == reg.client_id
    assert assertion["jti"] and 0 < assertion["exp"] - assertion["iat"] <= 300

    # The score: posted to {lineitem}/scores with the line item's query string kept.
    (score,) = lms.scores
    assert score.url == lineitem_of(lms) + "/scores?type_id=1"
    assert score.content_type == "application/vnd.ims.lis.v1.score+json"
    row = outbox(db, row_id)
    assert score.body == {
        "userId": learner.sub,
        "scoreGiven": 7.0,
        "scoreMaximum": 10.0,
        "activityProgress": "Completed",
        "gradingProgress": "FullyGraded",
        "timestamp": score.body["timestamp"],
        "comment": "よくできました",
    }
    assert ISO_SECONDS.match(score.body["timestamp"])
    assert iso_epoch(score.body["timestamp"]) == int(row.score_timestamp.timestamp())
    assert row.status == OutboxStatus.DELIVERED and row.attempts == 1
    assert row.last_status_code == 200 and row.delivered_at is not None
    assert row.claimed_until is None
    # Nothing more is due.
    assert deliver(db, config) == Counter()
    assert len(lms.scores) == 1


def test_the_line_item_is_found_by_resource_link_and_tag(browser, lms, reg, learner, db, config):
    launched(browser, reg, learner, lineitem=False)  # the launch names only `lineitems`
    base = lms.base_url + "/ags/course-1/lineitems"
    decoy = base + "/decoy/lineitem?type_id=1"
    column = base + "/column/lineitem?type_id=1"
    lms.lineitems[decoy] = {
        "id": decoy,
        "resourceLinkId": "rl-1",
        "tag": "other",
        "resourceId": "module:A",
        "scoreMaximum": 10,
        "label": "Other",
    }
    lms.lineitems[column] = {
        "id": column,
        "resourceLinkId": "rl-1",
        "tag": GRADABLE.tag,
        "resourceId": GRADABLE.key,
        "scoreMaximum": 100,
        "label": "A",
    }
    queue_score(db, member_of(db, learner.sub), 80)
    assert deliver(db, config) == Counter(delivered=1)
    assert lms.lineitem_requests == [
        (
            "GET",
            {
                "type_id": "1",
                "resource_link_id": "rl-1",
                "resource_id": GRADABLE.key,
                "tag": GRADABLE.tag,
            },
        )
    ]
    (score,) = lms.scores
    assert score.url == base + "/column/lineitem/scores?type_id=1"
    assert grade_item_url(db) == column
    # Known from now on: the next score goes straight there.
    ((other, _),) = add_trainees(db, 1)
    queue_score(db, other, 60)
    assert deliver(db, config) == Counter(delivered=1)
    assert len(lms.lineitem_requests) == 1
    assert [s.url for s in lms.scores] == [score.url, score.url]


def test_the_line_item_is_created_when_absent(browser, lms, reg, learner, db, config):
    launched(browser, reg, learner, lineitem=False)
    queue_score(db, member_of(db, learner.sub), 55)
    assert deliver(db, config) == Counter(delivered=1)
    assert [method for method, _ in lms.lineitem_requests] == ["GET", "POST"]
    (created,) = lms.lineitems.values()
    assert {
        k: created[k] for k in ("scoreMaximum", "label", "resourceId", "tag", "resourceLinkId")
    } == {
        "scoreMaximum": 100,
        "label": GRADABLE.label,
        "resourceId": GRADABLE.key,
        "tag": GRADABLE.tag,
        "resourceLinkId": "rl-1",
    }
    assert grade_item_url(db) == created["id"]
    (score,) = lms.scores
    path, query = created["id"].split("?")
    assert score.url == f"{path}/scores?{query}"
    # One column, however many scores follow.
    for member_id, _ in add_trainees(db, 3):
        queue_score(db, member_id, 40)
    assert deliver(db, config) == Counter(delivered=3)
    assert len(lms.lineitems) == 1 and len(lms.lineitem_requests) == 2


def test_two_workers_sending_the_first_scores_at_once_create_one_line_item(
    browser, lms, reg, learner, db, config, monkeypatch
):
    launched(browser, reg, learner, lineitem=False)
    ((other, _),) = add_trainees(db, 1)
    first = queue_score(db, member_of(db, learner.sub), 55)
    second = queue_score(db, other, 65)
    # Both workers look for the column before either has created it, unless kept apart.
    looked = threading.Barrier(2, timeout=2)
    real_find = delivery.AgsClient.find_lineitem

    def slow_find(self, *args, **kwargs):
        # Kept apart, the barrier breaks: the other worker is waiting for the lock.
        with contextlib.suppress(threading.BrokenBarrierError):
            looked.wait()
        return real_find(self, *args, **kwargs)

    monkeypatch.setattr(delivery.AgsClient, "find_lineitem", slow_find)
    outcomes: list[Counter[str]] = []
    workers = [
        threading.Thread(target=lambda i=i: outcomes.append(deliver(db, config, ids=[i])))
        for i in (first, second)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert sum(outcomes, Counter()) == Counter(delivered=2)
    assert len(lms.lineitems) == 1
    assert [method for method, _ in lms.lineitem_requests] == ["GET", "POST"]
    (created,) = lms.lineitems.values()
    assert {score.url.split("/scores")[0] for score in lms.scores} == {created["id"].split("?")[0]}


def test_one_token_serves_many_scores(lms, trainee, db, config):
    members = [trainee] + [m for m, _ in add_trainees(db, 24)]
    for member_id in members:
        queue_score(db, member_id, 90)
    total = Counter()
    while outcome := deliver(db, config, limit=10):
        total += outcome
    assert total == Counter(delivered=25)
    assert len(lms.scores) == 25
    assert len(token_requests(lms)) == 1
    # Another process (no token in memory) reuses the token stored in the database.
    with services._memory_lock:
        services._memory.clear()
    queue_score(db, trainee, 95)
    assert deliver(db, config) == Counter(delivered=1)
    assert len(lms.token_requests) == 1


def test_a_server_error_is_retried_after_the_backoff_and_delivered_once(lms, trainee, db, config):
    row_id = queue_score(db, trainee, 70)
    lms.score_failures.append(500)
    assert deliver(db, config) == Counter(retry=1)
    row = outbox(db, row_id)
    assert row.status == OutboxStatus.PENDING and row.attempts == 1
    assert row.last_status_code == 500 and "500" in row.last_error
    assert row.next_attempt_at >= utcnow() + dt.timedelta(seconds=delivery.BASE_BACKOFF - 5)
    # Not before the backoff has passed.
    assert deliver(db, config) == Counter()
    make_due(db, row_id)
    assert deliver(db, config) == Counter(delivered=1)
    row = outbox(db, row_id)
    assert row.status == OutboxStatus.DELIVERED and row.attempts == 2
    assert row.last_error is None
    assert len(lms.scores) == 1 and len(lms.scores.refused) == 1
    assert lms.scores[0].body == lms.scores.refused[0][1]  # the same score, the same timestamp


def test_backoff_grows_with_each_failure(lms, trainee, db, config):
    row_id = queue_score(db, trainee, 70)
    waits = []
    for _ in range(4):
        lms.score_failures.append(503)
        before = utcnow()
        assert deliver(db, config) == Counter(retry=1)
        waits.append((outbox(db, row_id).next_attempt_at - before).total_seconds())
        make_due(db, row_id)
    assert waits == sorted(waits) and waits[-1] >= 4 * waits[0] - 2
    assert deliver(db, config) == Counter(delivered=1)


def test_an_equal_second_timestamp_is_sent_again_later(lms, learner, trainee, db, config):
    row_id = queue_score(db, trainee, 75)
    stamp = outbox(db, row_id).score_timestamp
    # The gradebook already holds a grade stamped with this very second.
    lms.scores.latest[(lineitem_of(lms), learner.sub)] = int(stamp.timestamp())
    assert deliver(db, config) == Counter(retry=1)
    row = outbox(db, row_id)
    assert row.status == OutboxStatus.PENDING and row.last_status_code == 409
    assert row.score_timestamp >= stamp + dt.timedelta(seconds=1)
    assert row.next_attempt_at <= utcnow()  # no backoff: due at once
    assert deliver(db, config) == Counter(delivered=1)
    (score,) = lms.scores
    assert iso_epoch(score.body["timestamp"]) > int(stamp.timestamp())
    assert score.body["scoreGiven"] == 75.0
    assert [status for status, _ in lms.scores.refused] == [409]
    assert outbox(db, row_id).status == OutboxStatus.DELIVERED


def test_a_refused_token_is_renewed_and_the_score_delivered(lms, trainee, db, config):
    queue_score(db, trainee, 50)
    assert deliver(db, config) == Counter(delivered=1)
    lms.issued_tokens.clear()  # the LMS no longer accepts the token the tool holds
    row_id = queue_score(db, trainee, 60)
    assert deliver(db, config) == Counter(delivered=1)
    assert len(token_requests(lms)) == 2
    assert outbox(db, row_id).status == OutboxStatus.DELIVERED
    assert [s.body["scoreGiven"] for s in lms.scores] == [50.0, 60.0]


def test_a_bad_request_is_recorded_with_the_lms_message_and_not_retried(lms, trainee, db, config):
    row_id = queue_score(db, trainee, 65)
    lms.score_failures.append((400, "Incorrect score received: user is not a learner"))
    assert deliver(db, config) == Counter(failed=1)
    row = outbox(db, row_id)
    assert row.status == OutboxStatus.FAILED and row.last_status_code == 400
    assert "Incorrect score received: user is not a learner" in row.last_error
    with db.session_scope() as session:
        session.execute(
            GradeOutbox.__table__.update().values(next_attempt_at=utcnow() - dt.timedelta(days=1))
        )
    assert deliver(db, config) == Counter()
    assert len(lms.scores.refused) == 1 and not lms.scores


def test_a_newer_score_supersedes_an_undelivered_older_one(lms, learner, trainee, db, config):
    first = queue_score(db, trainee, 10)
    lms.score_failures.append((400, "refused"))
    assert deliver(db, config) == Counter(failed=1)
    ids = [first] + [queue_score(db, trainee, score) for score in (20, 30, 40)]
    rows = [outbox(db, i) for i in ids]
    assert [r.status for r in rows] == [OutboxStatus.SUPERSEDED] * 3 + [OutboxStatus.PENDING]
    stamps = [r.score_timestamp for r in rows]
    assert all(b - a >= dt.timedelta(seconds=1) for a, b in pairwise(stamps))
    assert all(s.microsecond == 0 for s in stamps)
    assert deliver(db, config) == Counter(delivered=1)
    assert [s["scoreGiven"] for s in scores_for(lms, learner.sub)] == [40.0]
    # Delivered or not, the next score is stamped later still.
    later = outbox(db, queue_score(db, trainee, 50)).score_timestamp
    assert later - stamps[-1] >= dt.timedelta(seconds=1)


def test_an_older_score_still_in_flight_never_overwrites_a_newer_one(
    lms, learner, trainee, db, config
):
    older = queue_score(db, trainee, 10)
    # A worker has taken the older score and is about to send it...
    (job,) = delivery._load_jobs(db, delivery.claim(db, limit=10, ids=[older]))
    # ...when a newer one is recorded and delivered first.
    newer = queue_score(db, trainee, 90)
    assert deliver(db, config, ids=[newer]) == Counter(delivered=1)
    assert delivery._send(db, config, job) == "retry"  # the LMS answered 409
    assert deliver(db, config) == Counter(superseded=1)
    assert outbox(db, older).status == OutboxStatus.SUPERSEDED
    assert outbox(db, newer).status == OutboxStatus.DELIVERED
    assert [s["scoreGiven"] for s in scores_for(lms, learner.sub)] == [90.0]
    assert deliver(db, config) == Counter()


def test_a_score_that_is_not_final_is_held_and_never_sent(lms, trainee, db, config):
    row_id = queue_score(db, trainee, 30, progress=Progress.PENDING_REVIEW)
    assert outbox(db, row_id).status == OutboxStatus.HELD
    assert deliver(db, config) == Counter()
    assert not lms.scores and not lms.scores.refused


def test_a_held_score_never_cancels_a_final_one_waiting_for_delivery(
    lms, learner, trainee, db, config
):
    final = queue_score(db, trainee, 70)
    held = queue_score(db, trainee, 30, progress=Progress.PENDING_REVIEW)
    newer_held = queue_score(db, trainee, 35, progress=Progress.PENDING_REVIEW)
    assert outbox(db, final).status == OutboxStatus.PENDING
    assert outbox(db, held).status == OutboxStatus.SUPERSEDED
    assert outbox(db, newer_held).status == OutboxStatus.HELD
    assert deliver(db, config) == Counter(delivered=1)
    assert [s["scoreGiven"] for s in scores_for(lms, learner.sub)] == [70.0]
    # The review done: the final score replaces the held one, and is sent.
    reviewed = queue_score(db, trainee, 80)
    assert outbox(db, newer_held).status == OutboxStatus.SUPERSEDED
    assert deliver(db, config) == Counter(delivered=1)
    assert outbox(db, reviewed).status == OutboxStatus.DELIVERED
    assert [s["scoreGiven"] for s in scores_for(lms, learner.sub)] == [70.0, 80.0]


def test_scores_out_of_range_are_refused(trainee, db):
    for score, maximum in ((11, 10), (-1, 10), (0, 0)):
        with pytest.raises(BadRequest):
            queue_score(db, trainee, score, maximum=maximum)
    assert outbox_rows(db) == []


def test_the_roster_token_is_not_the_grades_token(
    app, browser, lms, reg, instructor, trainee, db, config
):
    launched(browser, reg, instructor)  # the instructor's launch syncs the roster (NRPS scope)
    assert app.extensions["tsunagu.after_response"].wait_idle(10)
    queue_score(db, trainee, 88)
    assert deliver(db, config) == Counter(delivered=1)
    assert len(token_requests(lms, NRPS_SCOPE)) == 1
    assert len(token_requests(lms, SCORE_SCOPE)) == 1
    assert all(
        not (NRPS_SCOPE in r["scope"] and SCORE_SCOPE in r["scope"]) for r in lms.token_requests
    )


def test_a_member_of_another_course_gets_no_grade_here(browser, reg, trainee, db):
    stranger = make_user("Learner")
    launched(browser, reg, stranger, course={"id": "course-2"}, resource_link_id="rl-9")
    with db.session_scope() as session:
        member = session.get(Member, member_of(db, stranger.sub, "course-2"))
        link = session.scalars(
            select(ResourceLink).where(ResourceLink.resource_link_id == "rl-1")
        ).one()
        item = grade_item_for(session, link, GRADABLE)
        with pytest.raises(NotFound):
            record_score(session, member, item, 5, 10, Progress.FINAL)
