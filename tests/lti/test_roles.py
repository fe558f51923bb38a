"""Roles: the LTI role vocabulary mapped to the tool's roles, and what each role may open."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from lti_tool.identity.models import Member
from lti_tool.lti.roles import Role, has_staff_rights, map_roles
from tests.conftest import make_user
from tests.lti.launch_helpers import open_overview
from tests.platform.driver import Browser
from tests.platform.lms import MEMBERSHIP, ToolRegistration

LIS = "http://purl.imsglobal.org/vocab/lis/v2/"
SYSTEM_ADMIN = LIS + "system/person#Administrator"
INSTITUTION_ADMIN = LIS + "institution/person#Administrator"
INSTITUTION_INSTRUCTOR = LIS + "institution/person#Instructor"
TA_SUB_ROLE = LIS + "membership/Instructor#TeachingAssistant"


@pytest.mark.parametrize(
    ("claim", "expected"),
    [
        pytest.param(
            [MEMBERSHIP + "Instructor", MEMBERSHIP + "Learner"],
            {Role.INSTRUCTOR, Role.LEARNER},
            id="several",
        ),
        pytest.param(["Instructor"], {Role.INSTRUCTOR}, id="short-instructor"),
        pytest.param(["Learner"], {Role.LEARNER}, id="short-learner"),
        pytest.param([" " + MEMBERSHIP + "Learner "], {Role.LEARNER}, id="padded"),
        pytest.param([SYSTEM_ADMIN], {Role.ADMINISTRATOR}, id="system-admin"),
        pytest.param([INSTITUTION_ADMIN], {Role.ADMINISTRATOR}, id="institution-admin"),
        pytest.param([MEMBERSHIP + "Mentor"], {Role.MENTOR}, id="mentor"),
        pytest.param(["TeachingAssistant"], {Role.TEACHING_ASSISTANT}, id="short-ta"),
        pytest.param([TA_SUB_ROLE], {Role.TEACHING_ASSISTANT}, id="ta-sub-role"),
        pytest.param([MEMBERSHIP + "ContentDeveloper"], {Role.CONTENT_DEVELOPER}, id="developer"),
        # An institution's instructor is not an instructor of this course.
        pytest.param(
            [INSTITUTION_INSTRUCTOR, MEMBERSHIP + "Learner"],
            {Role.LEARNER},
            id="institution-instructor-learning",
        ),
        pytest.param(
            [
                "http://example.org/roles#Wizard",
                "urn:lti:role:ims/lis/Wizard",
                MEMBERSHIP + "Wizard",
                "Wizard",
                "",
            ],
            set(),
            id="unknown",
        ),
        # Short names are context roles only; a look-alike with another scheme is not one.
        pytest.param(
            ["x:Instructor", "https://example.org/membership#Instructor"], set(), id="look-alikes"
        ),
        pytest.param([], set(), id="empty"),
    ],
)
def test_map_roles(claim: list[str], expected: set[Role]) -> None:
    assert map_roles(claim) == frozenset(expected)


@pytest.mark.parametrize(
    ("roles", "staff"),
    [
        ({Role.INSTRUCTOR}, True),
        ({Role.ADMINISTRATOR}, True),
        ({Role.LEARNER, Role.INSTRUCTOR}, True),
        ({Role.LEARNER}, False),
        ({Role.MENTOR}, False),
        ({Role.TEACHING_ASSISTANT}, False),
        ({Role.CONTENT_DEVELOPER}, False),
        (set(), False),
    ],
)
def test_staff_rights(roles: set[Role], staff: bool) -> None:
    assert has_staff_rights(roles) is staff


# --- the same, through real launches -------------------------------------------------------------


def _stored_roles(db: Any) -> str:
    with db.read_scope() as session:
        [member] = session.scalars(select(Member))
        return member.roles


@pytest.mark.parametrize(
    ("roles", "stored"),
    [
        pytest.param(
            [MEMBERSHIP + "Instructor", MEMBERSHIP + "Learner"],
            "instructor learner",
            id="instructor-and-learner",
        ),
        pytest.param(["Instructor"], "instructor", id="short-instructor"),
        pytest.param([SYSTEM_ADMIN], "administrator", id="system-administrator"),
    ],
)
def test_staff_launch_lands_on_overview(
    browser: Browser, reg: ToolRegistration, db: Any, roles: list[str], stored: str
) -> None:
    page = browser.launch(reg, make_user(roles=roles))
    assert page.status_code == 200
    assert _stored_roles(db) == stored
    overview = open_overview(browser, page)
    assert overview.status_code == 200
    assert "Nguyen Thi Lan" in overview.text


@pytest.mark.parametrize(
    ("roles", "stored"),
    [
        pytest.param(["Learner"], "learner", id="short-learner"),
        pytest.param(
            ["http://example.org/roles#Wizard", "urn:lti:role:ims/lis/Wizard"],
            "",
            id="unknown-roles",
        ),
        pytest.param([], "", id="no-roles"),
        pytest.param([MEMBERSHIP + "Mentor"], "mentor", id="mentor"),
        pytest.param([TA_SUB_ROLE], "teaching_assistant", id="teaching-assistant"),
        pytest.param([INSTITUTION_INSTRUCTOR], "", id="institution-instructor"),
    ],
)
def test_other_launches_get_the_learner_view(
    browser: Browser, reg: ToolRegistration, db: Any, roles: list[str], stored: str
) -> None:
    page = browser.launch(reg, make_user(roles=roles))
    assert page.status_code == 200
    assert urlsplit(page.url).path == "/course"
    assert _stored_roles(db) == stored
    # No instructor rights: the overview is refused, its member list not shown.
    overview = open_overview(browser, page)
    assert overview.status_code == 403
    assert "Nguyen Thi Lan" not in overview.text
