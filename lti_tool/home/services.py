"""What the landing pages show, always within the session's course."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from flask import url_for
from sqlalchemy import Table, bindparam, select
from sqlalchemy.orm import Session

from lti_tool.catalog.model import Catalog
from lti_tool.db import Direct, Prepared
from lti_tool.errors import NotFound
from lti_tool.identity import services as identity
from lti_tool.identity.models import Course, Member, Person, ResourceLink, display_name_of
from lti_tool.modules.services import ModulePage, course_modules_of, course_modules_reads
from lti_tool.web.context import own_page_url
from lti_tool.web.session import ToolSession


def landing_endpoint(tool_session: ToolSession) -> str:
    return "home.overview" if tool_session.is_staff else "home.course"


@dataclass(frozen=True)
class CourseHome:
    course_title: str
    reader_name: str | None
    # The activity launched from: its title ("" if it has none), or None for no activity.
    activity_title: str | None
    modules: list[ModulePage]


@dataclass(frozen=True)
class CourseOverview:
    member: Member
    members: list[Member]
    counts: dict[str, int]
    activities: list[ResourceLink]


_MEMBER = cast(Table, Member.__table__)
_COURSE = cast(Table, Course.__table__)
_PERSON = cast(Table, Person.__table__)
_LINK = cast(Table, ResourceLink.__table__)
# The member (always within the session's course), their name, the course and the activity,
# in one query built once.
_COURSE_HOME = Prepared(
    select(
        _COURSE.c.title,
        _COURSE.c.label,
        _PERSON.c.name,
        _PERSON.c.given_name,
        _PERSON.c.family_name,
        _LINK.c.id.label("link_pk"),
        _LINK.c.title.label("link_title"),
    )
    .select_from(
        _MEMBER.join(_COURSE, _COURSE.c.id == _MEMBER.c.course_id)
        .join(_PERSON, _PERSON.c.id == _MEMBER.c.person_id)
        .outerjoin(
            _LINK,
            (_LINK.c.id == bindparam("link_pk")) & (_LINK.c.course_id == _MEMBER.c.course_id),
        )
    )
    .where(_MEMBER.c.id == bindparam("member_id"), _MEMBER.c.course_id == bindparam("course_id"))
)


def course_home(reader: Direct, catalog: Catalog, tool_session: ToolSession) -> CourseHome:
    """The course home's reads, sent together (one round trip on PostgreSQL)."""
    home, *modules = reader.batch(
        (
            _COURSE_HOME,
            {
                "member_id": tool_session.member_id,
                "course_id": tool_session.course_id,
                "link_pk": tool_session.resource_link_pk,
            },
        ),
        *course_modules_reads(tool_session),
    )
    if not home:
        raise NotFound("member not found")
    title, label, name, given_name, family_name, link_pk, link_title = home[0]
    return CourseHome(
        course_title=title or label,
        reader_name=display_name_of(name, given_name, family_name),
        activity_title=(link_title or "") if link_pk is not None else None,
        modules=course_modules_of(catalog, tool_session, modules),
    )


def course_overview(session: Session, tool_session: ToolSession) -> CourseOverview:
    member = identity.load_member(session, tool_session.member_id, tool_session.course_id)
    return CourseOverview(
        member=member,
        members=identity.list_members(session, tool_session.course_id),
        counts=identity.count_members_by_role(session, tool_session.course_id),
        activities=identity.list_resource_links(session, tool_session.course_id),
    )


def choose_language(session: Session, tool_session: ToolSession, locale: str) -> ToolSession:
    identity.set_locale(session, tool_session.person_id, tool_session.platform_id, locale)
    return tool_session.with_locale(locale)


def safe_next(next_path: str | None, tool_session: ToolSession) -> str:
    """Back to one of our own pages, rebuilt from the URL map (never a URL taken as given)."""
    return own_page_url(next_path or "") or url_for(landing_endpoint(tool_session))
