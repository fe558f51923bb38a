"""What the landing pages show, always within the session's course."""

from __future__ import annotations

from dataclasses import dataclass

from flask import url_for
from sqlalchemy.orm import Session

from lti_tool.catalog.model import Catalog
from lti_tool.identity import services as identity
from lti_tool.identity.models import Member, ResourceLink
from lti_tool.modules.services import ModulePage, course_modules
from lti_tool.web.context import own_page_url
from lti_tool.web.session import ToolSession


def landing_endpoint(tool_session: ToolSession) -> str:
    return "home.overview" if tool_session.is_staff else "home.course"


@dataclass(frozen=True)
class CourseHome:
    member: Member
    activity: ResourceLink | None
    modules: list[ModulePage]


@dataclass(frozen=True)
class CourseOverview:
    member: Member
    members: list[Member]
    counts: dict[str, int]
    activities: list[ResourceLink]


def course_home(session: Session, catalog: Catalog, tool_session: ToolSession) -> CourseHome:
    member = identity.load_member(session, tool_session.member_id, tool_session.course_id)
    activity = None
    if tool_session.resource_link_pk is not None:
        activity = session.get(ResourceLink, tool_session.resource_link_pk)
        if activity is not None and activity.course_id != tool_session.course_id:
            activity = None
    return CourseHome(
        member=member, activity=activity, modules=course_modules(session, catalog, tool_session)
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
