"""Where a validated launch goes: the picker for deep linking, the activity's item, the
"choose what this activity shows" page for instructors, or "not set up yet" for learners."""

from __future__ import annotations

import logging
from collections.abc import Callable

from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from lti_tool.db import Direct
from lti_tool.errors import Forbidden
from lti_tool.identity import roster
from lti_tool.identity import services as identity
from lti_tool.linking import services as linking
from lti_tool.linking.registry import registry
from lti_tool.lti.launch import Launch
from lti_tool.web.context import start_session
from lti_tool.web.i18n import normalize_locale

log = logging.getLogger(__name__)


def handle_launch(session: Session, launch: Launch) -> Response:
    record = identity.record_launch(session, launch)
    deep_link_id = None
    placed = False
    if launch.is_deep_linking:
        if not record.is_staff:
            raise Forbidden(_l("Only instructors can choose what an activity shows."))
        deep_link_id = linking.open_deep_link_request(
            session, record.course_id, record.member_id, launch
        ).id
    elif record.resource_link_pk is not None:
        placed = (
            linking.resolve_placement(
                session, record.course_id, record.resource_link_pk, launch, registry()
            )
            is not None
        )
    return _land(launch, record, placed, deep_link_id)


class _Gone(Exception):
    """The member read a moment ago is gone: the general path records the launch anew."""


def handle_known_launch(
    conn: Direct, launch: Launch, spend_state: Callable[[Direct], None]
) -> Response | None:
    """The common launch: a returning member opening an activity that is set up, or one that
    names no placement, with nothing new about their course or name. Read in two prepared
    statements sent together, then recorded in one short transaction with the spending of its
    login state (`spend_state`), so that the write lock is held for two statements; where the
    member's row already says all the launch would (`mark_due`), the spending alone is written,
    on PostgreSQL as one statement in autocommit. None, with nothing written, leaves the launch
    to `handle_launch`."""
    if launch.is_deep_linking:
        return None
    reads = [identity.known_launch_read(launch)]
    if launch.resource_link_id is not None:
        reads.append(linking.bound_placement_read(launch, identity.context_key(launch)))
    member, *binding = conn.batch(*reads)
    record = identity.known_launch_of(member, launch)
    if record is None:
        return None
    placed = bool(binding and binding[0])
    if launch.resource_link_id is not None and not placed and linking.names_placement(launch):
        return None  # binding it may copy a placement: `resolve_placement`
    try:
        with conn.atomic() if record.mark_due else conn.writing():
            spend_state(conn)
            if not identity.record_known_launch(conn, record, launch):
                raise _Gone
    except _Gone:
        return None
    return _land(launch, record, placed, None)


def _land(
    launch: Launch, record: identity.LaunchRecord, placed: bool, deep_link_id: int | None
) -> Response:
    values: dict[str, str] = {}
    if deep_link_id is not None:
        landing = "linking.pick"
    elif record.resource_link_pk is None:
        landing = "home.overview" if record.is_staff else "home.course"
    elif placed:
        landing = "linking.open"
    else:
        # Instructors choose once; trainees land on their course page, told the activity waits.
        landing = "linking.setup" if record.is_staff else "home.course"
        if not record.is_staff:
            values["activity"] = "pending"
    if record.is_staff and launch.memberships_url:
        roster.schedule_refresh(record.course_id)
    log.info(
        "launch accepted platform=%s course=%s member=%s type=%s cookies=%s landing=%s",
        launch.platform_id,
        record.course_id,
        record.member_id,
        launch.message_type,
        launch.cookies_work,
        landing,
    )
    return start_session(
        member_id=record.member_id,
        course_id=record.course_id,
        person_id=record.person_id,
        platform_id=launch.platform_id,
        resource_link_pk=record.resource_link_pk,
        roles=record.roles,
        locale=record.person_locale or normalize_locale(launch.locale) or "ja",
        cookies_work=launch.cookies_work,
        landing_endpoint=landing,
        landing_values=values,
        deep_link_id=deep_link_id,
    )
