"""The tool against an independent platform implementation (the `lti1p3platform` package): a
resource-link launch, deep linking, a score over AGS and the roster over NRPS, all over real HTTP,
so that the tool and our own test LMS cannot share one misreading of the specifications."""

from __future__ import annotations

import re
import time
import uuid
from collections import Counter
from typing import Any
from urllib.parse import urljoin, urlsplit

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask
from sqlalchemy import select

from lti_tool.config import Config
from lti_tool.db import Database
from lti_tool.grading.delivery import deliver
from lti_tool.grading.models import GradeItem, GradeOutbox, OutboxStatus
from lti_tool.grading.services import Gradable, Progress, grade_item_for, record_score
from lti_tool.identity.models import Course, Member, MemberSource, Person, ResourceLink
from lti_tool.identity.roster import sync_course
from lti_tool.linking.models import Placement
from tests.independent.lti1p3_platform import (
    MEMBERSHIP,
    LaunchPlan,
    LtiPlatform,
    query_of,
)
from tests.independent.lti1p3_platform import Person as User
from tests.platform.lms import parse_form

LTI = "https://purl.imsglobal.org/spec/lti/claim/"
LIS = "http://purl.imsglobal.org/vocab/lis/v2/"
DL = "https://purl.imsglobal.org/spec/lti-dl/claim/"
SCORE_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
LINEITEM_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"
NRPS_SCOPE = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
CONTEXT = "course-lp"
GRADABLE = Gradable(key="module:A", label="Module A", score_maximum=100, tag="module-completion")

LEARNER = User("lp-learner-1", [MEMBERSHIP + "Learner"], "Lê Văn An", "an@example.org")
INSTRUCTOR = User("lp-teacher-1", [MEMBERSHIP + "Instructor"], "佐藤 一郎", "sato@example.jp")


@pytest.fixture
def tool_url(app: Flask) -> str:
    url: str = app.extensions["tsunagu.config"].tool_base_url
    return url


@pytest.fixture
def config(app: Flask) -> Config:
    found: Config = app.extensions["tsunagu.config"]
    return found


# --- the browser ----------------------------------------------------------------------------


def run_launch(http: requests.Session, start_url: str, tool_url: str) -> requests.Response:
    """A browser through a launch lti1p3platform starts; returns the tool's answer to it."""
    # lti1p3platform's OIDC login initiation sends the browser to the tool's login URL.
    initiation = http.get(start_url, allow_redirects=False, timeout=10)
    assert initiation.status_code == 302, initiation.text[:500]
    login_url = initiation.headers["Location"]
    assert login_url.startswith(tool_url + "/lti/login?")
    # The tool sends it on to the platform's auth endpoint...
    login = http.get(login_url, allow_redirects=False, timeout=10)
    assert login.status_code == 302, login.text[:500]
    # ...where lti1p3platform builds the id_token and answers with its auto-posting form.
    form_page = http.get(login.headers["Location"], allow_redirects=False, timeout=10)
    assert form_page.status_code == 200, form_page.text[:500]
    action, fields = parse_form(form_page.text)
    assert set(fields) == {"id_token", "state"}
    return http.post(action, data=fields, allow_redirects=False, timeout=10)


def follow(http: requests.Session, response: requests.Response, tool_url: str) -> requests.Response:
    """Follow the tool's 303s to the page they end on."""
    for _ in range(5):
        if response.status_code != 303:
            break
        location = urljoin(tool_url + "/", response.headers["Location"])
        assert location.startswith(tool_url + "/")
        response = http.get(location, allow_redirects=False, timeout=10)
    assert response.status_code == 200, (response.status_code, response.url, response.text[:800])
    return response


def launched(
    lp: LtiPlatform, plan: LaunchPlan, tool_url: str
) -> tuple[requests.Session, requests.Response]:
    http = requests.Session()
    answer = run_launch(http, lp.plan(plan), tool_url)
    assert answer.status_code == 303, (answer.status_code, answer.text[:800])
    return http, follow(http, answer, tool_url)


def csrf_of(page: requests.Response) -> str:
    marker = 'name="csrf_token" value="'
    assert marker in page.text, page.text[:500]
    return page.text.split(marker, 1)[1].split('"', 1)[0]


# --- database reads ---------------------------------------------------------------------------


def member_of(db: Database, sub: str) -> tuple[int, int]:
    """(member id, course id) of `sub` in the platform's course."""
    with db.session_scope() as session:
        member_id, course_id = session.execute(
            select(Member.id, Member.course_id)
            .join(Person)
            .join(Course, Course.id == Member.course_id)
            .where(Person.sub == sub, Course.context_id == CONTEXT)
        ).one()
        return member_id, course_id


def record(db: Database, sub: str, score: float, maximum: float, comment: str) -> int:
    """Record a score as a feature does (in its own transaction); returns the outbox row's id."""
    member_id, _ = member_of(db, sub)
    with db.session_scope() as session:
        member = session.get(Member, member_id)
        assert member is not None
        link = session.scalars(
            select(ResourceLink).where(
                ResourceLink.course_id == member.course_id,
                ResourceLink.resource_link_id == "rl-lp-1",
            )
        ).one()
        item = grade_item_for(session, link, GRADABLE)
        row = record_score(session, member, item, score, maximum, Progress.FINAL, comment)
        assert row is not None
        return row.id


def outbox_row(db: Database, row_id: int) -> GradeOutbox:
    with db.session_scope() as session:
        row = session.get(GradeOutbox, row_id)
        assert row is not None
        session.expunge(row)
        return row


def verified_grants(lp: LtiPlatform, scope: str) -> list[Any]:
    return [g for g in lp.records.token_grants if scope in g.form["scope"].split()]


# --- 1. resource-link launch ------------------------------------------------------------------


def test_a_resource_link_launch_built_by_lti1p3platform_is_accepted(lp, db, tool_url):
    lineitem = lp.add_lineitem(CONTEXT, "li-a", label="Module A", scoreMaximum=100)
    http = requests.Session()
    answer = run_launch(http, lp.plan(LaunchPlan(user=LEARNER, lineitem="li-a")), tool_url)

    # The tool accepted the id_token: a 303 to one of its pages, carrying the session token.
    assert answer.status_code == 303, answer.text[:800]
    assert urljoin(tool_url + "/", answer.headers["Location"]).startswith(tool_url + "/")
    page = follow(http, answer, tool_url)
    assert urlsplit(page.url).path == "/course"
    assert 'id="pending-title"' in page.text  # the activity is not set up yet
    # The page carries the session (renewed) in its links, and that token opens pages.
    tokens = set(re.findall(r"[?&](?:amp;)?ts=([\w.-]+)", page.text))
    assert tokens, page.text[:800]
    for ts in {*tokens, query_of(page.url)["ts"]}:
        again = http.get(tool_url + "/course", params={"ts": ts}, allow_redirects=False, timeout=10)
        assert again.status_code == 200
    assert http.get(tool_url + "/course", allow_redirects=False, timeout=10).status_code == 401

    # The tool's auth request was one lti1p3platform (and the checks it lacks) accepted.
    (auth,) = lp.records.auth_requests
    assert auth["client_id"] == lp.tool.client_id
    assert auth["redirect_uri"] == tool_url + "/lti/launch"
    assert auth["nonce"] and auth["state"] and auth["lti_message_hint"]

    # What the tool understood of lti1p3platform's claims.
    with db.session_scope() as session:
        person = session.scalars(select(Person).where(Person.sub == LEARNER.sub)).one()
        assert (person.name, person.email) == (LEARNER.name, LEARNER.email)
        member = session.scalars(select(Member).where(Member.person_id == person.id)).one()
        assert member.roles == "learner" and member.source == MemberSource.LAUNCH
        course = session.get(Course, member.course_id)
        assert course is not None
        assert (course.context_id, course.title, course.label) == (
            CONTEXT,
            "多文化共生コーディネーター研修",
            "MCC-1",
        )
        assert course.memberships_url == lp.memberships_url(CONTEXT) + "?limit=2"
        link = session.scalars(select(ResourceLink)).one()
        assert (link.resource_link_id, link.title) == ("rl-lp-1", "Module A (lti1p3platform)")
        assert link.lineitems_url == lp.lineitems_url(CONTEXT)
        assert link.lineitem_url == lineitem
        assert set(link.ags_scopes.split()) == {
            LINEITEM_SCOPE,
            SCORE_SCOPE,
            "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly",
        }


# --- 2. deep linking --------------------------------------------------------------------------


def test_a_deep_linking_response_is_accepted_by_lti1p3platform(lp, db, tool_url):
    data = f"section-3:{uuid.uuid4().hex}"
    http, picker = launched(lp, LaunchPlan(user=INSTRUCTOR, deep_link=True, dl_data=data), tool_url)
    assert urlsplit(picker.url).path == "/link/pick"
    assert 'value="module:A"' in picker.text and 'value="quiz:final"' in picker.text
    assert 'type="checkbox"' in picker.text  # lti1p3platform accepts several items

    chosen = http.post(
        tool_url + "/link/pick",
        data=[
            ("ts", query_of(picker.url)["ts"]),
            ("csrf_token", csrf_of(picker)),
            ("item", "module:A"),
            ("item", "quiz:final"),
        ],
        allow_redirects=False,
        timeout=10,
    )
    assert chosen.status_code == 200, chosen.text[:800]
    action, fields = parse_form(chosen.text)
    assert action == lp.base_url + "/deep-link-return"
    # The browser auto-posts the answer to the platform, whose lti1p3platform validates it.
    posted = http.post(action, data=fields, timeout=10)
    assert posted.status_code == 200, lp.records.deep_link_refusals
    (returned,) = lp.records.deep_link_returns

    with db.session_scope() as session:
        placed = {p.item_key: p.public_id for p in session.scalars(select(Placement))}
    assert set(placed) == {"module:A", "quiz:final"}
    # lti1p3platform sends no locale, so the tool answers in its default language, Japanese
    # (furigana markup removed from titles).
    expected = [
        ("module:A", "科目 A", "科目 A の説明。", "module-completion"),
        (
            "quiz:final",
            "修了認定テスト",
            "A〜Eの全領域から出題される修了認定テスト。",
            "completion-test",
        ),
    ]
    assert returned.content_items == [
        {
            "type": "ltiResourceLink",
            "title": title,
            "text": text,
            "url": f"{tool_url}/lti/launch?placement={placed[key]}",
            "custom": {"tsunagu_placement": placed[key]},
            "lineItem": {"scoreMaximum": 100, "label": title, "resourceId": key, "tag": tag},
        }
        for key, title, text, tag in expected
    ]

    # What lti1p3platform's validation leaves unchecked (LTI-DL 2.0, the response message).
    claims = returned.claims
    assert claims["iss"] == lp.tool.client_id
    assert lp.issuer in (claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]])
    assert claims[LTI + "deployment_id"] == lp.tool.deployment_id
    assert claims[LTI + "message_type"] == "LtiDeepLinkingResponse"
    assert claims[LTI + "version"] == "1.3.0"
    assert claims["nonce"] and claims["exp"] > time.time() >= claims["iat"] - 5
    # The request's `data` comes back as it was sent (LTI-DL 2.0 4.4.1, "data").
    assert claims[DL + "data"] == data


# --- 3. AGS -------------------------------------------------------------------------------------


def test_a_recorded_score_reaches_lti1p3platforms_line_item(lp, db, config, tool_url):
    lineitem = lp.add_lineitem(CONTEXT, "li-a", label="Module A", scoreMaximum=100)
    launched(lp, LaunchPlan(user=LEARNER, lineitem="li-a"), tool_url)
    row_id = record(db, LEARNER.sub, 7, 10, "よくできました")

    assert deliver(db, config) == Counter(delivered=1)

    # The token came from lti1p3platform's token endpoint, which verified the tool's client
    # assertion against the key it fetched from the tool's JWKS URL.
    (grant,) = lp.records.token_grants
    assert lp.records.token_refusals == []
    assert lp.records.tool_jwks_fetches == [tool_url + "/lti/jwks"]
    assert grant.form["grant_type"] == "client_credentials"
    assert grant.form["scope"].split() == [SCORE_SCOPE]
    assert grant.answer["scope"] == SCORE_SCOPE
    assert grant.assertion["aud"] == lp.base_url + "/token"

    # The score: posted to {lineitem}/scores, accepted by lti1p3platform's bearer check.
    (score,) = lp.records.scores
    assert score.lineitem_id == "li-a"
    assert score.url == lineitem + "/scores"
    assert score.content_type == "application/vnd.ims.lis.v1.score+json"
    row = outbox_row(db, row_id)
    assert score.body == {
        "userId": LEARNER.sub,
        "scoreGiven": 7.0,
        "scoreMaximum": 10.0,
        "comment": "よくできました",
        "activityProgress": "Completed",
        "gradingProgress": "FullyGraded",
        "timestamp": row.score_timestamp.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    assert row.status == OutboxStatus.DELIVERED and row.last_status_code == 200
    assert lp.records.service_refusals == []


def test_without_a_line_item_the_tool_finds_or_creates_one_through_lti1p3platform(
    lp, db, config, tool_url
):
    # The launch offers only the line items container (lti1p3platform's `lineitems`).
    launched(lp, LaunchPlan(user=LEARNER), tool_url)
    record(db, LEARNER.sub, 80, 100, "")

    assert deliver(db, config) == Counter(delivered=1)

    ((item_id, item),) = lp.lineitems[CONTEXT].items()
    assert item == {
        "id": lp.lineitem_url(CONTEXT, item_id),
        "scoreMaximum": 100,
        "label": "Module A",
        "resourceId": "module:A",
        "tag": "module-completion",
        "resourceLinkId": "rl-lp-1",
    }
    methods = [(method, urlsplit(url).path) for method, url in lp.records.service_requests]
    assert methods == [
        ("GET", f"/ags/{CONTEXT}/lineitems"),
        ("POST", f"/ags/{CONTEXT}/lineitems"),
        ("POST", f"/ags/{CONTEXT}/lineitems/{item_id}/scores"),
    ]
    (score,) = lp.records.scores
    assert score.lineitem_id == item_id
    assert (score.body["userId"], score.body["scoreGiven"], score.body["scoreMaximum"]) == (
        LEARNER.sub,
        80.0,
        100.0,
    )
    assert "comment" not in score.body
    assert [g.form["scope"] for g in lp.records.token_grants] == [LINEITEM_SCOPE, SCORE_SCOPE]
    with db.session_scope() as session:
        assert session.scalars(select(GradeItem.lineitem_url)).one() == item["id"]


# --- 4. NRPS ------------------------------------------------------------------------------------


def _roster() -> list[dict[str, Any]]:
    return [
        {
            "user_id": INSTRUCTOR.sub,
            "roles": [MEMBERSHIP + "Instructor"],
            "name": INSTRUCTOR.name,
            "email": INSTRUCTOR.email,
        },
        {"user_id": LEARNER.sub, "roles": [MEMBERSHIP + "Learner"], "name": LEARNER.name},
        {
            "user_id": "lp-t-2",
            "roles": ["Learner"],
            "name": "Nguyễn Thị Mai",
            "given_name": "Mai",
            "family_name": "Nguyễn",
            "email": "mai@example.org",
        },
        {"user_id": "lp-t-3", "roles": [MEMBERSHIP + "Learner"], "status": "Inactive"},
        {"user_id": "lp-ta", "roles": [LIS + "membership/Instructor#TeachingAssistant"]},
    ]


def _members(db: Database) -> dict[str, tuple[str, bool, MemberSource, str | None, str | None]]:
    with db.session_scope() as session:
        rows = session.execute(
            select(
                Person.sub, Member.roles, Member.active, Member.source, Person.name, Person.email
            ).join(Member, Member.person_id == Person.id)
        )
        return {
            sub: (roles, active, source, name, email)
            for sub, roles, active, source, name, email in rows
        }


def test_sync_course_fills_the_roster_from_lti1p3platforms_memberships(lp, db, config, tool_url):
    lp.members.extend(_roster())
    launched(lp, LaunchPlan(user=LEARNER), tool_url)  # a learner's launch syncs nothing
    assert lp.records.service_requests == []
    _, course_id = member_of(db, LEARNER.sub)

    result = sync_course(db, config, course_id)

    assert (result.synced, result.members, result.added, result.error) == (True, 5, 4, None)
    # Three pages of two, following lti1p3platform's `Link: <...>; rel=next`.
    pages = [query_of(url) for _, url in lp.records.service_requests]
    assert pages == [{"limit": "2"}, {"limit": "2", "page": "2"}, {"limit": "2", "page": "3"}]
    assert lp.records.service_refusals == []
    (grant,) = lp.records.token_grants
    assert grant.form["scope"] == NRPS_SCOPE == grant.answer["scope"]
    assert _members(db) == {
        INSTRUCTOR.sub: (
            "instructor",
            True,
            MemberSource.ROSTER,
            INSTRUCTOR.name,
            INSTRUCTOR.email,
        ),
        LEARNER.sub: ("learner", True, MemberSource.LAUNCH, LEARNER.name, LEARNER.email),
        "lp-t-2": ("learner", True, MemberSource.ROSTER, "Nguyễn Thị Mai", "mai@example.org"),
        "lp-t-3": ("learner", False, MemberSource.ROSTER, None, None),
        "lp-ta": ("teaching_assistant", True, MemberSource.ROSTER, None, None),
    }


def test_an_instructor_launch_syncs_the_roster_after_the_response(app, lp, db, tool_url):
    lp.members.extend(_roster())
    launched(lp, LaunchPlan(user=INSTRUCTOR), tool_url)
    assert app.extensions["tsunagu.after_response"].wait_idle(10)
    assert len(lp.records.service_requests) == 3
    assert set(_members(db)) == {m["user_id"] for m in _roster()}


# --- lti1p3platform's checks are real -------------------------------------------------------


def test_lti1p3platform_refuses_what_the_tool_did_not_sign(lp, tool_url):
    """The checks the tests above rely on refuse a forgery: a JWT with the tool's kid and
    claims but another key, at the token endpoint and the deep-linking return."""
    kid = requests.get(tool_url + "/lti/jwks", timeout=10).json()["keys"][0]["kid"]
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    client_id = lp.tool.client_id
    assertion = jwt.encode(
        {
            "iss": client_id,
            "sub": client_id,
            "aud": lp.base_url + "/token",
            "iat": now,
            "exp": now + 60,
            "jti": uuid.uuid4().hex,
        },
        forger,
        algorithm="RS256",
        headers={"kid": kid},
    )
    refused = requests.post(
        lp.base_url + "/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
            "scope": SCORE_SCOPE,
        },
        timeout=10,
    )
    assert refused.status_code == 401 and lp.records.token_grants == []

    response = jwt.encode(
        {
            "iss": client_id,
            "aud": lp.issuer,
            "iat": now,
            "exp": now + 60,
            "nonce": "n",
            LTI + "message_type": "LtiDeepLinkingResponse",
            LTI + "version": "1.3.0",
            LTI + "deployment_id": lp.tool.deployment_id,
            DL + "content_items": [{"type": "ltiResourceLink", "url": tool_url + "/x"}],
        },
        forger,
        algorithm="RS256",
        headers={"kid": kid},
    )
    assert (
        requests.post(
            lp.base_url + "/deep-link-return", data={"JWT": response}, timeout=10
        ).status_code
        == 400
    )
    assert lp.records.deep_link_returns == []

    # And the services want lti1p3platform's own token.
    lp.add_lineitem(CONTEXT, "li-a", label="Module A", scoreMaximum=100)
    url = lp.lineitem_url(CONTEXT, "li-a") + "/scores"
    for headers in ({}, {"Authorization": "Bearer " + assertion}):
        assert (
            requests.post(url, json={"userId": "x"}, headers=headers, timeout=10).status_code == 401
        )
    assert lp.records.scores == []
