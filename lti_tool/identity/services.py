"""Recording who launched, and finding members within their course."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from lti_tool.db import utcnow
from lti_tool.errors import NotFound
from lti_tool.identity.models import Course, Member, MemberSource, Person, ResourceLink
from lti_tool.lti.launch import Launch
from lti_tool.lti.roles import Role, decode_roles, encode_roles, has_staff_rights


@dataclass(frozen=True)
class LaunchRecord:
    """What a launch resolved to in our tables."""

    member: Member
    course: Course
    person: Person
    resource_link: ResourceLink | None

    @property
    def roles(self) -> frozenset[Role]:
        return decode_roles(self.member.roles)

    @property
    def is_staff(self) -> bool:
        return has_staff_rights(self.roles)


T = TypeVar("T")


def _get_or_create(session: Session, model: type[T], lookup: dict[str, Any]) -> tuple[T, bool]:
    """Find a row by its unique key, or insert it; a concurrent insert of the same key wins."""
    query = select(model).filter_by(**lookup)
    found = session.scalars(query).first()
    if found is not None:
        return found, False
    row = model(**lookup)
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        found = session.scalars(query).first()
        if found is None:
            raise
        return found, False
    return row, True


def _update(row: object, **values: object) -> None:
    """Set only the attributes that changed, so an unchanged launch writes nothing."""
    for name, value in values.items():
        if getattr(row, name) != value:
            setattr(row, name, value)


def record_launch(session: Session, launch: Launch) -> LaunchRecord:
    """Create or refresh the course, person, member and resource link of a launch."""
    if launch.context is not None:
        context_key = launch.context.id
    else:
        # No context claim: scope everything to the resource link (or, failing that, the user).
        context_key = "resource-link:" + (launch.resource_link_id or "user:" + launch.sub)
    course, _ = _get_or_create(
        session, Course, {"deployment_id": launch.deployment_pk, "context_key": context_key}
    )
    if launch.context is not None:
        _update(
            course,
            context_id=launch.context.id,
            title=launch.context.title[:500],
            label=launch.context.label[:255],
        )
    elif not course.title:
        course.title = launch.resource_link_title[:500]
    if launch.memberships_url:
        _update(course, memberships_url=launch.memberships_url)

    person, _ = _get_or_create(session, Person, {"platform_id": launch.platform_id, "sub": launch.sub})
    # Names and email are optional; a launch that withholds them keeps what we had.
    _update(
        person,
        **{
            key: value
            for key, value in {
                "name": launch.name,
                "given_name": launch.given_name,
                "family_name": launch.family_name,
                "email": launch.email,
            }.items()
            if value is not None
        },
    )

    member, created = _get_or_create(session, Member, {"course_id": course.id, "person_id": person.id})
    now = utcnow()
    _update(
        member, roles=encode_roles(launch.roles), source=MemberSource.LAUNCH, last_launch_at=now,
        active=True,
    )
    if member.first_launch_at is None:
        member.first_launch_at = now

    resource_link = None
    if launch.resource_link_id is not None:
        resource_link, _ = _get_or_create(
            session, ResourceLink, {"course_id": course.id, "resource_link_id": launch.resource_link_id}
        )
        _update(resource_link, title=launch.resource_link_title[:500])
        if launch.ags is not None:
            _update(
                resource_link,
                lineitems_url=launch.ags.lineitems,
                lineitem_url=launch.ags.lineitem,
                ags_scopes=" ".join(launch.ags.scopes)[:1000],
            )
    session.flush()
    return LaunchRecord(member=member, course=course, person=person, resource_link=resource_link)


def load_member(session: Session, member_id: int, course_id: int) -> Member:
    """The member of a session, always checked against the session's course."""
    member = session.scalars(
        select(Member)
        .options(joinedload(Member.person), joinedload(Member.course))
        .where(Member.id == member_id, Member.course_id == course_id)
    ).first()
    if member is None:
        raise NotFound("member not found")
    return member


def list_members(session: Session, course_id: int) -> list[Member]:
    return list(
        session.scalars(
            select(Member)
            .options(joinedload(Member.person))
            .where(Member.course_id == course_id)
            .order_by(Member.last_launch_at.desc().nulls_last(), Member.id)
        )
    )


def list_resource_links(session: Session, course_id: int) -> list[ResourceLink]:
    return list(
        session.scalars(
            select(ResourceLink).where(ResourceLink.course_id == course_id).order_by(ResourceLink.id)
        )
    )


def count_members_by_role(session: Session, course_id: int) -> dict[str, int]:
    rows = session.execute(
        select(Member.roles, func.count()).where(Member.course_id == course_id).group_by(Member.roles)
    )
    counts = {"staff": 0, "learners": 0}
    for roles_text, count in rows:
        key = "staff" if has_staff_rights(decode_roles(roles_text)) else "learners"
        counts[key] += count
    return counts


def set_locale(session: Session, person_id: int, platform_id: int, locale: str | None) -> None:
    person = session.scalars(
        select(Person).where(Person.id == person_id, Person.platform_id == platform_id)
    ).first()
    if person is None:
        raise NotFound("person not found")
    person.locale = locale
    session.flush()
