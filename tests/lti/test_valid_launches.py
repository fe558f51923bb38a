"""Valid launches the tool must accept, in the shapes real platforms send them: names withheld,
no context, login by GET, several locales, a rotated platform key, and where the tool sends the
browser afterwards."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from lti_tool.identity.models import Course, Member, Person, ResourceLink
from lti_tool.lti.models import UsedLoginState
from lti_tool.lti.state import StateSigner
from tests.conftest import SECRET, make_user
from tests.lti.launch_helpers import html_lang, is_on_tool, open_overview, page_text
from tests.platform.driver import Browser
from tests.platform.lms import LTI, TestLMS, ToolRegistration

ANONYMOUS = {"name": None, "given_name": None, "family_name": None, "email": None}


def _people(db: Any) -> list[Person]:
    with db.read_scope() as session:
        return list(session.scalars(select(Person)))


def _courses(db: Any) -> list[Course]:
    with db.read_scope() as session:
        return list(session.scalars(select(Course).order_by(Course.id)))


def test_launch_without_names_or_email(browser: Browser, reg: ToolRegistration, db: Any) -> None:
    user = make_user("Learner", **ANONYMOUS)
    page = browser.launch(reg, user, locale="en")
    assert page.status_code == 200
    assert "Welcome." in page_text(page)
    [person] = _people(db)
    assert person.sub == user.sub
    assert (person.name, person.given_name, person.family_name, person.email) == (
        None,
        None,
        None,
        None,
    )


def test_instructor_sees_a_member_whose_name_was_withheld(
    browser: Browser, reg: ToolRegistration
) -> None:
    browser.launch(reg, make_user("Learner", **ANONYMOUS))
    page = browser.launch(reg, make_user("Instructor", name="Sato Ken"), locale="en")
    overview = open_overview(browser, page)
    assert overview.status_code == 200
    assert "(name withheld by the LMS)" in page_text(overview)


def test_later_launch_withholding_names_keeps_the_stored_ones(
    browser: Browser, reg: ToolRegistration, db: Any
) -> None:
    user = make_user("Learner")
    browser.launch(reg, user)
    user.name = user.given_name = user.family_name = user.email = None
    page = browser.launch(reg, user, locale="en")
    assert "Welcome, Nguyen Thi Lan." in page_text(page)
    [person] = _people(db)
    assert (person.name, person.given_name, person.family_name, person.email) == (
        "Nguyen Thi Lan",
        "Lan",
        "Nguyen",
        "lan@example.org",
    )


def test_later_launch_with_new_names_updates_them(
    browser: Browser, reg: ToolRegistration, db: Any
) -> None:
    user = make_user("Learner")
    browser.launch(reg, user)
    user.name = "Nguyen Thi Lan (Tanaka)"
    browser.launch(reg, user)
    [person] = _people(db)
    assert person.name == "Nguyen Thi Lan (Tanaka)"


def test_launch_without_context_is_scoped_to_its_resource_link(
    browser: Browser, reg: ToolRegistration, db: Any
) -> None:
    page = browser.launch(reg, make_user("Learner"), context=False, resource_link_id="rl-solo")
    assert page.status_code == 200
    [course] = _courses(db)
    assert course.context_id is None
    assert course.context_key == "resource-link:rl-solo"
    with db.read_scope() as session:
        [link] = session.scalars(select(ResourceLink))
        assert (link.course_id, link.resource_link_id) == (course.id, "rl-solo")


def test_two_resource_links_without_context_are_two_courses(
    browser: Browser, reg: ToolRegistration, db: Any
) -> None:
    user = make_user("Learner")
    browser.launch(reg, user, context=False, resource_link_id="rl-one")
    browser.launch(reg, user, context=False, resource_link_id="rl-two")
    # The same link again joins its course, it does not make a third.
    browser.launch(reg, user, context=False, resource_link_id="rl-one")
    courses = _courses(db)
    assert [c.context_key for c in courses] == ["resource-link:rl-one", "resource-link:rl-two"]
    with db.read_scope() as session:
        members = list(session.scalars(select(Member)))
    assert sorted(m.course_id for m in members) == sorted(c.id for c in courses)


def test_two_resource_links_in_one_context_share_the_course(
    browser: Browser, reg: ToolRegistration, db: Any
) -> None:
    user = make_user("Learner")
    browser.launch(reg, user, resource_link_id="rl-one")
    browser.launch(reg, user, resource_link_id="rl-two")
    [course] = _courses(db)
    assert course.context_id == "course-1"


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_login_by_get_or_post_launches(
    browser: Browser, reg: ToolRegistration, db: Any, method: str
) -> None:
    login = browser.login(reg, make_user("Learner"), method=method)
    action, fields = browser.authorize(login)
    response = browser.post_launch(fields, action)
    assert response.status_code == 303
    assert browser.get(response.headers["Location"]).status_code == 200
    # The launch spent its login state: recorded, until the state's own expiry.
    state = StateSigner(SECRET).decode(login.state)
    assert state is not None
    with db.read_scope() as session:
        spent = session.get(UsedLoginState, state.key)
        assert spent is not None and int(spent.expires_at.timestamp()) == state.expires_at


@pytest.mark.parametrize(
    ("locale", "lang"),
    [("ja", "ja"), ("ja-JP", "ja"), ("en", "en"), ("en-US", "en"), ("pt_br", "en")],
)
def test_launch_locale_chooses_the_page_language(
    browser: Browser, reg: ToolRegistration, locale: str, lang: str
) -> None:
    page = browser.launch(reg, make_user("Learner"), locale=locale)
    assert page.status_code == 200
    assert html_lang(page) == lang


def test_launch_after_platform_key_rotation(
    browser: Browser, lms: TestLMS, reg: ToolRegistration
) -> None:
    # The tool has cached the old key; the platform now signs with a new one.
    assert browser.launch(reg, make_user("Learner")).status_code == 200
    hits = lms.jwks_hits
    lms.rotate_key()
    assert browser.launch(reg, make_user("Learner")).status_code == 200
    assert lms.jwks_hits == hits + 1


def test_launch_redirects_to_the_tool_only(
    browser: Browser, lms: TestLMS, reg: ToolRegistration
) -> None:
    # Whatever the token names as its target, the tool lands on its own page.
    user = make_user("Learner")
    login = browser.login(reg, user)
    body = lms.claims(reg, user, login.nonce)
    body[LTI + "target_link_uri"] = "https://phish.example/login"
    body[LTI + "launch_presentation"]["return_url"] = "https://phish.example/return"
    response = browser.post_launch({"id_token": lms.sign(body), "state": login.state})
    assert response.status_code == 303
    location = response.headers["Location"]
    assert is_on_tool(location, browser.tool_url), location
    assert "phish.example" not in location
    assert browser.get(location).status_code == 200


@pytest.mark.parametrize("role", ["Learner", "Instructor"])
def test_launch_lands_on_a_tool_url(browser: Browser, reg: ToolRegistration, role: str) -> None:
    login = browser.login(reg, make_user(role))
    action, fields = browser.authorize(login)
    response = browser.post_launch(fields, action)
    assert response.status_code == 303
    assert is_on_tool(response.headers["Location"], browser.tool_url)
