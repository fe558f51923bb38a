"""Recording who launched, and finding members within their course."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, TypeVar

from sqlalchemy import Select, and_, bindparam, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from lti_tool.db import Direct, Prepared, utcnow
from lti_tool.errors import NotFound
from lti_tool.identity.models import Course, Member, MemberSource, Person, ResourceLink
from lti_tool.lti.launch import Launch
from lti_tool.lti.roles import Role, decode_roles, encode_roles, has_staff_rights


@dataclass(frozen=True)
class LaunchRecord:
    """What a launch resolved to in our tables: ids and the little the landing needs."""

    member_id: int
    course_id: int
    person_id: int
    person_locale: str | None
    resource_link_pk: int | None
    roles: frozenset[Role]
    # For a returning member (`known_launch_of`): whether their row must be written, or already
    # says all this launch would (same roles, active, launched within LAUNCH_MARK_RESOLUTION).
    mark_due: bool = True

    @property
    def is_staff(self) -> bool:
        return has_staff_rights(self.roles)


T = TypeVar("T")

# How fresh a member's "last launch" must be for a launch that changes nothing else to leave
# their row alone: the course overview shows it to the minute, and a trainee who opens one
# activity after another would otherwise rewrite the same row at every click.
LAUNCH_MARK_RESOLUTION = dt.timedelta(seconds=60)


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


def context_key(launch: Launch) -> str:
    """The key of the launch's course: its context, or what stands for one without it."""
    if launch.context is not None:
        return launch.context.id
    # No context claim: scope everything to the resource link (or, failing that, the user).
    return "resource-link:" + (launch.resource_link_id or "user:" + launch.sub)


def _names(launch: Launch) -> dict[str, str]:
    # Names and email are optional; a launch that withholds them keeps what we had.
    given = {
        "name": launch.name,
        "given_name": launch.given_name,
        "family_name": launch.family_name,
        "email": launch.email,
    }
    return {key: value for key, value in given.items() if value is not None}


def _course_values(launch: Launch) -> dict[str, str]:
    values: dict[str, str] = {}
    if launch.context is not None:
        values.update(
            context_id=launch.context.id,
            title=launch.context.title[:500],
            label=launch.context.label[:255],
        )
    if launch.memberships_url:
        values["memberships_url"] = launch.memberships_url
    return values


def _link_values(launch: Launch) -> dict[str, str | None]:
    values: dict[str, str | None] = {"title": launch.resource_link_title[:500]}
    if launch.ags is not None:
        values.update(
            lineitems_url=launch.ags.lineitems,
            lineitem_url=launch.ags.lineitem,
            ags_scopes=" ".join(launch.ags.scopes)[:1000],
        )
    return values


def _changed(row: Any, prefix: str, wanted: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in wanted.items() if getattr(row, prefix + key) != value}


def _known_member_query(with_link: bool) -> Select[Any]:
    """A returning member with their course, person (and resource link), in one query. Built
    once with bind parameters: a launch only binds values."""
    columns: list[Any] = [
        Member.id.label("member_id"),
        Member.roles.label("m_roles"),
        Member.active.label("m_active"),
        Member.source.label("m_source"),
        Member.last_launch_at.label("m_last_launch_at"),
        Course.id.label("course_id"),
        Course.context_id.label("c_context_id"),
        Course.title.label("c_title"),
        Course.label.label("c_label"),
        Course.memberships_url.label("c_memberships_url"),
        Person.id.label("person_id"),
        Person.locale.label("p_locale"),
        Person.name.label("p_name"),
        Person.given_name.label("p_given_name"),
        Person.family_name.label("p_family_name"),
        Person.email.label("p_email"),
    ]
    query = (
        select(*columns)
        .join(Course, Member.course_id == Course.id)
        .join(Person, Member.person_id == Person.id)
        .where(
            Course.deployment_id == bindparam("deployment_pk"),
            Course.context_key == bindparam("context_key"),
            Person.platform_id == bindparam("platform_id"),
            Person.sub == bindparam("sub"),
        )
    )
    if with_link:
        query = query.add_columns(
            ResourceLink.id.label("link_pk"),
            ResourceLink.title.label("l_title"),
            ResourceLink.lineitems_url.label("l_lineitems_url"),
            ResourceLink.lineitem_url.label("l_lineitem_url"),
            ResourceLink.ags_scopes.label("l_ags_scopes"),
        ).join(
            ResourceLink,
            and_(
                ResourceLink.course_id == Course.id,
                ResourceLink.resource_link_id == bindparam("resource_link_id"),
            ),
        )
    return query


_KNOWN_MEMBER_QUERIES = {with_link: _known_member_query(with_link) for with_link in (False, True)}
_KNOWN_MEMBER = {with_link: Prepared(query) for with_link, query in _KNOWN_MEMBER_QUERIES.items()}
# The row's names (its labels), to read the row of the prepared statement by name.
_KNOWN_MEMBER_FIELDS = {
    with_link: [column.name for column in query.selected_columns]
    for with_link, query in _KNOWN_MEMBER_QUERIES.items()
}
_MEMBER_LAUNCHED = Prepared(
    update(Member.__table__)  # type: ignore[arg-type]
    .where(Member.__table__.c.id == bindparam("member_id"))
    .values(
        roles=bindparam("roles"),
        active=True,
        source=MemberSource.LAUNCH,
        last_launch_at=bindparam("now", type_=Member.__table__.c.last_launch_at.type),
    )
)


@dataclass(frozen=True)
class _Changes:
    """What a returning member's launch says anew about their course, person and activity."""

    course: dict[str, Any]
    person: dict[str, Any]
    link: dict[str, Any]

    def __bool__(self) -> bool:
        return bool(self.course or self.person or self.link)


def _known_read(launch: Launch, context_key: str) -> tuple[Prepared, dict[str, Any]]:
    return _KNOWN_MEMBER[launch.resource_link_id is not None], {
        "deployment_pk": launch.deployment_pk,
        "context_key": context_key,
        "platform_id": launch.platform_id,
        "sub": launch.sub,
        "resource_link_id": launch.resource_link_id,
    }


def _known(reader: Direct, launch: Launch, context_key: str) -> tuple[Any, _Changes] | None:
    return _known_of(reader.rows(*_known_read(launch, context_key)), launch)


def _known_of(rows: Sequence[Sequence[Any]], launch: Launch) -> tuple[Any, _Changes] | None:
    """A returning member's row (course, person and resource link with it), and what the
    launch changes of them; None for a member not seen in this course before."""
    if not rows:
        return None
    with_link = launch.resource_link_id is not None
    row = SimpleNamespace(**dict(zip(_KNOWN_MEMBER_FIELDS[with_link], rows[0], strict=True)))
    if launch.context is None and not row.c_title:
        course_values: dict[str, Any] = {"title": launch.resource_link_title[:500]}
    else:
        course_values = _changed(row, "c_", _course_values(launch))
    link_values = _changed(row, "l_", _link_values(launch)) if with_link else {}
    return row, _Changes(course_values, _changed(row, "p_", _names(launch)), link_values)


def _record_of(row: Any, launch: Launch, *, mark_due: bool = True) -> LaunchRecord:
    return LaunchRecord(
        member_id=row.member_id,
        course_id=row.course_id,
        person_id=row.person_id,
        person_locale=row.p_locale,
        resource_link_pk=row.link_pk if launch.resource_link_id is not None else None,
        roles=decode_roles(encode_roles(launch.roles)),
        mark_due=mark_due,
    )


def _mark_due(row: Any, launch: Launch) -> bool:
    """Whether a returning member's row must be written for this launch: not when it already
    says the same roles, active, from a launch less than LAUNCH_MARK_RESOLUTION ago."""
    return not (
        row.m_roles == encode_roles(launch.roles)
        and row.m_active
        and row.m_source == MemberSource.LAUNCH
        and row.m_last_launch_at is not None
        and utcnow() - row.m_last_launch_at < LAUNCH_MARK_RESOLUTION
    )


def _mark_launched(writer: Direct, member_id: int, launch: Launch) -> int:
    """Record the launch on a returning member's row: their roles now, and when."""
    return writer.count(
        _MEMBER_LAUNCHED,
        {"member_id": member_id, "roles": encode_roles(launch.roles), "now": utcnow()},
    )


def known_launch_read(launch: Launch) -> tuple[Prepared, dict[str, Any]]:
    """The read behind `known_launch_of`, for a caller that sends it with reads of its own
    (`Direct.batch`)."""
    return _known_read(launch, context_key(launch))


def known_launch_of(rows: Sequence[Sequence[Any]], launch: Launch) -> LaunchRecord | None:
    """A returning member's launch that tells nothing new of their course, name or activity
    (the common case), from the rows of `known_launch_read`, to be recorded by
    `record_known_launch`; None for any other launch, which `record_launch` records."""
    known = _known_of(rows, launch)
    if known is None or known[1]:
        return None
    return _record_of(known[0], launch, mark_due=_mark_due(known[0], launch))


def record_known_launch(conn: Direct, record: LaunchRecord, launch: Launch) -> bool:
    """Record a launch found by `known_launch_of`, in one UPDATE, or in none when its row
    says it all already (`mark_due`); False if the member is gone."""
    if not record.mark_due:
        return True
    return _mark_launched(conn, record.member_id, launch) == 1


def _refresh_known(session: Session, launch: Launch, context_key: str) -> LaunchRecord | None:
    """A returning member, read in one query and refreshed with plain UPDATEs of only what
    changed; None sends the caller down the general path."""
    reader = Direct.within(session)
    known = _known(reader, launch, context_key)
    if known is None:
        return None
    row, changes = known
    if changes.course:
        session.execute(update(Course).where(Course.id == row.course_id).values(**changes.course))
    if changes.person:
        session.execute(update(Person).where(Person.id == row.person_id).values(**changes.person))
    if changes.link:
        session.execute(
            update(ResourceLink).where(ResourceLink.id == row.link_pk).values(**changes.link)
        )
    _mark_launched(reader, row.member_id, launch)
    return _record_of(row, launch)


def record_launch(session: Session, launch: Launch) -> LaunchRecord:
    """Create or refresh the course, person, member and resource link of a launch."""
    key = context_key(launch)
    known = _refresh_known(session, launch, key)
    if known is not None:
        return known
    course, _ = _get_or_create(
        session, Course, {"deployment_id": launch.deployment_pk, "context_key": key}
    )
    _update(course, **_course_values(launch))
    if launch.context is None and not course.title:
        course.title = launch.resource_link_title[:500]
    person, _ = _get_or_create(
        session, Person, {"platform_id": launch.platform_id, "sub": launch.sub}
    )
    _update(person, **_names(launch))
    member, _ = _get_or_create(session, Member, {"course_id": course.id, "person_id": person.id})
    now = utcnow()
    _update(
        member,
        roles=encode_roles(launch.roles),
        source=MemberSource.LAUNCH,
        last_launch_at=now,
        active=True,
    )
    if member.first_launch_at is None:
        member.first_launch_at = now
    resource_link = None
    if launch.resource_link_id is not None:
        resource_link, _ = _get_or_create(
            session,
            ResourceLink,
            {"course_id": course.id, "resource_link_id": launch.resource_link_id},
        )
        _update(resource_link, **_link_values(launch))
    session.flush()
    return LaunchRecord(
        member_id=member.id,
        course_id=course.id,
        person_id=person.id,
        person_locale=person.locale,
        resource_link_pk=resource_link.id if resource_link else None,
        roles=decode_roles(member.roles),
    )


_MEMBER_IN_COURSE = (
    select(Member)
    .options(joinedload(Member.person), joinedload(Member.course))
    .where(Member.id == bindparam("member_id"), Member.course_id == bindparam("course_id"))
)


def load_member(session: Session, member_id: int, course_id: int) -> Member:
    """The member of a session, always checked against the session's course."""
    member = session.scalars(
        _MEMBER_IN_COURSE, {"member_id": member_id, "course_id": course_id}
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
            select(ResourceLink)
            .where(ResourceLink.course_id == course_id)
            .order_by(ResourceLink.id)
        )
    )


def count_members_by_role(session: Session, course_id: int) -> dict[str, int]:
    rows = session.execute(
        select(Member.roles, func.count())
        .where(Member.course_id == course_id)
        .group_by(Member.roles)
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
