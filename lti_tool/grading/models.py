"""Grade items (a gradebook column per graded thing and placement) and the grade outbox."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import Float, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from lti_tool.db import Base, intpk, str_enum, timestamp, url
from lti_tool.identity.models import Course, Member, ResourceLink


class GradeItem(Base):
    """What is graded (`key`, e.g. "module:A" or "quiz:final") in one placement, and the LMS
    line item it goes to once found or created."""

    __tablename__ = "grade_item"
    __table_args__ = (UniqueConstraint("course_id", "resource_link_pk", "key"),)

    id: Mapped[intpk]
    course_id: Mapped[int] = mapped_column(ForeignKey("course.id"))
    resource_link_pk: Mapped[int] = mapped_column(ForeignKey("resource_link.id"))
    key: Mapped[str] = mapped_column(String(100))
    label: Mapped[str] = mapped_column(String(255))
    score_maximum: Mapped[float] = mapped_column(Float)
    tag: Mapped[str] = mapped_column(String(100))
    lineitem_url: Mapped[url | None]
    created_at: Mapped[timestamp]

    course: Mapped[Course] = relationship()
    resource_link: Mapped[ResourceLink] = relationship()


class OutboxStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    DELIVERED = "delivered"
    FAILED = "failed"
    SUPERSEDED = "superseded"
    # Recorded but not final: kept, never sent (a later final score supersedes it).
    HELD = "held"


class GradeOutbox(Base):
    """One score to deliver. Rows are never deleted: they are the grade's history."""

    __tablename__ = "grade_outbox"
    __table_args__ = (
        Index("ix_grade_outbox_due", "status", "next_attempt_at"),
        Index("ix_grade_outbox_member_item", "member_id", "grade_item_id"),
        Index("ix_grade_outbox_course_item", "course_id", "grade_item_id"),
    )

    id: Mapped[intpk]
    course_id: Mapped[int] = mapped_column(ForeignKey("course.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"))
    grade_item_id: Mapped[int] = mapped_column(ForeignKey("grade_item.id"))
    score_given: Mapped[float] = mapped_column(Float)
    score_maximum: Mapped[float] = mapped_column(Float)
    activity_progress: Mapped[str] = mapped_column(String(20))
    grading_progress: Mapped[str] = mapped_column(String(20))
    comment: Mapped[str | None] = mapped_column(Text)
    # The score's timestamp: whole seconds, strictly increasing per member and grade item.
    score_timestamp: Mapped[dt.datetime]
    status: Mapped[OutboxStatus] = mapped_column(
        str_enum(OutboxStatus), default=OutboxStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[dt.datetime]
    # While SENDING: until when the claim holds (a crashed worker's claim then lapses).
    claimed_until: Mapped[dt.datetime | None]
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[timestamp]
    delivered_at: Mapped[dt.datetime | None]

    member: Mapped[Member] = relationship()
    grade_item: Mapped[GradeItem] = relationship()
