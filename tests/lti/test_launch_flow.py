"""Complete launches against the test LMS over HTTP."""

from __future__ import annotations


def test_learner_launch_lands_on_course_home(browser, reg, learner):
    page = browser.launch(reg, learner)
    assert page.status_code == 200
    assert "外国人支援コーディネーター養成研修 2026" in page.text
    assert "Nguyen Thi Lan" in page.text


def test_learner_of_an_unlinked_activity_is_told_it_waits(browser, reg, learner):
    page = browser.launch(reg, learner)
    assert "activity=pending" in page.url
    assert 'id="pending-title"' in page.text


def test_instructor_launch_of_an_unlinked_activity_offers_the_choice(
    browser, reg, instructor, learner
):
    browser.launch(reg, learner)
    page = browser.launch(reg, instructor)
    assert page.status_code == 200
    assert "/link/setup" in page.url
    assert 'value="module:A"' in page.text
    overview = browser.get(page.url.replace("/link/setup", "/course/overview"))
    assert "Nguyen Thi Lan" in overview.text and "田中 花子" in overview.text


def test_a_launch_holds_no_write_lock_while_it_fetches_the_platforms_keys(
    app, browser, reg, learner, lms, db
):
    """A platform answering the JWKS request only after writing to the same database (the
    demo LMS is served by the tool itself) must not deadlock the launch waiting for it."""
    from sqlalchemy import update

    from lti_tool.lti.models import Platform

    def write_while_serving_keys() -> None:
        with db.session_scope() as session:
            session.execute(update(Platform).values(name=Platform.name))

    app.extensions["tsunagu.platform_keys"].forget()
    lms.on_jwks = write_while_serving_keys
    page = browser.launch(reg, learner)
    assert page.status_code == 200
    assert lms.jwks_hits >= 1


def test_the_course_home_names_the_activity_only_within_its_course(app, browser, reg, learner, lms):
    from dataclasses import replace
    from urllib.parse import parse_qs, urlsplit

    from lti_tool.web.session import BINDING_COOKIE

    page = browser.launch(reg, learner)
    assert "活動「Module A」を開きました。" in page.text
    course = lms.course
    lms.course = {"id": "course-2", "title": "Another course", "label": "OTHER"}
    try:
        elsewhere = browser.launch(reg, learner, resource_link_id="rl-other")
    finally:
        lms.course = course
    codec = app.extensions["tsunagu.codec"]
    cookie = browser.http.cookies.get(BINDING_COOKIE)
    first = codec.loads(parse_qs(urlsplit(page.url).query)["ts"][0], cookie)
    second = codec.loads(parse_qs(urlsplit(elsewhere.url).query)["ts"][0], cookie)
    assert first.course_id != second.course_id
    # A session of the first course naming the second course's activity: no activity shown.
    mixed = codec.dumps(replace(first, resource_link_pk=second.resource_link_pk))
    home = browser.get(f"/course?ts={mixed}")
    assert home.status_code == 200
    assert "外国人支援コーディネーター養成研修 2026" in home.text
    assert "を開きました" not in home.text


def test_a_returning_member_is_refreshed_from_the_new_launch(browser, reg, db):
    """The common launch: a member the tool knows, read in one query and refreshed with plain
    UPDATEs of what changed (roles, names, active again, source, time of the launch)."""
    from dataclasses import replace

    from sqlalchemy import select, update

    from lti_tool.identity.models import Member, MemberSource, Person
    from tests.conftest import make_user

    first = make_user("Learner", name="Nguyen Thi Lan")
    browser.launch(reg, first)
    with db.session_scope() as session:
        session.execute(update(Member).values(active=False, source=MemberSource.ROSTER))
    with db.read_scope() as session:
        before = session.scalars(select(Member)).one().last_launch_at
    again = replace(first, roles=[first.roles[0].replace("Learner", "Instructor")], name="Lan N.")
    assert browser.launch(reg, again).status_code == 200
    with db.read_scope() as session:
        member = session.scalars(select(Member)).one()
        person = session.scalars(select(Person)).one()
    assert (member.roles, member.active, member.source) == (
        "instructor",
        True,
        MemberSource.LAUNCH,
    )
    assert member.last_launch_at > before and person.name == "Lan N."


def test_a_returning_members_common_launch_needs_no_general_path(app, browser, reg, db):
    """Nothing new about the course, the name or the activity: the launch is recorded on a
    connection of its own (roles, active again, time), never reaching the ORM's path."""
    from sqlalchemy import select, update

    from lti_tool.identity.models import Member, MemberSource
    from lti_tool.lti.models import UsedLoginState
    from tests.conftest import make_user

    user = make_user("Learner", name="Nguyen Thi Lan")
    browser.launch(reg, user)
    with db.session_scope() as session:
        session.execute(update(Member).values(active=False, source=MemberSource.ROSTER))
    with db.read_scope() as session:
        before = session.scalars(select(Member)).one().last_launch_at
        spent = len(session.scalars(select(UsedLoginState.key)).all())

    def general_path(*_args: object) -> None:
        raise AssertionError("the common launch went down the general path")

    general = app.extensions["tsunagu.launch_handler"]
    app.extensions["tsunagu.launch_handler"] = general_path
    try:
        page = browser.launch(reg, user)
    finally:
        app.extensions["tsunagu.launch_handler"] = general
    assert page.status_code == 200 and "Nguyen Thi Lan" in page.text
    with db.read_scope() as session:
        member = session.scalars(select(Member)).one()
        assert len(session.scalars(select(UsedLoginState.key)).all()) == spent + 1
    assert (member.active, member.source) == (True, MemberSource.LAUNCH)
    assert member.last_launch_at > before


def test_a_common_launch_that_fails_after_spending_its_state_leaves_it_unspent(
    browser, reg, db, monkeypatch
):
    """The common path spends the state and records the launch in one transaction: a failure
    after both rolls both back (the state can be used again, the member is as before)."""
    from sqlalchemy import select, update

    from lti_tool.db import utcnow
    from lti_tool.identity import services as identity
    from lti_tool.identity.models import Member
    from lti_tool.identity.services import LAUNCH_MARK_RESOLUTION
    from lti_tool.lti.models import UsedLoginState
    from tests.conftest import make_user

    user = make_user("Learner", name="Nguyen Thi Lan")
    browser.launch(reg, user)
    # Launched long enough ago that this launch writes the member's row too.
    with db.session_scope() as session:
        session.execute(update(Member).values(last_launch_at=utcnow() - 2 * LAUNCH_MARK_RESOLUTION))
    with db.read_scope() as session:
        before = session.scalars(select(Member.last_launch_at)).one()
    recorded = identity.record_known_launch

    def record_then_fail(*args):  # type: ignore[no-untyped-def]
        assert recorded(*args)
        raise RuntimeError("the database went away after the UPDATE")

    monkeypatch.setattr(identity, "record_known_launch", record_then_fail)
    action, fields = browser.authorize(browser.login(reg, user))
    assert browser.post_launch(fields, action).status_code == 500
    with db.read_scope() as session:
        assert len(session.scalars(select(UsedLoginState.key)).all()) == 1
        assert session.scalars(select(Member.last_launch_at)).one() == before
    monkeypatch.setattr(identity, "record_known_launch", recorded)
    assert browser.launch(reg, user).status_code == 200


def test_a_relaunch_within_the_minute_that_changes_nothing_leaves_the_member_row_alone(
    browser, reg, db
):
    """The member's row already says all such a launch would (roles, active, launched less
    than LAUNCH_MARK_RESOLUTION ago): only the login state is written. A change of roles, or
    a launch after that, is written as before."""
    import datetime as dt
    from dataclasses import replace

    from sqlalchemy import select, update

    from lti_tool.identity.models import Member
    from lti_tool.identity.services import LAUNCH_MARK_RESOLUTION
    from lti_tool.lti.models import UsedLoginState
    from tests.conftest import make_user

    user = make_user("Learner", name="Nguyen Thi Lan")
    browser.launch(reg, user)
    marked = dt.datetime.now(dt.UTC) - LAUNCH_MARK_RESOLUTION / 2
    with db.session_scope() as session:
        session.execute(update(Member).values(last_launch_at=marked))

    def state_of_the_member() -> tuple[object, ...]:
        with db.read_scope() as session:
            member = session.scalars(select(Member)).one()
            spent = len(session.scalars(select(UsedLoginState.key)).all())
            return member.roles, member.last_launch_at, spent

    assert browser.launch(reg, user).status_code == 200
    assert state_of_the_member() == ("learner", marked, 2)

    teaching = replace(user, roles=[user.roles[0].replace("Learner", "Instructor")])
    assert browser.launch(reg, teaching).status_code == 200
    roles, last, spent = state_of_the_member()
    assert (roles, spent) == ("instructor", 3) and last > marked

    stale = dt.datetime.now(dt.UTC) - 2 * LAUNCH_MARK_RESOLUTION
    with db.session_scope() as session:
        session.execute(update(Member).values(last_launch_at=stale))
    assert browser.launch(reg, teaching).status_code == 200
    roles, last, spent = state_of_the_member()
    assert (roles, spent) == ("instructor", 4) and last > stale + LAUNCH_MARK_RESOLUTION


def test_a_launch_whose_validation_opened_a_session_takes_the_general_path(
    browser, reg, db, monkeypatch
):
    """Validation that had to read a registration through the request's session (it is not
    in the worker's snapshot) leaves that session's transaction open: on SQLite it holds the
    thread's turn to write, so the common path's own transaction must not be tried beside it."""
    import time

    from lti_tool.lti.toolconf import DbToolConf
    from tests.conftest import make_user

    user = make_user("Learner", name="Nguyen Thi Lan")
    browser.launch(reg, user)
    monkeypatch.setattr(DbToolConf, "remember", lambda self, platform: None)
    started = time.monotonic()
    page = browser.launch(reg, user)
    assert page.status_code == 200 and "Nguyen Thi Lan" in page.text
    assert time.monotonic() - started < 5
