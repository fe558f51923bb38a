"""Courses, people and their memberships; every learner record hangs off a course."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from lti_tool.db import Base, intpk, str255, str_enum, timestamp, url, utcnow
from lti_tool.lti.models import Deployment, Platform


class Course(Base):
    """An LTI context within a deployment. A launch without a context claim gets a course of its
    own keyed by its resource link, so its records are still scoped."""

    __tablename__ = "course"
    __table_args__ = (UniqueConstraint("deployment_id", "context_key"),)

    id: Mapped[intpk]
    deployment_id: Mapped[int] = mapped_column(ForeignKey("lti_deployment.id"))
    # The context id, or "resource-link:<id>" for a launch without a context.
    context_key: Mapped[str] = mapped_column(String(300))
    context_id: Mapped[str | None] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(String(500), default="")
    label: Mapped[str] = mapped_column(String(255), default="")
    memberships_url: Mapped[url | None]
    roster_synced_at: Mapped[dt.datetime | None]
    created_at: Mapped[timestamp]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    deployment: Mapped[Deployment] = relationship()

    @property
    def display_title(self) -> str:
        return self.title or self.label


def display_name_of(name: str | None, given: str | None, family: str | None) -> str | None:
    """A person's name as platforms give it: the full name, else given and family names."""
    if name:
        return name
    parts = [part for part in (given, family) if part]
    return " ".join(parts) or None


class Person(Base):
    """A user of one platform. Names and email are optional: platforms may withhold them."""

    __tablename__ = "person"
    __table_args__ = (UniqueConstraint("platform_id", "sub"),)

    id: Mapped[intpk]
    platform_id: Mapped[int] = mapped_column(ForeignKey("lti_platform.id"))
    sub: Mapped[str255]
    name: Mapped[str | None] = mapped_column(String(500))
    given_name: Mapped[str | None] = mapped_column(String(255))
    family_name: Mapped[str | None] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(320))
    # The reader's own language choice; None follows the launch locale.
    locale: Mapped[str | None] = mapped_column(String(16))
    # Reading aids, remembered per person: furigana over kanji, and easy Japanese where offered.
    show_furigana: Mapped[bool] = mapped_column(default=True)
    easy_japanese: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[timestamp]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    platform: Mapped[Platform] = relationship()

    @property
    def display_name(self) -> str | None:
        return display_name_of(self.name, self.given_name, self.family_name)


class MemberSource(StrEnum):
    LAUNCH = "launch"
    ROSTER = "roster"


class Member(Base):
    """A person in a course, with the roles the platform gave them there."""

    __tablename__ = "member"
    __table_args__ = (UniqueConstraint("course_id", "person_id"),)

    id: Mapped[intpk]
    course_id: Mapped[int] = mapped_column(ForeignKey("course.id"))
    person_id: Mapped[int] = mapped_column(ForeignKey("person.id"))
    # Space-separated `Role` values (see identity.roles.encode_roles).
    roles: Mapped[str] = mapped_column(String(255), default="")
    source: Mapped[MemberSource] = mapped_column(
        str_enum(MemberSource), default=MemberSource.LAUNCH
    )
    # False once the platform's roster lists the member as inactive or no longer lists them.
    active: Mapped[bool] = mapped_column(default=True)
    first_launch_at: Mapped[dt.datetime | None]
    last_launch_at: Mapped[dt.datetime | None]
    created_at: Mapped[timestamp]

    course: Mapped[Course] = relationship()
    person: Mapped[Person] = relationship()


class ResourceLink(Base):
    """A placement of the tool in a course (a Moodle activity), with its AGS endpoints."""

    __tablename__ = "resource_link"
    __table_args__ = (UniqueConstraint("course_id", "resource_link_id"),)

    id: Mapped[intpk]
    course_id: Mapped[int] = mapped_column(ForeignKey("course.id"))
    resource_link_id: Mapped[str255]
    title: Mapped[str] = mapped_column(String(500), default="")
    lineitems_url: Mapped[url | None]
    lineitem_url: Mapped[url | None]
    ags_scopes: Mapped[str] = mapped_column(String(1000), default="")
    created_at: Mapped[timestamp]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    course: Mapped[Course] = relationship()
