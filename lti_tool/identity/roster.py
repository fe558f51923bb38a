"""The course roster from the platform (NRPS), so instructors see trainees who never launched.

Refreshed after an instructor's launch when older than `roster_refresh_interval` (after the
response is sent, so the launch never waits on it), and by `lti-tool roster sync`.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from flask import Flask, Response, g, has_request_context
from sqlalchemy import select, update

from lti_tool.after_response import AfterResponse
from lti_tool.config import Config
from lti_tool.db import Database, utcnow
from lti_tool.identity.models import Course, Member, MemberSource, Person
from lti_tool.lti.models import Deployment, Platform
from lti_tool.lti.nrps import RosterMember, fetch_members
from lti_tool.lti.roles import encode_roles
from lti_tool.lti.services import PlatformRef, ServiceClient, ServiceError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RosterResult:
    course_id: int
    synced: bool
    members: int = 0
    added: int = 0
    deactivated: int = 0
    error: str | None = None


def schedule_refresh(course_id: int) -> None:
    if has_request_context():
        g.setdefault("roster_refresh", set()).add(course_id)


def sync_course(
    db: Database, config: Config, course_id: int, *, force: bool = False
) -> RosterResult:
    with db.read_scope() as session:
        course = session.get(Course, course_id)
        if course is None or not course.memberships_url:
            return RosterResult(course_id, synced=False, error="no memberships URL")
        fresh_after = utcnow() - dt.timedelta(seconds=config.roster_refresh_interval)
        if not force and course.roster_synced_at and course.roster_synced_at > fresh_after:
            return RosterResult(course_id, synced=False)
        platform = session.scalars(
            select(Platform).join(Deployment).where(Deployment.id == course.deployment_id)
        ).one()
        url, ref = course.memberships_url, PlatformRef.of(platform)
    try:
        client = ServiceClient(db, ref, config.secret_key, timeout=config.http_timeout)
        members = list(fetch_members(client, url))
    except ServiceError as exc:
        log.warning("roster sync failed course=%s error=%s", course_id, exc)
        return RosterResult(course_id, synced=False, error=str(exc))
    with db.session_scope() as session:
        return _apply(session, course_id, ref.id, members)


def _apply(session, course_id: int, platform_id: int, members: list[RosterMember]) -> RosterResult:  # type: ignore[no-untyped-def]
    people = {
        person.sub: person
        for person in session.scalars(
            select(Person).where(
                Person.platform_id == platform_id, Person.sub.in_([m.sub for m in members])
            )
        )
    }
    existing = {
        member.person_id: member
        for member in session.scalars(select(Member).where(Member.course_id == course_id))
    }
    added = 0
    seen: set[int] = set()
    for entry in members:
        person = people.get(entry.sub)
        if person is None:
            person = Person(platform_id=platform_id, sub=entry.sub)
            session.add(person)
            people[entry.sub] = person
        for field in ("name", "given_name", "family_name", "email"):
            value = getattr(entry, field)
            if value is not None and getattr(person, field) != value:
                setattr(person, field, value)
        session.flush()
        member = existing.get(person.id)
        if member is None:
            member = Member(course_id=course_id, person_id=person.id, source=MemberSource.ROSTER)
            session.add(member)
            existing[person.id] = member
            added += 1
        roles = encode_roles(entry.roles)
        if member.roles != roles:
            member.roles = roles
        if member.active != entry.active:
            member.active = entry.active
        seen.add(person.id)
    # An empty roster says more about the platform (privacy settings, a fault) than about the
    # course: never let it mark everyone as gone. Counted: who leaves now, not who had left.
    gone = (
        [pid for pid, member in existing.items() if pid not in seen and member.active]
        if members
        else []
    )
    if gone:
        session.execute(
            update(Member)
            .where(Member.course_id == course_id, Member.person_id.in_(gone))
            .values(active=False)
        )
    session.execute(update(Course).where(Course.id == course_id).values(roster_synced_at=utcnow()))
    log.info(
        "roster synced course=%s members=%d added=%d gone=%d",
        course_id,
        len(members),
        added,
        len(gone),
    )
    return RosterResult(
        course_id, synced=True, members=len(members), added=added, deactivated=len(gone)
    )


def init_app(app: Flask) -> None:
    db: Database = app.extensions["tsunagu.db"]
    config: Config = app.extensions["tsunagu.config"]
    after: AfterResponse = app.extensions["tsunagu.after_response"]

    @app.after_request
    def _schedule(response: Response) -> Response:
        course_ids = g.pop("roster_refresh", None)
        if course_ids and response.status_code < 400:

            def _sync() -> None:
                for course_id in course_ids:
                    sync_course(db, config, course_id)

            after.schedule(response, _sync, "roster sync")
        return response
