"""Placements (a chosen item with its options, in a course) and open deep-linking requests."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from lti_tool.db import Base, intpk, timestamp, url
from lti_tool.identity.models import Course


class Placement(Base):
    """An item chosen for a course, with the instructor's options. Its opaque `public_id`
    travels in the LMS activity's custom parameters and URL."""

    __tablename__ = "placement"

    id: Mapped[intpk]
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("course.id"))
    item_key: Mapped[str] = mapped_column(String(100))
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_by_member_id: Mapped[int | None] = mapped_column(ForeignKey("member.id"))
    created_at: Mapped[timestamp]

    course: Mapped[Course] = relationship()


class ResourceLinkPlacement(Base):
    """Which placement a resource link (an LMS activity) opens."""

    __tablename__ = "resource_link_placement"

    resource_link_pk: Mapped[int] = mapped_column(ForeignKey("resource_link.id"), primary_key=True)
    placement_id: Mapped[int] = mapped_column(ForeignKey("placement.id"))

    placement: Mapped[Placement] = relationship()


class DeepLinkRequest(Base):
    """A deep-linking request waiting for the instructor's choice (used once)."""

    __tablename__ = "deep_link_request"

    id: Mapped[intpk]
    course_id: Mapped[int] = mapped_column(ForeignKey("course.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("member.id"))
    return_url: Mapped[url]
    data: Mapped[str | None] = mapped_column(String(4096))
    accept_multiple: Mapped[bool]
    created_at: Mapped[timestamp]
    used_at: Mapped[dt.datetime | None]
