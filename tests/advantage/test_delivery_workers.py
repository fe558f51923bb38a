"""The outbox with workers that die mid-delivery and workers that run at once: no score lost,
none sent twice. Run on the database under test (SQLite or PostgreSQL), same property on both."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

import pytest
from sqlalchemy import func, select

from lti_tool.db import Database
from lti_tool.grading import delivery
from lti_tool.grading.delivery import deliver
from lti_tool.grading.models import GradeOutbox, OutboxStatus
from lti_tool.grading.services import Gradable, Progress, grade_item_for, record_score
from lti_tool.identity.models import Member, ResourceLink
from tests.advantage.helpers import (
    add_trainees,
    lapse_leases,
    launched,
    make_due,
    member_of,
    outbox_rows,
    queue_score,
)


class Killed(BaseException):
    """The worker process dies (SIGKILL, OOM): nothing after this point runs."""


@pytest.fixture
def course(browser, reg, learner, db) -> None:
    launched(browser, reg, learner)


def statuses(db: Database) -> Counter[str]:
    return Counter(row.status.value for row in outbox_rows(db))


def received_per_user(lms) -> Counter[str]:
    return Counter(score.body["userId"] for score in lms.scores)


def kill_after(monkeypatch, sends: int) -> None:
    """The worker dies once `sends` scores have gone out, before recording the last one's answer."""
    original = delivery._record_outcome
    calls = {"n": 0}

    def _record(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == sends:
            raise Killed
        return original(*args, **kwargs)

    monkeypatch.setattr(delivery, "_record_outcome", _record)


def test_a_worker_killed_mid_delivery_loses_nothing_and_doubles_nothing(
    monkeypatch, lms, course, db, config
):
    trainees = add_trainees(db, 6)
    for member_id, _ in trainees:
        queue_score(db, member_id, 80)
    kill_after(monkeypatch, sends=3)
    with pytest.raises(Killed):
        deliver(db, config)
    monkeypatch.undo()
    # Two answers were recorded; the third score reached the LMS but its answer was lost; the
    # worker never got to the other three.
    assert len(lms.scores) == 3
    assert statuses(db) == Counter(delivered=2, sending=4)
    # Another worker leaves the dead one's rows alone while its lease holds...
    assert deliver(db, config) == Counter()
    # ...and takes them once it has lapsed.
    lapse_leases(db)
    assert deliver(db, config) == Counter(delivered=4)
    assert statuses(db) == Counter(delivered=6)
    assert received_per_user(lms) == Counter({sub: 1 for _, sub in trainees})
    # The score already received was offered again and refused as not newer (409): delivered.
    assert [status for status, _ in lms.scores.refused] == [409]
    assert deliver(db, config) == Counter()


def test_a_worker_killed_after_an_earlier_failure_still_doubles_nothing(
    monkeypatch, lms, learner, course, db, config
):
    row_id = queue_score(db, member_of(db, learner.sub), 80)
    lms.score_failures.append(503)
    assert deliver(db, config) == Counter(retry=1)  # attempt 1: the LMS was unavailable
    make_due(db, row_id)
    kill_after(monkeypatch, sends=1)  # attempt 2 reaches the LMS; the worker dies
    with pytest.raises(Killed):
        deliver(db, config)
    monkeypatch.undo()
    lapse_leases(db)
    total = Counter()
    while outcome := deliver(db, config):  # attempt 3: refused as not newer
        total += outcome
        make_due(db)
    assert total == Counter(delivered=1)
    assert len(lms.scores) == 1 and [s for s, _ in lms.scores.refused] == [503, 409]
    assert statuses(db) == Counter(delivered=1)


def test_a_worker_killed_before_sending_leaves_the_rows_for_the_next(
    monkeypatch, lms, course, db, config
):
    trainees = add_trainees(db, 3)
    for member_id, _ in trainees:
        queue_score(db, member_id, 60)

    def _die(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise Killed

    monkeypatch.setattr(delivery, "_load_jobs", _die)
    with pytest.raises(Killed):
        deliver(db, config)
    monkeypatch.undo()
    assert statuses(db) == Counter(sending=3) and not lms.scores
    lapse_leases(db)
    assert deliver(db, config) == Counter(delivered=3)
    assert received_per_user(lms) == Counter({sub: 1 for _, sub in trainees})
    assert not lms.scores.refused


def test_a_newer_score_recorded_while_a_worker_was_dead_wins(
    monkeypatch, lms, learner, course, db, config
):
    member_id = member_of(db, learner.sub)
    queue_score(db, member_id, 10)
    kill_after(monkeypatch, sends=1)  # the old score reaches the LMS; its answer is lost
    with pytest.raises(Killed):
        deliver(db, config)
    monkeypatch.undo()
    queue_score(db, member_id, 70)
    lapse_leases(db)
    total = Counter()
    while outcome := deliver(db, config):
        total += outcome
    assert total == Counter(delivered=1, superseded=1)
    assert [s.body["scoreGiven"] for s in lms.scores] == [10.0, 70.0]
    assert statuses(db) == Counter(delivered=1, superseded=1)


def _queue_many(db: Database, count: int) -> list[tuple[int, str]]:
    """`count` scores, one per trainee, on two graded items (one transaction)."""
    trainees = add_trainees(db, count)
    items = [
        Gradable(key=f"module:{m}", label=m, score_maximum=100, tag="module-completion")
        for m in "AB"
    ]
    with db.session_scope() as session:
        link = session.scalars(
            select(ResourceLink).where(ResourceLink.resource_link_id == "rl-1")
        ).one()
        graded = [grade_item_for(session, link, g) for g in items]
        for index, (member_id, _) in enumerate(trainees):
            member = session.get(Member, member_id)
            record_score(session, member, graded[index % 2], index % 101, 100, Progress.FINAL)
    return trainees


def _run_workers(workers: list[Callable[[], Counter[str]]]) -> list[Counter[str]]:
    start = threading.Barrier(len(workers))
    results: list[Counter[str] | BaseException] = [Counter() for _ in workers]

    def _run(index: int) -> None:
        try:
            start.wait(10)
            results[index] = workers[index]()
        except BaseException as exc:  # reported below
            results[index] = exc

    threads = [threading.Thread(target=_run, args=(i,)) for i in range(len(workers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(thread.is_alive() for thread in threads), "a worker hangs"
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results  # type: ignore[return-value]


def test_two_workers_at_once_deliver_each_score_exactly_once(lms, course, database_url, config, db):
    trainees = _queue_many(db, 200)
    engines = [Database(database_url) for _ in range(2)]  # as two worker processes

    def worker(own: Database) -> Callable[[], Counter[str]]:
        def _loop() -> Counter[str]:
            total: Counter[str] = Counter()
            while outcome := deliver(own, config, limit=15):
                total += outcome
            return total

        return _loop

    try:
        results = _run_workers([worker(e) for e in engines])
    finally:
        for engine in engines:
            engine.engine.dispose()
    assert sum(results, Counter()) == Counter(delivered=200)
    assert statuses(db) == Counter(delivered=200)
    assert received_per_user(lms) == Counter({sub: 1 for _, sub in trainees})
    assert not lms.scores.refused
    with db.session_scope() as session:
        # Each row was claimed once: no worker took a row another held.
        assert session.scalar(select(func.max(GradeOutbox.attempts))) == 1


def test_two_workers_racing_for_the_same_rows_never_double_send(
    lms, course, database_url, config, db
):
    trainees = _queue_many(db, 40)
    ids = [row.id for row in outbox_rows(db)]
    engines = [Database(database_url) for _ in range(3)]
    try:
        # Every worker asks for exactly the same rows (as inline delivery after a request and
        # the worker process can): each row goes to one of them.
        results = _run_workers(
            [lambda e=e: deliver(e, config, limit=len(ids), ids=ids) for e in engines]
        )
    finally:
        for engine in engines:
            engine.engine.dispose()
    assert sum(results, Counter()) == Counter(delivered=40)
    assert received_per_user(lms) == Counter({sub: 1 for _, sub in trainees})
    assert statuses(db) == Counter({OutboxStatus.DELIVERED.value: 40})


def test_a_pass_slower_than_its_lease_gives_back_what_it_did_not_send(
    monkeypatch, lms, course, db, config
):
    """A slow LMS (every request near the timeout) must not let a pass outlive its lease: rows
    it has not sent by then would be taken by another worker and sent twice."""
    trainees = add_trainees(db, 4)
    for member_id, _ in trainees:
        queue_score(db, member_id, 50)
    clock = {"now": delivery.utcnow()}
    monkeypatch.setattr(delivery, "utcnow", lambda: clock["now"])
    original = delivery._send

    def _slow_send(*args, **kwargs):  # type: ignore[no-untyped-def]
        outcome = original(*args, **kwargs)
        clock["now"] += delivery.LEASE / 3  # each score takes a third of the lease
        return outcome

    monkeypatch.setattr(delivery, "_send", _slow_send)
    first = deliver(db, config)
    monkeypatch.undo()
    sent = first["delivered"]
    assert 0 < sent < 4 and first["released"] == 4 - sent
    # What was not sent is due again at once, for any worker, and not counted as an attempt.
    rows = outbox_rows(db)
    assert Counter(r.status.value for r in rows) == Counter(delivered=sent, pending=4 - sent)
    assert all(
        r.attempts == 0 and r.claimed_until is None
        for r in rows
        if r.status == OutboxStatus.PENDING
    )
    assert deliver(db, config) == Counter(delivered=4 - sent)
    assert received_per_user(lms) == Counter({sub: 1 for _, sub in trainees})
