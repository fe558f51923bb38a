"""The course roster from the test LMS over NRPS: after instructor launches (after the response,
when stale), by `lti-tool roster sync`, with paging, role names, and members who left."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from flask import Flask
from sqlalchemy import select, update

from lti_tool.cli import CliContext, main
from lti_tool.db import Database, utcnow
from lti_tool.identity.models import Course, Member, MemberSource, Person
from lti_tool.identity.roster import sync_course
from tests.advantage.helpers import course_of, follow, launch, launched, token_of
from tests.conftest import SECRET
from tests.platform.lms import MEMBERSHIP

LIS = "http://purl.imsglobal.org/vocab/lis/v2/"


def entry(sub: str, roles: list[str], name: str | None = None, status: str = "Active") -> dict:
    member = {"user_id": sub, "roles": roles, "status": status}
    if name:
        member["name"] = name
    return member


def roster_of(instructor) -> list[dict]:
    return [
        entry(instructor.sub, [MEMBERSHIP + "Instructor"], instructor.name),
        entry("t-short", ["Learner"], "Short Role Trainee"),
        entry("t-uri", [MEMBERSHIP + "Learner"], "Uri Role Trainee"),
        entry("t-assistant", [LIS + "membership/Instructor#TeachingAssistant"], "Assistant"),
        entry("t-mentor", ["Mentor", "urn:lti:role:ims/lis/Observer"], "Mentor Person"),
    ]


def members(db: Database) -> dict[str, Member]:
    with db.session_scope() as session:
        rows = session.execute(
            select(Person.sub, Member).join(Member, Member.person_id == Person.id)
        )
        found = {sub: member for sub, member in rows}
        session.expunge_all()
        return found


def wait_idle(app: Flask) -> None:
    assert app.extensions["tsunagu.after_response"].wait_idle(10)


def test_an_instructor_launch_syncs_the_roster_after_the_response(
    app, browser, lms, reg, instructor, db
):
    lms.members = roster_of(instructor)
    lms.members_page_size = 2  # five members: three pages
    hold = threading.Event()
    lms.nrps_hold = hold
    try:
        answer = launch(browser, reg, instructor, locale="en")
        # The launch is answered while the platform has not yet answered the roster request.
        assert answer.status_code == 303
        assert set(members(db)) == {instructor.sub}
    finally:
        hold.set()
    wait_idle(app)
    found = members(db)
    assert set(found) == {m["user_id"] for m in lms.members}
    assert [url.split("?")[-1] if "?" in url else "" for url in lms.nrps_requests] == [
        "",
        "offset=2",
        "offset=4",
    ]
    assert found["t-short"].roles == "learner" and found["t-uri"].roles == "learner"
    assert found["t-assistant"].roles == "teaching_assistant"
    assert found["t-mentor"].roles == "mentor"
    assert found[instructor.sub].roles == "instructor"
    assert found["t-short"].source == MemberSource.ROSTER
    assert found["t-short"].last_launch_at is None
    assert found[instructor.sub].source == MemberSource.LAUNCH
    # Trainees who never opened the tool are on the instructor's overview.
    landing = follow(browser, answer)[-1]
    overview = browser.get(f"/course/overview?ts={token_of(landing)}")
    assert overview.status_code == 200
    for name in ("Short Role Trainee", "Uri Role Trainee", "Assistant", "Mentor Person"):
        assert name in overview.text


def test_the_roster_is_refreshed_only_when_older_than_the_interval(
    app, browser, lms, reg, instructor, learner, db
):
    lms.members = roster_of(instructor)
    launched(browser, reg, learner)
    wait_idle(app)
    assert lms.nrps_requests == []  # a learner's launch never syncs
    launched(browser, reg, instructor)
    wait_idle(app)
    assert len(lms.nrps_requests) == 1
    launched(browser, reg, instructor)
    wait_idle(app)
    assert len(lms.nrps_requests) == 1  # fresh: not again
    interval = app.extensions["tsunagu.config"].roster_refresh_interval
    with db.session_scope() as session:
        session.execute(
            update(Course).values(roster_synced_at=utcnow() - dt.timedelta(seconds=interval + 5))
        )
    launched(browser, reg, instructor)
    wait_idle(app)
    assert len(lms.nrps_requests) == 2


def test_members_no_longer_listed_become_inactive_but_an_empty_roster_changes_nothing(
    app, browser, lms, reg, instructor, db, config
):
    lms.members = roster_of(instructor)
    launched(browser, reg, instructor)
    wait_idle(app)
    course_id = course_of(db).id
    lms.members = [m for m in roster_of(instructor) if m["user_id"] != "t-uri"]
    lms.members[1]["status"] = "Inactive"  # t-short
    result = sync_course(db, config, course_id, force=True)
    assert result.synced and result.deactivated == 1 and result.members == 4
    found = members(db)
    assert not found["t-uri"].active and not found["t-short"].active
    assert found["t-assistant"].active and found[instructor.sub].active
    # The same roster again: nobody newly gone (t-uri had already left).
    again = sync_course(db, config, course_id, force=True)
    assert again.synced and again.deactivated == 0 and not members(db)["t-uri"].active
    lms.members = []
    result = sync_course(db, config, course_id, force=True)
    assert result.synced and result.deactivated == 0
    assert found.keys() == members(db).keys()
    assert members(db)["t-assistant"].active
    # Back on the roster: active again.
    lms.members = roster_of(instructor)
    sync_course(db, config, course_id, force=True)
    assert all(m.active for m in members(db).values())


@pytest.fixture
def cli(app: Flask, database_url: str, tmp_path: Path) -> Callable[..., Result]:
    env = {
        "DATABASE_URL": database_url,
        "SECRET_KEY": SECRET,
        "INSTANCE_DIR": str(tmp_path / "instance"),
        "TOOL_BASE_URL": app.extensions["tsunagu.config"].tool_base_url,
    }

    def run(*args: str) -> Result:
        context = CliContext()
        try:
            return CliRunner(env=env).invoke(main, list(args), obj=context)
        finally:
            if context._db is not None:
                context._db.engine.dispose()

    return run


def test_roster_sync_command(app, browser, lms, reg, instructor, learner, db, cli):
    launched(browser, reg, learner)  # the course exists; its roster was never fetched
    lms.members = roster_of(instructor)
    lms.members_page_size = 2
    course_id = course_of(db).id
    result = cli("roster", "sync")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"course {course_id}: 5 members, 5 new, 1 no longer listed"
    assert not members(db)[learner.sub].active  # the learner is not on the platform's roster
    assert len(lms.nrps_requests) == 3
    again = cli("roster", "sync", "--course", str(course_id))
    assert again.exit_code == 0 and "recently synced (use --force)" in again.output
    assert len(lms.nrps_requests) == 3
    lms.members = roster_of(instructor)[:3]
    forced = cli("roster", "sync", "--force")
    assert forced.exit_code == 0, forced.output
    # Counted: the two dropped now, not the learner already marked gone by the first sync.
    assert forced.output.strip() == f"course {course_id}: 3 members, 0 new, 2 no longer listed"
    assert {sub for sub, m in members(db).items() if m.active} == {
        m["user_id"] for m in lms.members
    }
    assert len(lms.nrps_requests) == 5
    missing = cli("roster", "sync", "--course", str(course_id + 1000))
    assert missing.exit_code == 1 and "failed" in missing.output
