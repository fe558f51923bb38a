"""Security headers on every page: a CSP whose frame-ancestors follow the registered platforms,
no inline script or style for it to block, no sniffing, no referrers, no caching of pages."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
import requests
from flask import Flask
from sqlalchemy import update

from lti_tool.db import Database
from lti_tool.lti.models import Platform, PlatformStatus
from tests.platform.driver import Browser
from tests.platform.lms import TestLMS, ToolRegistration, User, parse_form


@pytest.fixture(autouse=True)
def _db_up_front(db: Database) -> None:
    """conftest's cleanup looks `db` up at teardown, which pytest 9 refuses unless it is active."""


def csp(response: requests.Response) -> dict[str, list[str]]:
    directives: dict[str, list[str]] = {}
    for directive in response.headers["Content-Security-Policy"].split(";"):
        name, *sources = directive.split()
        assert name not in directives, f"{name} given twice"
        directives[name] = sources
    return directives


def frame_ancestors(browser: Browser) -> list[str]:
    return csp(browser.get("/"))["frame-ancestors"]


def lms_origin(lms: TestLMS) -> str:
    return lms.base_url  # scheme://host:port, no path


def start_registration(browser: Browser, lms: TestLMS, token: str) -> requests.Response:
    lms.registration_tokens.add(token)
    return browser.get(
        "/lti/register",
        params={
            "openid_configuration": lms.base_url + "/.well-known/openid-configuration",
            "registration_token": token,
        },
    )


def invalidate(app: Flask) -> None:
    app.extensions["tsunagu.frame_ancestors"].invalidate()


# --- frame-ancestors --------------------------------------------------------------------------


def test_only_self_may_frame_the_tool_without_platforms(app, browser):
    invalidate(app)
    assert frame_ancestors(browser) == ["'self'"]


def test_a_registered_platform_may_frame_the_tool(app, browser, lms, reg):
    invalidate(app)  # as every registration does
    policy = csp(browser.get("/"))
    assert policy["frame-ancestors"] == ["'self'", lms_origin(lms)]
    # The registration and deep-linking forms post back to the platform.
    assert policy["form-action"] == ["'self'", lms_origin(lms)]


def test_a_disabled_platform_may_no_longer_frame_the_tool(app, browser, lms, reg, db):
    invalidate(app)
    assert lms_origin(lms) in frame_ancestors(browser)
    with db.session_scope() as session:
        session.execute(update(Platform).values(status=PlatformStatus.DISABLED))
    invalidate(app)
    assert frame_ancestors(browser) == ["'self'"]


def test_frame_ancestors_name_origins_not_urls(app, browser, db, register):
    register()
    with db.session_scope() as session:
        session.execute(
            update(Platform).values(
                issuer="https://moodle.example.jp/moodle",
                auth_login_url="https://auth.example.jp:8443/x?y",
            )
        )
    invalidate(app)
    assert frame_ancestors(browser) == [
        "'self'",
        "https://auth.example.jp:8443",
        "https://moodle.example.jp",
    ]


# --- headers on every kind of page ------------------------------------------------------------


@pytest.fixture
def pages(
    app: Flask,
    browser: Browser,
    lms: TestLMS,
    reg: ToolRegistration,
    learner: User,
    instructor: User,
) -> dict[str, requests.Response]:
    """One response of each kind the tool serves."""
    learner_page = browser.launch(reg, learner)
    staff_browser = Browser(browser.tool_url, lms)
    overview = staff_browser.launch(reg, instructor)
    assert learner_page.status_code == 200 and overview.status_code == 200
    return {
        "index": browser.get("/"),
        "course": learner_page,
        "overview": overview,
        "register": start_registration(browser, lms, "t"),
        "error": browser.get("/no/such/page"),
        "refusal": browser.post("/lti/launch", {}),
        "session-ended": browser.get("/course"),
        "health": browser.get("/health"),
        "jwks": browser.get("/lti/jwks"),
    }


HTML_PAGES = ["index", "course", "overview", "register", "error", "refusal", "session-ended"]
UNCACHED = [*HTML_PAGES, "health"]


def test_every_response_forbids_sniffing_and_referrers(pages):
    for name, response in pages.items():
        assert response.headers["X-Content-Type-Options"] == "nosniff", name
        assert response.headers["Referrer-Policy"] == "same-origin", name


def test_every_response_has_a_strict_csp(pages):
    for name, response in pages.items():
        policy = csp(response)
        assert policy["script-src"] == ["'self'"], name
        assert policy["style-src"] == ["'self'"], name
        assert policy["object-src"] == ["'none'"], name
        assert policy["base-uri"] == ["'none'"], name
        assert policy["default-src"] == ["'self'"], name
        everything = response.headers["Content-Security-Policy"]
        assert "'unsafe-inline'" not in everything and "'unsafe-eval'" not in everything, name
        assert "*" not in everything.split(), name


def test_pages_are_never_cached(pages):
    for name in UNCACHED:
        assert pages[name].headers["Cache-Control"] == "no-store", name
    assert pages["course"].url.split("?")[0].endswith("/course")
    # An instructor's launch of an activity not yet linked lands on the one-time choice.
    assert pages["overview"].url.split("?")[0].endswith("/link/setup")


def test_static_files_may_be_cached(browser):
    response = browser.get("/static/css/tsunagu.css")
    assert response.status_code == 200
    assert "no-store" not in response.headers.get("Cache-Control", "")
    assert response.headers["X-Content-Type-Options"] == "nosniff"


class _InlineCode(HTMLParser):
    """Finds what a CSP without 'unsafe-inline' would block: inline scripts, event-handler
    attributes, javascript: URLs, style elements and attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script":
            self.scripts += 1
            if not values.get("src"):
                self.found.append("inline <script>")
        if tag == "style":
            self.found.append("<style> element")
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"{name}= on <{tag}>")
            if name == "style":
                self.found.append(f"style= on <{tag}>")
            if value and value.strip().lower().startswith("javascript:"):
                self.found.append(f"javascript: URL in <{tag} {name}>")


def test_pages_have_nothing_the_csp_would_block(pages):
    for name in HTML_PAGES:
        response = pages[name]
        assert response.headers["Content-Type"].startswith("text/html"), name
        parser = _InlineCode()
        parser.feed(response.text)
        assert parser.found == [], name


def test_registration_pages_may_be_framed_by_the_registering_platform(app, browser, lms):
    # Moodle opens the registration in an iframe, before the platform is registered.
    invalidate(app)
    page = start_registration(browser, lms, "t3")
    assert page.status_code == 200
    assert csp(page)["frame-ancestors"] == ["'self'", lms_origin(lms)]
    assert frame_ancestors(browser) == ["'self'"]  # not yet any other page
    done = browser.post(*parse_form(page.text))
    assert done.status_code == 200
    assert csp(done)["frame-ancestors"] == ["'self'", lms_origin(lms)]
    assert csp(done)["script-src"] == ["'self'"]


def test_registration_done_page_has_nothing_the_csp_would_block(browser, lms):
    page = start_registration(browser, lms, "t2")
    action, fields = parse_form(page.text)
    done = browser.post(action, fields)
    assert done.status_code == 200
    parser = _InlineCode()
    parser.feed(done.text)
    assert parser.found == []
    assert parser.scripts == 1  # the external registration-close script
    assert done.headers["Cache-Control"] == "no-store"
    # The new platform may frame the tool at once: the registration invalidated the cache.
    assert lms.base_url in csp(browser.get("/"))["frame-ancestors"]


# --- health -----------------------------------------------------------------------------------


def test_health_reports_the_database(browser):
    response = browser.get("/health")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    assert response.json() == {"status": "ok", "database": "ok"}
