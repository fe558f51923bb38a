"""Delivering the grade outbox to the LMS: safe with many workers at once, never losing a grade.

A delivery claims due rows in one short transaction (PostgreSQL: `FOR UPDATE SKIP LOCKED`;
SQLite: the write lock serialises claims), marking them SENDING with a lease; sends each score
with no transaction open; then records the outcome. A worker that dies mid-send leaves its rows
SENDING until the lease lapses, when another worker takes them again; a 409 for a score whose
earlier attempt had no recorded answer (a row taken over from a dead worker) means that attempt
reached the LMS.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, g
from sqlalchemy import Connection, Select, Table, Update, and_, bindparam, or_, select, update
from sqlalchemy.orm import aliased

from lti_tool.after_response import AfterResponse
from lti_tool.config import Config
from lti_tool.db import Database, utcnow
from lti_tool.grading.models import GradeItem, GradeOutbox, OutboxStatus
from lti_tool.identity.models import Course, Member, Person, ResourceLink
from lti_tool.lti.ags import AgsClient, iso_seconds
from lti_tool.lti.models import Deployment, Platform
from lti_tool.lti.services import PlatformRef, ServiceClient, ServiceError

log = logging.getLogger(__name__)

LEASE = dt.timedelta(minutes=2)
BASE_BACKOFF = 30
MAX_BACKOFF = 6 * 3600
MAX_CONFLICT_RETRIES = 5
SUCCESS = {200, 201, 202, 204}


@dataclass(frozen=True)
class Job:
    """Everything one send needs, read in one query and carried outside any transaction."""

    outbox_id: int
    grade_item_id: int
    member_id: int
    attempts: int
    # An earlier attempt went out and its answer was never recorded (its worker died).
    resumed: bool
    platform: PlatformRef
    lineitem_url: str | None
    lineitems_url: str | None
    link_lineitem_url: str | None
    resource_link_id: str
    item_key: str
    item_label: str
    item_tag: str
    item_maximum: float
    score: dict[str, Any]
    score_timestamp: dt.datetime
    superseded: bool


def backoff(attempts: int) -> dt.timedelta:
    return dt.timedelta(seconds=min(BASE_BACKOFF * 2 ** max(attempts - 1, 0), MAX_BACKOFF))


def claim(db: Database, *, limit: int, ids: Iterable[int] | None = None) -> list[int]:
    """Take up to `limit` due rows (or just `ids`, if still due) for this worker."""
    return list(_claim(db, limit=limit, ids=ids))


def _claim(db: Database, *, limit: int, ids: Iterable[int] | None) -> dict[int, bool]:
    """The rows taken, each with whether it was taken over from a worker whose lease lapsed
    (then its last attempt may have reached the LMS without its answer being recorded)."""
    now = utcnow()
    due = or_(
        and_(GradeOutbox.status == OutboxStatus.PENDING, GradeOutbox.next_attempt_at <= now),
        and_(GradeOutbox.status == OutboxStatus.SENDING, GradeOutbox.claimed_until < now),
    )
    with db.session_scope() as session:
        query = select(GradeOutbox.id, GradeOutbox.status).where(due)
        if ids is not None:
            query = query.where(GradeOutbox.id.in_(list(ids)))
        query = query.order_by(GradeOutbox.next_attempt_at, GradeOutbox.id).limit(limit)
        if not db.is_sqlite:
            query = query.with_for_update(skip_locked=True)
        claimed = {row.id: row.status == OutboxStatus.SENDING for row in session.execute(query)}
        if claimed:
            session.execute(
                update(GradeOutbox)
                .where(GradeOutbox.id.in_(list(claimed)))
                .values(
                    status=OutboxStatus.SENDING,
                    claimed_until=now + LEASE,
                    attempts=GradeOutbox.attempts + 1,
                )
            )
    return claimed


def _jobs_query(ids: list[int]) -> Select[*tuple[Any, ...]]:
    newer = aliased(GradeOutbox)
    superseded = (
        select(newer.id)
        .where(
            newer.member_id == GradeOutbox.member_id,
            newer.grade_item_id == GradeOutbox.grade_item_id,
            newer.id > GradeOutbox.id,
            newer.status.not_in([OutboxStatus.SUPERSEDED, OutboxStatus.HELD]),
        )
        .exists()
    )
    return (
        select(
            GradeOutbox.id,
            GradeOutbox.grade_item_id,
            GradeOutbox.member_id,
            GradeOutbox.attempts,
            GradeOutbox.score_given,
            GradeOutbox.score_maximum,
            GradeOutbox.activity_progress,
            GradeOutbox.grading_progress,
            GradeOutbox.comment,
            GradeOutbox.score_timestamp,
            Person.sub,
            GradeItem.lineitem_url,
            GradeItem.key,
            GradeItem.label,
            GradeItem.tag,
            GradeItem.score_maximum.label("item_maximum"),
            ResourceLink.lineitems_url.label("link_lineitems_url"),
            ResourceLink.lineitem_url.label("link_lineitem_url"),
            ResourceLink.resource_link_id,
            Platform.id.label("platform_id"),
            Platform.client_id,
            Platform.auth_token_url,
            Platform.auth_audience,
            superseded.label("superseded"),
        )
        .join(Member, Member.id == GradeOutbox.member_id)
        .join(Person, Person.id == Member.person_id)
        .join(GradeItem, GradeItem.id == GradeOutbox.grade_item_id)
        .join(ResourceLink, ResourceLink.id == GradeItem.resource_link_pk)
        .join(Course, Course.id == GradeOutbox.course_id)
        .join(Deployment, Deployment.id == Course.deployment_id)
        .join(Platform, Platform.id == Deployment.platform_id)
        .where(GradeOutbox.id.in_(ids))
        .order_by(GradeOutbox.id)
    )


def _load_jobs(db: Database, ids: list[int], resumed: Iterable[int] = ()) -> list[Job]:
    """The claimed rows as jobs, in one query (the score, its person, item, link, platform, and
    whether a newer score for the same member and item supersedes it)."""
    taken_over = set(resumed)
    jobs = []
    with db.read_scope() as session:
        for row in session.execute(_jobs_query(ids)):
            score: dict[str, Any] = {
                "userId": row.sub,
                "scoreGiven": row.score_given,
                "scoreMaximum": row.score_maximum,
                "activityProgress": row.activity_progress,
                "gradingProgress": row.grading_progress,
                "timestamp": iso_seconds(row.score_timestamp),
            }
            if row.comment:
                score["comment"] = row.comment
            jobs.append(
                Job(
                    outbox_id=row.id,
                    grade_item_id=row.grade_item_id,
                    member_id=row.member_id,
                    attempts=row.attempts,
                    resumed=row.id in taken_over,
                    platform=PlatformRef(
                        row.platform_id, row.client_id, row.auth_token_url, row.auth_audience
                    ),
                    lineitem_url=row.lineitem_url,
                    lineitems_url=row.link_lineitems_url,
                    link_lineitem_url=row.link_lineitem_url,
                    resource_link_id=row.resource_link_id,
                    item_key=row.key,
                    item_label=row.label,
                    item_tag=row.tag,
                    item_maximum=row.item_maximum,
                    score=score,
                    score_timestamp=row.score_timestamp,
                    superseded=bool(row.superseded),
                )
            )
    return jobs


_OUTBOX: Table = GradeOutbox.__table__  # type: ignore[assignment]


@functools.cache
def _finish_statement(columns: tuple[str, ...]) -> Update:
    # Built once per set of columns: the statement is reused, only its parameters change.
    return (
        update(_OUTBOX)
        .where(_OUTBOX.c.id == bindparam("w_id"), _OUTBOX.c.status == OutboxStatus.SENDING)
        .values({name: bindparam(f"v_{name}", type_=_OUTBOX.c[name].type) for name in columns})
    )


def _finish(db: Database, job: Job, conn: Connection | None = None, **values: Any) -> None:
    """Record an outcome, unless the row is no longer this attempt's (a lapsed lease). Each in
    a short transaction of its own, on the pass's connection when given."""
    values["claimed_until"] = None
    statement = _finish_statement(tuple(sorted(values)))
    params = {"w_id": job.outbox_id, **{f"v_{name}": value for name, value in values.items()}}
    if conn is None:
        with db.engine.begin() as own:
            own.execute(statement, params)
        return
    with conn.begin():
        conn.execute(statement, params)


def _resolve_lineitem(
    db: Database, ags: AgsClient, job: Job, known: dict[int, str | None] | None = None
) -> str | None:
    """The line item URL: known, the launch's own, found by link and tag, or created.
    `known` carries what earlier jobs of the same pass resolved, per grade item."""
    if job.lineitem_url:
        return job.lineitem_url
    if known is not None and job.grade_item_id in known:
        return known[job.grade_item_id]
    url = job.link_lineitem_url
    if url is not None:
        _record_lineitem(db, job.grade_item_id, url)
    elif job.lineitems_url:
        # Found or created by one worker at a time: two workers sending the first scores of
        # an activity at once must not both create its gradebook column.
        try:
            with db.exclusive(f"lineitem:{job.grade_item_id}"):
                url = _find_or_create_lineitem(db, ags, job)
        except TimeoutError:
            raise ServiceError("another worker is still resolving the line item") from None
    if known is not None:
        known[job.grade_item_id] = url
    return url


def _find_or_create_lineitem(db: Database, ags: AgsClient, job: Job) -> str:
    with db.read_scope() as session:
        recorded = session.scalar(
            select(GradeItem.lineitem_url).where(GradeItem.id == job.grade_item_id)
        )
    if recorded:  # another worker got here first
        return recorded
    assert job.lineitems_url is not None
    found = ags.find_lineitem(
        job.lineitems_url,
        resource_link_id=job.resource_link_id,
        resource_id=job.item_key,
        tag=job.item_tag,
    )
    if found is None:
        found = ags.create_lineitem(
            job.lineitems_url,
            {
                "scoreMaximum": job.item_maximum,
                "label": job.item_label,
                "resourceId": job.item_key,
                "tag": job.item_tag,
                "resourceLinkId": job.resource_link_id,
            },
        )
    url = str(found["id"])
    # Recorded before the lock is let go, so the next holder finds it.
    _record_lineitem(db, job.grade_item_id, url)
    return url


def _record_lineitem(db: Database, grade_item_id: int, url: str) -> None:
    with db.session_scope() as session:
        session.execute(
            update(GradeItem).where(GradeItem.id == grade_item_id).values(lineitem_url=url)
        )


def _send(
    db: Database,
    config: Config,
    job: Job,
    known: dict[int, str | None] | None = None,
    conn: Connection | None = None,
) -> str:
    if job.superseded:
        _finish(db, job, conn, status=OutboxStatus.SUPERSEDED)
        return "superseded"
    now = utcnow()
    try:
        client = ServiceClient(db, job.platform, config.secret_key, timeout=config.http_timeout)
        ags = AgsClient(client)
        lineitem = _resolve_lineitem(db, ags, job, known)
        if lineitem is None:
            _finish(
                db,
                job,
                conn,
                status=OutboxStatus.FAILED,
                last_status_code=None,
                last_error="The LMS offers no grade service for this activity.",
            )
            return "failed"
        outcome = ags.post_score(lineitem, job.score)
    except ServiceError as exc:
        if exc.retryable:
            _finish(
                db,
                job,
                conn,
                status=OutboxStatus.PENDING,
                next_attempt_at=now + backoff(job.attempts),
                last_status_code=exc.status or None,
                last_error=str(exc)[:1000],
            )
            return "retry"
        _finish(
            db,
            job,
            conn,
            status=OutboxStatus.FAILED,
            last_status_code=exc.status or None,
            last_error=(f"{exc} {exc.body}".strip())[:2000],
        )
        return "failed"
    return _record_outcome(db, job, outcome.status, outcome.body, now, conn)


def _record_outcome(
    db: Database, job: Job, status: int, body: str, now: dt.datetime, conn: Connection | None = None
) -> str:
    if status in SUCCESS:
        _finish(
            db,
            job,
            conn,
            status=OutboxStatus.DELIVERED,
            delivered_at=now,
            last_status_code=status,
            last_error=None,
        )
        return "delivered"
    if status == 409:
        if job.resumed:
            # The attempt of a worker that died went out and its answer was never recorded:
            # the LMS holds this very score.
            _finish(
                db,
                job,
                conn,
                status=OutboxStatus.DELIVERED,
                delivered_at=now,
                last_status_code=status,
                last_error=None,
            )
            return "delivered"
        if job.attempts <= MAX_CONFLICT_RETRIES:
            # The LMS holds a grade with this second or later: send again a second later.
            later = max(now.replace(microsecond=0), job.score_timestamp + dt.timedelta(seconds=1))
            _finish(
                db,
                job,
                conn,
                status=OutboxStatus.PENDING,
                next_attempt_at=now,
                score_timestamp=later,
                last_status_code=status,
                last_error="timestamp conflict (409); resent later",
            )
            return "retry"
    if status in (401, 408, 409, 429) or status >= 500:
        _finish(
            db,
            job,
            conn,
            status=OutboxStatus.PENDING,
            next_attempt_at=now + backoff(job.attempts),
            last_status_code=status,
            last_error=f"HTTP {status}: {body[:300]}",
        )
        return "retry"
    _finish(
        db,
        job,
        conn,
        status=OutboxStatus.FAILED,
        last_status_code=status,
        last_error=f"HTTP {status}: {body[:1500]}",
    )
    return "failed"


def deliver(
    db: Database, config: Config, *, limit: int = 100, ids: Iterable[int] | None = None
) -> Counter[str]:
    """One pass: claim due rows and send them. Returns counts by outcome."""
    outcomes: Counter[str] = Counter()
    # Sending stops well before the lease lapses (a slow LMS): another worker may then take
    # the rows, and a row this pass sent after that would reach the LMS twice.
    stop_at = utcnow() + LEASE / 2
    claimed = _claim(db, limit=limit, ids=ids)
    if not claimed:
        return outcomes
    jobs = _load_jobs(db, list(claimed), [i for i, taken_over in claimed.items() if taken_over])
    known: dict[int, str | None] = {}
    # One connection for the pass's outcomes (no transaction is open while a score is sent).
    with db.engine.connect() as conn:
        for index, job in enumerate(jobs):
            if utcnow() >= stop_at:
                outcomes["released"] += _release(conn, [j.outbox_id for j in jobs[index:]])
                break
            try:
                outcomes[_send(db, config, job, known, conn)] += 1
            except Exception:
                # Never lose the row: leave it SENDING; its lease lapses and it is tried again.
                log.exception("grade delivery crashed outbox=%s", job.outbox_id)
                outcomes["error"] += 1
    log.info("grade delivery %s", dict(outcomes))
    return outcomes


def _release(conn: Connection, ids: list[int]) -> int:
    """Give back claimed rows this pass did not send: due again at once, for any worker, and
    not counted as an attempt."""
    with conn.begin():
        result = conn.execute(
            update(_OUTBOX)
            .where(_OUTBOX.c.id.in_(ids), _OUTBOX.c.status == OutboxStatus.SENDING)
            .values(
                status=OutboxStatus.PENDING, claimed_until=None, attempts=_OUTBOX.c.attempts - 1
            )
        )
    return int(result.rowcount)


def init_app(app: Flask) -> None:
    """Deliver the scores a request recorded, once its transaction has committed and its
    response is on its way (a failure here only leaves them for the worker)."""
    db: Database = app.extensions["tsunagu.db"]
    config: Config = app.extensions["tsunagu.config"]
    after: AfterResponse = app.extensions["tsunagu.after_response"]

    @app.after_request
    def _schedule(response: Response) -> Response:
        ids = g.pop("grades_to_deliver", None)
        if ids and response.status_code < 400:
            # A failure here only leaves the rows for the worker (`lti-tool grades deliver`).
            def _deliver() -> None:
                deliver(db, config, limit=len(ids), ids=ids)

            after.schedule(response, _deliver, "grade delivery")
        return response
