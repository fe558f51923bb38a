"""Recording scores into the outbox, and what instructors see of their delivery."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum

from flask import g, has_request_context
from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session, joinedload

from lti_tool.db import utcnow
from lti_tool.errors import BadRequest, NotFound
from lti_tool.grading.models import GradeItem, GradeOutbox, OutboxStatus
from lti_tool.identity.models import Member, ResourceLink


class Progress(StrEnum):
    """Only a final grade is ever sent: Moodle erases the grade for anything but FullyGraded."""

    FINAL = "final"
    PENDING_REVIEW = "pending_review"


@dataclass(frozen=True)
class Gradable:
    """What a feature grades: a stable key, a label, a maximum, and a tag for the line item."""

    key: str
    label: str
    score_maximum: float
    tag: str


def grade_item_for(session: Session, resource_link: ResourceLink, gradable: Gradable) -> GradeItem:
    item = session.scalars(
        select(GradeItem).where(
            GradeItem.course_id == resource_link.course_id,
            GradeItem.resource_link_pk == resource_link.id,
            GradeItem.key == gradable.key,
        )
    ).first()
    if item is None:
        item = GradeItem(
            course_id=resource_link.course_id,
            resource_link_pk=resource_link.id,
            key=gradable.key,
            label=gradable.label[:255],
            score_maximum=gradable.score_maximum,
            tag=gradable.tag[:100],
        )
        session.add(item)
        session.flush()
    return item


def _whole_second(moment: dt.datetime) -> dt.datetime:
    return moment.replace(microsecond=0)


def record_score(
    session: Session,
    member: Member,
    item: GradeItem,
    score: float,
    maximum: float,
    progress: Progress,
    comment: str | None = None,
    *,
    only_if_changed: bool = False,
) -> GradeOutbox | None:
    """Queue a score in the caller's transaction. A newer score supersedes an undelivered older
    one; timestamps strictly increase per member and item, at least a second apart."""
    if member.course_id != item.course_id:
        raise NotFound("grade item not in the member's course")
    if not 0 <= score <= maximum or maximum <= 0:
        raise BadRequest("score out of range", log_detail=f"score {score} of {maximum}")
    if only_if_changed:
        latest = session.scalars(
            select(GradeOutbox)
            .where(GradeOutbox.member_id == member.id, GradeOutbox.grade_item_id == item.id)
            .order_by(GradeOutbox.id.desc())
            .limit(1)
        ).first()
        if (
            latest is not None
            and latest.status != OutboxStatus.FAILED
            and latest.score_given == float(score)
            and latest.score_maximum == float(maximum)
            and (latest.status == OutboxStatus.HELD) == (progress != Progress.FINAL)
        ):
            return None
    last = session.scalar(
        select(func.max(GradeOutbox.score_timestamp)).where(
            GradeOutbox.member_id == member.id, GradeOutbox.grade_item_id == item.id
        )
    )
    now = _whole_second(utcnow())
    stamp = now if last is None else max(now, _whole_second(last) + dt.timedelta(seconds=1))
    # A final score replaces whatever waits; a score not yet final (held, never sent) replaces
    # only older held ones: a final score waiting for delivery still goes, as it would have had
    # delivery been quicker (the same rule as delivery's, see delivery._jobs_query).
    replaced = (
        [OutboxStatus.PENDING, OutboxStatus.FAILED, OutboxStatus.HELD]
        if progress == Progress.FINAL
        else [OutboxStatus.HELD]
    )
    session.execute(
        update(GradeOutbox)
        .where(
            GradeOutbox.member_id == member.id,
            GradeOutbox.grade_item_id == item.id,
            GradeOutbox.status.in_(replaced),
        )
        .values(status=OutboxStatus.SUPERSEDED)
    )
    row = GradeOutbox(
        course_id=member.course_id,
        member_id=member.id,
        grade_item_id=item.id,
        score_given=float(score),
        score_maximum=float(maximum),
        activity_progress="Completed",
        grading_progress="FullyGraded",
        comment=(comment or None) and comment[:4000],
        score_timestamp=stamp,
        status=OutboxStatus.PENDING if progress == Progress.FINAL else OutboxStatus.HELD,
        next_attempt_at=now,
    )
    session.add(row)
    session.flush()
    if row.status == OutboxStatus.PENDING and has_request_context():
        # Delivered straight after the request commits (see grading.delivery.init_app).
        g.setdefault("grades_to_deliver", []).append(row.id)
    return row


@dataclass(frozen=True)
class GradeRow:
    member: Member
    outbox: GradeOutbox


def latest_grades(session: Session, course_id: int, item_id: int) -> list[GradeRow]:
    """Each member's latest score for one grade item of the course, with its sync state."""
    latest = (
        select(GradeOutbox.member_id, func.max(GradeOutbox.id).label("latest_id"))
        .where(GradeOutbox.course_id == course_id, GradeOutbox.grade_item_id == item_id)
        .group_by(GradeOutbox.member_id)
        .subquery()
    )
    rows = session.scalars(
        select(GradeOutbox)
        .join(latest, and_(GradeOutbox.id == latest.c.latest_id))
        .options(joinedload(GradeOutbox.member).joinedload(Member.person))
        .where(GradeOutbox.course_id == course_id)
        .order_by(GradeOutbox.member_id)
    )
    return [GradeRow(member=row.member, outbox=row) for row in rows]


def grade_items(session: Session, course_id: int) -> list[GradeItem]:
    return list(
        session.scalars(
            select(GradeItem)
            .options(joinedload(GradeItem.resource_link))
            .where(GradeItem.course_id == course_id)
            .order_by(GradeItem.id)
        )
    )


def grade_item_in_course(session: Session, course_id: int, item_id: int) -> GradeItem:
    item = session.scalars(
        select(GradeItem).where(GradeItem.id == item_id, GradeItem.course_id == course_id)
    ).first()
    if item is None:
        raise NotFound("grade item not found")
    return item


def resend(session: Session, course_id: int, item_id: int, member_id: int | None) -> int:
    """Queue the latest score again (one member, or all) with a fresh timestamp."""
    item = grade_item_in_course(session, course_id, item_id)
    count = 0
    for row in latest_grades(session, course_id, item.id):
        if member_id is not None and row.member.id != member_id:
            continue
        if row.outbox.status in (OutboxStatus.PENDING, OutboxStatus.SENDING, OutboxStatus.HELD):
            continue
        record_score(
            session,
            row.member,
            item,
            row.outbox.score_given,
            row.outbox.score_maximum,
            Progress.FINAL,
            row.outbox.comment,
        )
        count += 1
    return count
