"""Test settings per course, attempts with the exact questions they drew, answers, and
accommodations."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from lti_tool.db import Base, intpk, str_enum, timestamp, utcnow
from lti_tool.identity.models import Member


class GradingRule(StrEnum):
    BEST = "best"
    LAST = "last"


class ReviewPolicy(StrEnum):
    IMMEDIATELY = "immediately"
    AFTER_CLOSE = "after_close"
    NEVER = "never"


class AttemptStatus(StrEnum):
    OPEN = "open"
    SUBMITTED = "submitted"


class QuizSettings(Base):
    __tablename__ = "quiz_settings"
    __table_args__ = (UniqueConstraint("course_id"),)

    id: Mapped[intpk]
    course_id: Mapped[int] = mapped_column(ForeignKey("course.id"))
    # Questions drawn per competency area, e.g. {"A": 8, "B": 8, ...}.
    questions_per_area: Mapped[dict[str, int]] = mapped_column(JSON)
    shuffle_questions: Mapped[bool] = mapped_column(default=True)
    shuffle_options: Mapped[bool] = mapped_column(default=True)
    time_limit_minutes: Mapped[int] = mapped_column(default=60)
    attempts_allowed: Mapped[int] = mapped_column(default=2)
    pass_percent: Mapped[int] = mapped_column(default=70)
    grading_rule: Mapped[GradingRule] = mapped_column(
        str_enum(GradingRule), default=GradingRule.BEST
    )
    review_policy: Mapped[ReviewPolicy] = mapped_column(
        str_enum(ReviewPolicy), default=ReviewPolicy.AFTER_CLOSE
    )
    questions_per_page: Mapped[int] = mapped_column(default=5)
    opens_at: Mapped[dt.datetime | None]
    closes_at: Mapped[dt.datetime | None]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    updated_by_member_id: Mapped[int | None] = mapped_column(ForeignKey("member.id"))


class Attempt(Base):
    __tablename__ = "quiz_attempt"
    __table_args__ = (
        UniqueConstraint("member_id", "number"),
        # One open attempt per trainee, enforced by the database.
        Index(
            "ix_quiz_attempt_one_open",
            "member_id",
            unique=True,
            postgresql_where=text("status = 'open'"),
            sqlite_where=text("status = 'open'"),
        ),
        Index("ix_quiz_attempt_course", "course_id", "status"),
    )

    id: Mapped[intpk]
    course_id: Mapped[int] = mapped_column(ForeignKey("course.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"))
    number: Mapped[int]
    status: Mapped[AttemptStatus] = mapped_column(
        str_enum(AttemptStatus), default=AttemptStatus.OPEN
    )
    started_at: Mapped[timestamp]
    # The server-side timer: answers are accepted until this moment plus a short grace.
    deadline_at: Mapped[dt.datetime]
    submitted_at: Mapped[dt.datetime | None]
    auto_submitted: Mapped[bool] = mapped_column(default=False)
    # [{"id", "version", "snapshot", "order"}]: the exact questions drawn, in the order shown.
    questions: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    score: Mapped[float | None] = mapped_column(Float)
    max_score: Mapped[float | None] = mapped_column(Float)
    percent: Mapped[float | None] = mapped_column(Float)
    passed: Mapped[bool | None]
    pass_percent: Mapped[int]
    regraded_at: Mapped[dt.datetime | None]

    member: Mapped[Member] = relationship()


class AttemptAnswer(Base):
    __tablename__ = "quiz_answer"
    __table_args__ = (UniqueConstraint("attempt_id", "question_id"),)

    id: Mapped[intpk]
    attempt_id: Mapped[int] = mapped_column(ForeignKey("quiz_attempt.id", ondelete="CASCADE"))
    question_id: Mapped[str] = mapped_column(String(60))
    response: Mapped[Any | None] = mapped_column(JSON)
    flagged: Mapped[bool] = mapped_column(default=False)
    points: Mapped[float | None] = mapped_column(Float)
    saved_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Accommodation(Base):
    """Extra time or attempts granted to one trainee, with the reason (kept as a record)."""

    __tablename__ = "quiz_accommodation"

    id: Mapped[intpk]
    course_id: Mapped[int] = mapped_column(ForeignKey("course.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"))
    extra_minutes: Mapped[int] = mapped_column(default=0)
    extra_attempts: Mapped[int] = mapped_column(default=0)
    reason: Mapped[str] = mapped_column(Text)
    granted_by_member_id: Mapped[int] = mapped_column(ForeignKey("member.id"))
    created_at: Mapped[timestamp]

    member: Mapped[Member] = relationship(foreign_keys=[member_id])
