"""Tenancy and the session after a launch: a session sees its own course only, its token cannot
be altered or outlive its lifetime, forms need the CSRF token, and redirects stay on the tool."""

from __future__ import annotations

import base64
import json
import time
from dataclasses import replace
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import select

from lti_tool.identity.models import Course, Person
from lti_tool.web.session import BINDING_COOKIE, SessionCodec, ToolSession
from tests.conftest import make_user
from tests.lti.launch_helpers import (
    ENGLISH,
    csrf_token_of,
    html_lang,
    is_on_tool,
    open_overview,
    page_text,
    session_token_of,
)
from tests.platform.driver import Browser
from tests.platform.lms import TestLMS, ToolRegistration

COURSE_A = {"id": "course-A", "title": "Course A 2026", "label": "A"}
COURSE_B = {"id": "course-B", "title": "Course B 2026", "label": "B"}


def _launch_in(
    browser: Browser,
    lms: TestLMS,
    reg: ToolRegistration,
    course: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    role: str,
    name: str,
    locale: str = "en",
) -> requests.Response:
    monkeypatch.setattr(lms, "course", course)
    page = browser.launch(reg, make_user(role, name=name), locale=locale)
    assert page.status_code == 200
    return page


def _course_id(db: Any, context_id: str) -> int:
    with db.read_scope() as session:
        return session.scalars(select(Course.id).where(Course.context_id == context_id)).one()


def _codec(app: Flask) -> SessionCodec:
    codec: SessionCodec = app.extensions["tsunagu.codec"]
    return codec


def _session_of(app: Flask, browser: Browser, page: requests.Response) -> ToolSession:
    return _codec(app).loads(session_token_of(page.url), browser.http.cookies.get(BINDING_COOKIE))


def _signed_at(
    monkeypatch: pytest.MonkeyPatch, app: Flask, session: ToolSession, seconds_ago: int
) -> str:
    """A token for `session` as the tool would have signed it `seconds_ago`."""
    return _codec(app).dumps(session, now=time.time() - seconds_ago)


def _tamper(token: str, course_id: int) -> str:
    """The token's payload rewritten to another course, its timestamp and signature kept."""
    payload, stamp, signature = token.split(".")
    values = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    values[1] = course_id
    forged = base64.urlsafe_b64encode(json.dumps(values, separators=(",", ":")).encode())
    return f"{forged.rstrip(b'=').decode()}.{stamp}.{signature}"


def _assert_session_refused(response: requests.Response) -> None:
    text = page_text(response)
    assert response.status_code == 401, (response.status_code, text[:500])
    assert "Your session with this tool has ended" in text


# --- tenancy --------------------------------------------------------------------------------------


def test_instructor_of_one_course_sees_only_its_members(
    browser: Browser,
    lms: TestLMS,
    reg: ToolRegistration,
    db: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _launch_in(browser, lms, reg, COURSE_A, monkeypatch, "Learner", "Alice Only-in-A")
    _launch_in(browser, lms, reg, COURSE_A, monkeypatch, "Instructor", "Anna Teaches-A")
    _launch_in(browser, lms, reg, COURSE_B, monkeypatch, "Learner", "Carol Only-in-B")
    page_b = _launch_in(browser, lms, reg, COURSE_B, monkeypatch, "Instructor", "Bob Teaches-B")
    overview_b = open_overview(browser, page_b)
    assert overview_b.status_code == 200
    text = page_text(overview_b)
    assert "Course B 2026" in text
    assert "Carol Only-in-B" in text and "Bob Teaches-B" in text
    assert "Alice Only-in-A" not in text and "Anna Teaches-A" not in text
    assert "Course A 2026" not in text


def test_session_token_altered_to_another_course_is_refused(
    app: Flask,
    browser: Browser,
    lms: TestLMS,
    reg: ToolRegistration,
    db: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _launch_in(browser, lms, reg, COURSE_A, monkeypatch, "Learner", "Alice Only-in-A")
    page_b = _launch_in(browser, lms, reg, COURSE_B, monkeypatch, "Instructor", "Bob Teaches-B")
    token = session_token_of(page_b.url)
    tampered = _tamper(token, _course_id(db, "course-A"))
    assert tampered != token
    response = browser.get("/course/overview", params={"ts": tampered}, headers=ENGLISH)
    _assert_session_refused(response)
    assert "Alice Only-in-A" not in response.text
    # The untouched token still works: the refusal is the tampering, not the request.
    assert browser.get("/course/overview", params={"ts": token}).status_code == 200


def test_session_token_with_altered_signature_is_refused(
    browser: Browser, lms: TestLMS, reg: ToolRegistration, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = _launch_in(browser, lms, reg, COURSE_A, monkeypatch, "Instructor", "Anna Teaches-A")
    token = session_token_of(page.url)
    # Change the signature's first character: all six of its bits count (the last one's may not).
    head, signature = token.rsplit(".", 1)
    altered = f"{head}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}"
    _assert_session_refused(browser.get("/course", params={"ts": altered}, headers=ENGLISH))


def test_page_without_session_token_is_refused(browser: Browser) -> None:
    _assert_session_refused(browser.get("/course", headers=ENGLISH))


def test_learner_cannot_open_the_overview(
    browser: Browser, lms: TestLMS, reg: ToolRegistration, monkeypatch: pytest.MonkeyPatch
) -> None:
    _launch_in(browser, lms, reg, COURSE_A, monkeypatch, "Instructor", "Anna Teaches-A")
    page = _launch_in(browser, lms, reg, COURSE_A, monkeypatch, "Learner", "Alice Only-in-A")
    response = browser.get("/course/overview", params={"ts": session_token_of(page.url)})
    assert response.status_code == 403
    text = page_text(response)
    assert "This page is for the course's instructors." in text
    assert "Anna Teaches-A" not in text


# --- token lifetime -------------------------------------------------------------------------------


def test_token_older_than_the_session_lifetime_is_refused(
    app: Flask,
    browser: Browser,
    lms: TestLMS,
    reg: ToolRegistration,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    page = _launch_in(browser, lms, reg, COURSE_A, monkeypatch, "Learner", "Alice Only-in-A")
    session = _session_of(app, browser, page)
    old = _signed_at(monkeypatch, app, session, _codec(app).bound_ttl + 60)
    _assert_session_refused(browser.get("/course", params={"ts": old}, headers=ENGLISH))


def test_session_beyond_its_absolute_lifetime_is_refused(
    app: Flask,
    browser: Browser,
    lms: TestLMS,
    reg: ToolRegistration,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A freshly signed token cannot stretch a session started too long ago.
    page = _launch_in(browser, lms, reg, COURSE_A, monkeypatch, "Learner", "Alice Only-in-A")
    session = _session_of(app, browser, page)
    stale = replace(session, started_at=int(time.time()) - _codec(app).bound_ttl - 60)
    token = _codec(app).dumps(stale)
    _assert_session_refused(browser.get("/course", params={"ts": token}, headers=ENGLISH))


def test_unbound_token_expires_after_its_idle_lifetime(
    app: Flask,
    browser: Browser,
    lms: TestLMS,
    reg: ToolRegistration,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A token not bound to a browser cookie lives only `unbound_ttl` since it was last renewed.
    page = _launch_in(browser, lms, reg, COURSE_A, monkeypatch, "Learner", "Alice Only-in-A")
    unbound = replace(_session_of(app, browser, page), binding=None)
    codec = _codec(app)
    recent = _signed_at(monkeypatch, app, unbound, codec.unbound_ttl - 60)
    assert browser.get("/course", params={"ts": recent}).status_code == 200
    idle = _signed_at(monkeypatch, app, unbound, codec.unbound_ttl + 60)
    _assert_session_refused(browser.get("/course", params={"ts": idle}, headers=ENGLISH))


def test_bound_token_needs_its_browser_cookie(
    app: Flask,
    browser: Browser,
    lms: TestLMS,
    reg: ToolRegistration,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    page = _launch_in(browser, lms, reg, COURSE_A, monkeypatch, "Learner", "Alice Only-in-A")
    bound = replace(_session_of(app, browser, page), binding="0" * 32)
    token = _codec(app).dumps(bound)
    # Another browser's binding: whatever cookie this browser holds, the hash cannot match.
    _assert_session_refused(browser.get("/course", params={"ts": token}, headers=ENGLISH))


def test_short_lived_codec_refuses_an_expired_token(
    app: Flask,
    browser: Browser,
    lms: TestLMS,
    reg: ToolRegistration,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The app's own codec, with lifetimes a test can outlive without sleeping.
    page = _launch_in(browser, lms, reg, COURSE_A, monkeypatch, "Learner", "Alice Only-in-A")
    token = session_token_of(page.url)
    codec = _codec(app)
    monkeypatch.setattr(codec, "bound_ttl", -1)
    monkeypatch.setattr(codec, "unbound_ttl", -1)
    _assert_session_refused(browser.get("/course", params={"ts": token}, headers=ENGLISH))
    monkeypatch.undo()
    assert browser.get("/course", params={"ts": token}).status_code == 200


# --- forms and redirects --------------------------------------------------------------------------


def _person_locale(db: Any) -> str | None:
    with db.read_scope() as session:
        [person] = session.scalars(select(Person))
        return person.locale


def test_language_form_needs_the_csrf_token(
    browser: Browser,
    lms: TestLMS,
    reg: ToolRegistration,
    db: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Launched in English (so the refusal reads in English), switching to Japanese.
    page = _launch_in(browser, lms, reg, COURSE_A, monkeypatch, "Learner", "Alice Only-in-A")
    form = {"ts": session_token_of(page.url), "lang": "ja", "next": "/course"}

    refused = browser.post("/language", form)
    assert refused.status_code == 403
    assert "This form has expired or did not come from this tool." in page_text(refused)
    wrong = browser.post("/language", {**form, "csrf_token": "0" * 64})
    assert wrong.status_code == 403
    assert _person_locale(db) is None

    accepted = browser.post("/language", {**form, "csrf_token": csrf_token_of(page)})
    assert accepted.status_code == 303
    assert is_on_tool(accepted.headers["Location"], browser.tool_url)
    assert _person_locale(db) == "ja"
    assert html_lang(browser.get(accepted.headers["Location"])) == "ja"


def test_csrf_token_of_another_session_is_refused(
    browser: Browser,
    lms: TestLMS,
    reg: ToolRegistration,
    db: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    other = _launch_in(browser, lms, reg, COURSE_B, monkeypatch, "Learner", "Carol Only-in-B")
    page = _launch_in(browser, lms, reg, COURSE_A, monkeypatch, "Learner", "Alice Only-in-A")
    form = {"ts": session_token_of(page.url), "lang": "ja", "csrf_token": csrf_token_of(other)}
    assert browser.post("/language", form).status_code == 403


@pytest.mark.parametrize(
    "next_url",
    [
        "https://phish.example/",
        "//phish.example/course",
        "/\\phish.example",
        "/lti/launch",
        "javascript:alert(1)",
    ],
)
def test_language_switch_redirects_only_to_tool_pages(
    browser: Browser,
    lms: TestLMS,
    reg: ToolRegistration,
    monkeypatch: pytest.MonkeyPatch,
    next_url: str,
) -> None:
    page = _launch_in(browser, lms, reg, COURSE_A, monkeypatch, "Learner", "Alice Only-in-A")
    form = {
        "ts": session_token_of(page.url),
        "csrf_token": csrf_token_of(page),
        "lang": "ja",
        "next": next_url,
    }
    response = browser.post("/language", form)
    assert response.status_code == 303
    location = response.headers["Location"]
    assert is_on_tool(location, browser.tool_url), location
    assert "phish.example" not in location
    assert browser.get(location).status_code == 200
