"""Delivering the grade outbox to the LMS: safe with many workers at once, never losing a grade.

A delivery claims due rows in one short transaction (PostgreSQL: `FOR UPDATE SKIP LOCKED`;
SQLite: the write lock serialises claims), marking them SENDING with a lease; sends each score
with no transaction open; then records the outcome. A worker that dies mid-send leaves its rows
SENDING until the lease lapses, when another worker takes them again; a 409 for a score whose
earlier attempt had no recorded answer means that attempt reached the LMS.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, g
from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import joinedload

from lti_tool.after_response import AfterResponse
from lti_tool.config import Config
from lti_tool.db import Database, utcnow
from lti_tool.grading.models import GradeItem, GradeOutbox, OutboxStatus
from lti_tool.identity.models import Course, Member, ResourceLink
from lti_tool.lti import claims as C
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
    """Everything one send needs, read in one transaction and carried outside it."""

    outbox_id: int
    grade_item_id: int
    member_id: int
    attempts: int
    previous_status: int | None
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
    superseded: bool


def backoff(attempts: int) -> dt.timedelta:
    return dt.timedelta(seconds=min(BASE_BACKOFF * 2 ** max(attempts - 1, 0), MAX_BACKOFF))


def claim(db: Database, *, limit: int, ids: Iterable[int] | None = None) -> list[int]:
    """Take up to `limit` due rows (or just `ids`, if still due) for this worker."""
    now = utcnow()
    due = or_(
        and_(GradeOutbox.status == OutboxStatus.PENDING, GradeOutbox.next_attempt_at <= now),
        and_(GradeOutbox.status == OutboxStatus.SENDING, GradeOutbox.claimed_until < now),
    )
    with db.session_scope() as session:
        query = select(GradeOutbox.id).where(due)
        if ids is not None:
            query = query.where(GradeOutbox.id.in_(list(ids)))
        query = query.order_by(GradeOutbox.next_attempt_at, GradeOutbox.id).limit(limit)
        if not db.is_sqlite:
            query = query.with_for_update(skip_locked=True)
        claimed = list(session.scalars(query))
        if claimed:
            session.execute(
                update(GradeOutbox)
                .where(GradeOutbox.id.in_(claimed))
                .values(
                    status=OutboxStatus.SENDING,
                    claimed_until=now + LEASE,
                    attempts=GradeOutbox.attempts + 1,
                )
            )
    return claimed


def _load_jobs(db: Database, ids: list[int]) -> list[Job]:
    jobs = []
    with db.read_scope() as session:
        rows = session.scalars(
            select(GradeOutbox)
            .options(
                joinedload(GradeOutbox.member).joinedload(Member.person),
                joinedload(GradeOutbox.grade_item).joinedload(GradeItem.resource_link),
            )
            .where(GradeOutbox.id.in_(ids))
        )
        for row in rows:
            item = row.grade_item
            link: ResourceLink = item.resource_link
            platform = session.scalars(
                select(Platform)
                .join(Deployment, Deployment.platform_id == Platform.id)
                .join(Course, Course.deployment_id == Deployment.id)
                .where(Course.id == row.course_id)
            ).one()
            newer = session.scalar(
                select(GradeOutbox.id).where(
                    GradeOutbox.member_id == row.member_id,
                    GradeOutbox.grade_item_id == row.grade_item_id,
                    GradeOutbox.id > row.id,
                    GradeOutbox.status != OutboxStatus.SUPERSEDED,
                    GradeOutbox.status != OutboxStatus.HELD,
                ).limit(1)
            )
            score: dict[str, Any] = {
                "userId": row.member.person.sub,
                "scoreGiven": row.score_given,
                "scoreMaximum": row.score_maximum,
                "activityProgress": row.activity_progress,
                "gradingProgress": row.grading_progress,
                "timestamp": iso_seconds(row.score_timestamp),
            }
            if row.comment:
                score["comment"] = row.comment
            jobs.append(Job(
                outbox_id=row.id, grade_item_id=item.id, member_id=row.member_id,
                attempts=row.attempts, previous_status=row.last_status_code,
                platform=PlatformRef.of(platform), lineitem_url=item.lineitem_url,
                lineitems_url=link.lineitems_url, link_lineitem_url=link.lineitem_url,
                resource_link_id=link.resource_link_id, item_key=item.key,
                item_label=item.label, item_tag=item.tag, item_maximum=item.score_maximum,
                score=score, superseded=newer is not None,
            ))
    return jobs


def _finish(db: Database, job: Job, **values: Any) -> None:
    with db.session_scope() as session:
        session.execute(
            update(GradeOutbox)
            .where(GradeOutbox.id == job.outbox_id, GradeOutbox.status == OutboxStatus.SENDING)
            .values(claimed_until=None, **values)
        )


def _resolve_lineitem(db: Database, ags: AgsClient, job: Job) -> str | None:
    """The line item URL: known, the launch's own, found by link and tag, or created."""
    if job.lineitem_url:
        return job.lineitem_url
    url = job.link_lineitem_url
    if url is None and job.lineitems_url:
        found = ags.find_lineitem(
            job.lineitems_url, resource_link_id=job.resource_link_id, resource_id=job.item_key,
            tag=job.item_tag,
        )
        if found is None:
            found = ags.create_lineitem(job.lineitems_url, {
                "scoreMaximum": job.item_maximum,
                "label": job.item_label,
                "resourceId": job.item_key,
                "tag": job.item_tag,
                "resourceLinkId": job.resource_link_id,
            })
        url = str(found["id"])
    if url is not None:
        with db.session_scope() as session:
            session.execute(
                update(GradeItem).where(GradeItem.id == job.grade_item_id).values(lineitem_url=url)
            )
    return url


def _send(db: Database, config: Config, job: Job) -> str:
    if job.superseded:
        _finish(db, job, status=OutboxStatus.SUPERSEDED)
        return "superseded"
    now = utcnow()
    try:
        client = ServiceClient(db, job.platform, config.secret_key, timeout=config.http_timeout)
        ags = AgsClient(client)
        lineitem = _resolve_lineitem(db, ags, job)
        if lineitem is None:
            _finish(db, job, status=OutboxStatus.FAILED, last_status_code=None,
                    last_error="The LMS offers no grade service for this activity.")
            return "failed"
        outcome = ags.post_score(lineitem, job.score)
    except ServiceError as exc:
        if exc.retryable:
            _finish(db, job, status=OutboxStatus.PENDING, next_attempt_at=now + backoff(job.attempts),
                    last_status_code=exc.status or None, last_error=str(exc)[:1000])
            return "retry"
        _finish(db, job, status=OutboxStatus.FAILED, last_status_code=exc.status or None,
                last_error=(f"{exc} {exc.body}".strip())[:2000])
        return "failed"
    return _record_outcome(db, job, outcome.status, outcome.body, now)


def _record_outcome(db: Database, job: Job, status: int, body: str, now: dt.datetime) -> str:
    if status in SUCCESS:
        _finish(db, job, status=OutboxStatus.DELIVERED, delivered_at=now,
                last_status_code=status, last_error=None)
        return "delivered"
    if status == 409:
        if job.attempts > 1 and job.previous_status is None:
            # An earlier attempt went out and its answer was never recorded: it reached the LMS.
            _finish(db, job, status=OutboxStatus.DELIVERED, delivered_at=now,
                    last_status_code=status, last_error=None)
            return "delivered"
        if job.attempts <= MAX_CONFLICT_RETRIES:
            # The LMS holds a grade with this second or later: send again a second later.
            with db.session_scope() as session:
                row = session.get(GradeOutbox, job.outbox_id)
                assert row is not None
                row.score_timestamp = max(
                    now.replace(microsecond=0), row.score_timestamp + dt.timedelta(seconds=1)
                )
            _finish(db, job, status=OutboxStatus.PENDING, next_attempt_at=now,
                    last_status_code=status, last_error="timestamp conflict (409); resent later")
            return "retry"
    if status in (401, 408, 409, 429) or status >= 500:
        _finish(db, job, status=OutboxStatus.PENDING, next_attempt_at=now + backoff(job.attempts),
                last_status_code=status, last_error=f"HTTP {status}: {body[:300]}")
        return "retry"
    _finish(db, job, status=OutboxStatus.FAILED, last_status_code=status,
            last_error=f"HTTP {status}: {body[:1500]}")
    return "failed"


def deliver(db: Database, config: Config, *, limit: int = 100,
            ids: Iterable[int] | None = None) -> Counter[str]:
    """One pass: claim due rows and send them. Returns counts by outcome."""
    outcomes: Counter[str] = Counter()
    claimed = claim(db, limit=limit, ids=ids)
    if not claimed:
        return outcomes
    for job in _load_jobs(db, claimed):
        try:
            outcomes[_send(db, config, job)] += 1
        except Exception:
            # Never lose the row: leave it SENDING; its lease lapses and it is tried again.
            log.exception("grade delivery crashed outbox=%s", job.outbox_id)
            outcomes["error"] += 1
    log.info("grade delivery %s", dict(outcomes))
    return outcomes


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


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


SCORE_SCOPES = (C.SCOPE_SCORE, C.SCOPE_LINEITEM)
