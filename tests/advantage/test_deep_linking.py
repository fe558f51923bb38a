"""Deep linking against the test LMS: the picker, the signed LtiDeepLinkingResponse, and what a
later launch of the activity opens (placements, setup of unknown links, course copy)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from lti_tool.db import Database
from lti_tool.identity.models import Course
from lti_tool.linking.models import DeepLinkRequest, Placement, ResourceLinkPlacement
from lti_tool.lti.models import RegisteredVia
from lti_tool.lti.registration import save_platform
from lti_tool.modules.models import ModuleSettings
from lti_tool.quiz.models import QuizSettings
from tests.advantage.helpers import (
    Launched,
    follow,
    launch,
    launched,
    path_of,
    verify_tool_jwt,
)
from tests.conftest import make_user
from tests.platform.driver import Browser
from tests.platform.lms import TestLMS, ToolRegistration, parse_form
from tests.platform.server import LiveServer

DL = "https://purl.imsglobal.org/spec/lti-dl/claim/"
LTI = "https://purl.imsglobal.org/spec/lti/claim/"
MODULE_KEYS = [f"module:{m}" for m in "ABCDE"]
DEEP_LINK = {"message_type": "LtiDeepLinkingRequest", "locale": "en"}


def picker(browser: Browser, reg: ToolRegistration, instructor, **hint: Any) -> Launched:
    session = launched(browser, reg, instructor, **{**DEEP_LINK, **hint})
    assert path_of(session.page.url) == "/link/pick"
    return session


def choose(session: Launched, *keys: str, **options: str) -> Any:
    fields = [("item", key) for key in keys] + list(options.items())
    return session.post("/link/pick", fields)


def content_items(browser: Browser, lms: TestLMS, answer) -> tuple[dict[str, Any], str]:
    """Submit the auto-posting answer to the LMS, as the browser does; return the verified JWT."""
    assert answer.status_code == 200, answer.text[:800]
    action, fields = parse_form(answer.text)
    assert action == lms.base_url + "/deep-link-return"
    assert "data-autosubmit" in answer.text
    # The page may post to exactly the platform's return URL.
    assert lms.base_url in answer.headers["Content-Security-Policy"]
    posted = browser.http.post(action, data=fields, timeout=10)
    assert posted.status_code == 200
    assert lms.deep_link_responses[-1] == fields["JWT"]
    return verify_tool_jwt(browser, fields["JWT"], audience=lms.issuer), fields["JWT"]


def test_the_picker_lists_the_registry_and_answers_with_a_signed_response(
    app, browser, lms, reg, instructor, db
):
    session = picker(browser, reg, instructor)
    page = session.page.text
    for key in [*MODULE_KEYS, "quiz:final"]:
        assert f'value="{key}"' in page
    assert 'type="checkbox"' in page  # the request accepts several items
    assert 'name="quiz:final:pass_percent"' in page and 'value="70"' in page
    assert "Module A" in page and "About module A." in page
    assert "Completion certification test" in page

    answer = choose(session, "module:A", "quiz:final", **{"quiz:final:pass_percent": "85"})
    claims, _ = content_items(browser, lms, answer)
    assert claims["iss"] == reg.client_id
    assert lms.issuer in (claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]])
    assert claims[LTI + "deployment_id"] == reg.deployment_id
    assert claims[LTI + "message_type"] == "LtiDeepLinkingResponse"
    assert claims[LTI + "version"] == "1.3.0"
    assert claims[DL + "data"] == "dl-data-123"
    assert claims["exp"] > time.time() and claims["nonce"]

    items = claims[DL + "content_items"]
    assert [item["type"] for item in items] == ["ltiResourceLink", "ltiResourceLink"]
    module, quiz = items
    assert module["title"] == "Module A" and module["text"] == "About module A."
    assert quiz["title"] == "Completion certification test"
    with db.session_scope() as s:
        placements = {p.item_key: p for p in s.scalars(select(Placement))}
        assert set(placements) == {"module:A", "quiz:final"}
        course_id = placements["quiz:final"].course_id
        assert placements["quiz:final"].options == {"pass_percent": 85}
        # The options chosen in the picker take effect in the course.
        assert (
            s.scalars(
                select(QuizSettings.pass_percent).where(QuizSettings.course_id == course_id)
            ).one()
            == 85
        )
        # A module placed as a graded activity sends its completion there.
        assert s.scalars(
            select(ModuleSettings.send_completion_grade).where(
                ModuleSettings.course_id == course_id, ModuleSettings.module_id == "A"
            )
        ).one()
        ids = {key: p.public_id for key, p in placements.items()}
    base = app.extensions["tsunagu.config"].tool_base_url
    for item, key in ((module, "module:A"), (quiz, "quiz:final")):
        assert item["custom"] == {"tsunagu_placement": ids[key]}
        assert item["url"] == f"{base}/lti/launch?placement={ids[key]}"
    assert module["lineItem"] == {
        "scoreMaximum": 100,
        "label": "Module A",
        "resourceId": "module:A",
        "tag": "module-completion",
    }
    assert quiz["lineItem"] == {
        "scoreMaximum": 100,
        "label": "Completion certification test",
        "resourceId": "quiz:final",
        "tag": "completion-test",
    }


def test_titles_follow_the_course_language(browser, lms, reg, instructor):
    session = picker(browser, reg, instructor, locale="ja")
    claims, _ = content_items(browser, lms, choose(session, "module:B"))
    (item,) = claims[DL + "content_items"]
    assert item["title"] == "科目 B"  # furigana markup removed


def test_data_is_absent_when_the_request_had_none(browser, lms, reg, instructor):
    session = picker(browser, reg, instructor, data=None)
    claims, _ = content_items(browser, lms, choose(session, "module:C"))
    assert DL + "data" not in claims
    assert len(claims[DL + "content_items"]) == 1


def test_the_picker_form_is_used_once(browser, lms, reg, instructor, db):
    session = picker(browser, reg, instructor)
    first = choose(session, "module:A")
    assert first.status_code == 200
    again = choose(session, "module:B")
    assert again.status_code == 409
    assert "JWT" not in again.text
    with db.session_scope() as s:
        assert s.scalars(select(Placement.item_key)).all() == ["module:A"]
        assert s.scalars(select(DeepLinkRequest.used_at)).one() is not None


def test_one_item_only_when_the_platform_accepts_one(browser, lms, reg, instructor, db):
    session = picker(browser, reg, instructor, accept_multiple=False)
    assert 'type="radio"' in session.page.text
    assert choose(session, "module:A", "module:B").status_code == 400
    assert choose(session).status_code == 400
    assert choose(session, "nothing:here").status_code == 400
    with db.session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Placement)) == 0
    # A refused choice leaves the request open.
    assert choose(session, "module:B").status_code == 200


def test_a_pass_mark_out_of_range_is_refused(browser, lms, reg, instructor, db):
    session = picker(browser, reg, instructor)
    assert choose(session, "quiz:final", **{"quiz:final:pass_percent": "0"}).status_code == 400
    assert choose(session, "quiz:final", **{"quiz:final:pass_percent": "x"}).status_code == 400
    with db.session_scope() as s:
        assert s.scalar(select(func.count()).select_from(QuizSettings)) == 0


def test_a_learner_cannot_deep_link(browser, lms, reg, learner, db):
    answer = launch(browser, reg, learner, **DEEP_LINK)
    assert answer.status_code == 403
    with db.session_scope() as s:
        assert s.scalar(select(func.count()).select_from(DeepLinkRequest)) == 0
    # Nor reach the picker with a learner's session from an ordinary launch.
    session = launched(browser, reg, make_user("Learner"))
    assert session.get("/link/pick").status_code == 403


def _placed(browser, lms, reg, instructor, *keys, **options) -> dict[str, str]:
    """Deep-link `keys` in course-1; returns each key's placement id (from the JWT)."""
    session = picker(browser, reg, instructor)
    claims, _ = content_items(browser, lms, choose(session, *keys, **options))
    return {
        item["lineItem"]["resourceId"]: item["custom"]["tsunagu_placement"]
        for item in claims[DL + "content_items"]
    }


def _opens(browser, reg, user, **hint) -> list[str]:
    chain = follow(browser, launch(browser, reg, user, **hint))
    assert chain[-1].status_code == 200, (chain[-1].status_code, chain[-1].text[:500])
    assert all(hop.status_code == 303 for hop in chain[:-1])
    return [path_of(hop.headers["Location"]) for hop in chain[:-1]]


def test_a_launch_opens_the_placed_item(browser, lms, reg, instructor, learner, db):
    ids = _placed(browser, lms, reg, instructor, "module:D", "quiz:final")
    assert _opens(
        browser,
        reg,
        learner,
        resource_link_id="act-d",
        custom={"tsunagu_placement": ids["module:D"]},
    ) == ["/open", "/modules/D"]
    assert _opens(
        browser,
        reg,
        learner,
        resource_link_id="act-quiz",
        custom={"tsunagu_placement": ids["quiz:final"]},
    ) == ["/open", "/quiz/"]
    # The binding holds when later launches carry nothing.
    assert _opens(browser, reg, learner, resource_link_id="act-d") == ["/open", "/modules/D"]
    assert _opens(browser, reg, instructor, resource_link_id="act-quiz") == ["/open", "/quiz/"]


def test_a_known_activity_set_up_later_opens_what_its_launch_names(
    browser, lms, reg, instructor, learner
):
    """A trainee who already launched an activity before it was set up, launching it again
    once the LMS sends the placement it was given."""
    ids = _placed(browser, lms, reg, instructor, "module:C")
    assert _opens(browser, reg, learner, resource_link_id="act-c") == ["/course"]
    assert _opens(
        browser,
        reg,
        learner,
        resource_link_id="act-c",
        custom={"tsunagu_placement": ids["module:C"]},
    ) == ["/open", "/modules/C"]
    # Bound now: the next launch needs no name.
    assert _opens(browser, reg, learner, resource_link_id="act-c") == ["/open", "/modules/C"]


def test_the_item_url_alone_is_enough(app, browser, lms, reg, learner, instructor):
    ids = _placed(browser, lms, reg, instructor, "module:E")
    base = app.extensions["tsunagu.config"].tool_base_url
    url = f"{base}/lti/launch?placement={ids['module:E']}"
    # A platform that drops custom parameters still launches the item's URL.
    assert _opens(browser, reg, learner, resource_link_id="act-e", target_link_uri=url) == [
        "/open",
        "/modules/E",
    ]


def test_an_unknown_placement_id_is_treated_as_an_unlinked_activity(browser, reg, learner):
    page = follow(
        browser,
        launch(
            browser,
            reg,
            learner,
            resource_link_id="act-x",
            custom={"tsunagu_placement": "no-such-placement"},
        ),
    )[-1]
    assert path_of(page.url) == "/course" and "activity=pending" in page.url


def test_an_unlinked_activity_is_set_up_once_by_an_instructor(
    browser, reg, instructor, learner, db
):
    # A trainee first: told the activity is not set up yet.
    waiting = launched(browser, reg, learner, resource_link_id="pasted")
    assert path_of(waiting.page.url) == "/course" and "activity=pending" in waiting.page.url
    assert 'id="pending-title"' in waiting.page.text
    staff = launched(browser, reg, instructor, resource_link_id="pasted")
    assert path_of(staff.page.url) == "/link/setup"
    assert 'type="radio"' in staff.page.text and 'value="quiz:final"' in staff.page.text
    chosen = staff.post("/link/setup", {"item": "module:C"})
    assert chosen.status_code == 303 and path_of(chosen.headers["Location"]) == "/open"
    assert path_of(browser.get(chosen.headers["Location"]).headers["Location"]) == "/modules/C"
    # From now on the activity opens module C, for everyone.
    assert _opens(browser, reg, learner, resource_link_id="pasted") == ["/open", "/modules/C"]
    assert _opens(browser, reg, instructor, resource_link_id="pasted") == ["/open", "/modules/C"]
    # One-time: a second (stale) setup form does not re-link the activity.
    again = staff.post("/link/setup", {"item": "module:A"})
    assert again.status_code in (303, 409)
    assert _opens(browser, reg, learner, resource_link_id="pasted") == ["/open", "/modules/C"]
    with db.session_scope() as s:
        assert s.scalars(select(Placement.item_key)).all() == ["module:C"]


def test_a_learner_cannot_set_up_an_activity(browser, reg, learner, db):
    session = launched(browser, reg, learner, resource_link_id="pasted")
    assert session.get("/link/setup").status_code == 403
    assert session.post("/link/setup", {"item": "module:A"}, page=session.page).status_code == 403
    with db.session_scope() as s:
        assert s.scalar(select(func.count()).select_from(ResourceLinkPlacement)) == 0


def test_a_copied_course_gets_its_own_copy_of_the_placement(
    browser, lms, reg, instructor, learner, db
):
    ids = _placed(
        browser, lms, reg, instructor, "quiz:final", "module:B", **{"quiz:final:pass_percent": "90"}
    )
    copy = {"id": "course-2", "title": "2027 copy", "label": "FRSC-2027"}
    for key, path in (("quiz:final", "/quiz/"), ("module:B", "/modules/B")):
        assert _opens(
            browser,
            reg,
            learner,
            course=copy,
            resource_link_id=f"copied-{key}",
            custom={"tsunagu_placement": ids[key]},
        ) == ["/open", path]
    with db.session_scope() as s:
        course2 = s.scalars(select(Course.id).where(Course.context_id == "course-2")).one()
        course1 = s.scalars(select(Course.id).where(Course.context_id == "course-1")).one()
        copied = {
            p.item_key: p
            for p in s.scalars(select(Placement).where(Placement.course_id == course2))
        }
        assert set(copied) == {"quiz:final", "module:B"}
        assert all(p.public_id not in ids.values() for p in copied.values())
        assert copied["quiz:final"].options == {"pass_percent": 90}
        # The copy takes effect as the original did: the pass mark, the completion grade.
        assert (
            s.scalars(
                select(QuizSettings.pass_percent).where(QuizSettings.course_id == course2)
            ).one()
            == 90
        )
        assert s.scalars(
            select(ModuleSettings.send_completion_grade).where(
                ModuleSettings.course_id == course2, ModuleSettings.module_id == "B"
            )
        ).one()
        # The original course keeps its own placements untouched.
        originals = s.scalars(select(Placement).where(Placement.course_id == course1)).all()
        assert {p.public_id for p in originals} == set(ids.values())


@pytest.fixture(scope="module")
def other_lms_server() -> Iterator[LiveServer]:
    server = LiveServer("127.0.0.1", url_host="localhost").start()
    yield server
    server.stop()


@pytest.fixture
def other_lms(other_lms_server: LiveServer) -> Iterator[TestLMS]:
    platform = TestLMS("Other LMS")
    platform.base_url = other_lms_server.url
    other_lms_server.mount(platform.app)
    yield platform


def test_a_placement_of_another_platform_is_ignored(
    app: Flask, browser, lms, reg, instructor, learner, other_lms, db: Database
):
    ids = _placed(browser, lms, reg, instructor, "module:A")
    other_reg = other_lms.add_tool(app.extensions["tsunagu.config"].tool_base_url)
    with db.session_scope() as s:
        save_platform(
            s,
            issuer=other_lms.issuer,
            client_id=other_reg.client_id,
            name=other_lms.name,
            auth_login_url=other_lms.base_url + "/auth",
            auth_token_url=other_lms.base_url + "/token",
            auth_audience=None,
            jwks_url=other_lms.base_url + "/jwks",
            product_family_code="testlms",
            deployment_ids=["1"],
            registered_via=RegisteredVia.MANUAL,
        )
    other_browser = Browser(browser.tool_url, other_lms)
    # The same course id and the placement's id, but from another platform: not ours to open.
    page = follow(
        other_browser,
        launch(
            other_browser,
            other_reg,
            learner,
            resource_link_id="x",
            custom={"tsunagu_placement": ids["module:A"]},
        ),
    )[-1]
    assert path_of(page.url) == "/course" and "activity=pending" in page.url
    staff = follow(
        other_browser,
        launch(
            other_browser,
            other_reg,
            make_user("Instructor"),
            resource_link_id="x",
            custom={"tsunagu_placement": ids["module:A"]},
        ),
    )[-1]
    assert path_of(staff.url) == "/link/setup"
    with db.session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Placement)) == 1
        assert s.scalar(select(func.count()).select_from(ResourceLinkPlacement)) == 0


def test_the_response_is_signed_with_a_published_key(browser, lms, reg, instructor):
    session = picker(browser, reg, instructor)
    _, token = content_items(browser, lms, choose(session, "module:A"))
    # A token with a forged signature does not verify against the tool's keys.
    header, body, signature = token.split(".")
    forged = f"{header}.{body}.{signature[:-4]}AAAA"
    with pytest.raises(Exception, match=re.compile("signature", re.I)):
        verify_tool_jwt(browser, forged, audience=lms.issuer)
