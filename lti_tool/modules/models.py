"""Reading progress per member and unit, and each course's settings for each module."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from lti_tool.db import Base, intpk, timestamp, utcnow


class UnitProgress(Base):
    """How far a member got in a unit: opened, read to the end, self-check done."""

    __tablename__ = "unit_progress"
    __table_args__ = (
        UniqueConstraint("member_id", "unit_id"),
        Index("ix_unit_progress_course_module", "course_id", "module_id"),
    )

    id: Mapped[intpk]
    course_id: Mapped[int] = mapped_column(ForeignKey("course.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"))
    module_id: Mapped[str] = mapped_column(String(1))
    unit_id: Mapped[str] = mapped_column(String(100))
    opened_at: Mapped[timestamp]
    last_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    read_at: Mapped[dt.datetime | None]
    checked_at: Mapped[dt.datetime | None]
    check_correct: Mapped[int | None]
    check_total: Mapped[int | None]
    # The last self-check answers (question id → option index), to show feedback again.
    check_answers: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    @property
    def completed(self) -> bool:
        return self.checked_at is not None


class ModuleSettings(Base):
    """An instructor's choices for one module in one course; the content files stay the default."""

    __tablename__ = "module_settings"
    __table_args__ = (UniqueConstraint("course_id", "module_id"),)

    id: Mapped[intpk]
    course_id: Mapped[int] = mapped_column(ForeignKey("course.id"))
    module_id: Mapped[str] = mapped_column(String(1))
    # Unit ids in the order to show; units missing here follow in the content's order.
    unit_order: Mapped[list[str] | None] = mapped_column(JSON)
    # Unit ids that count for completion; None means all.
    required_units: Mapped[list[str] | None] = mapped_column(JSON)
    video_urls: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    opens_at: Mapped[dt.datetime | None]
    due_at: Mapped[dt.datetime | None]
    note: Mapped[str | None] = mapped_column(Text)
    send_completion_grade: Mapped[bool] = mapped_column(default=False)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    updated_by_member_id: Mapped[int | None] = mapped_column(ForeignKey("member.id"))
