"""Never a 500 for bad input: hostile and malformed requests to every entry point get a 4xx
page that names the error (or JSON, for a client that asks for it), and nothing else."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flask import Flask

from lti_tool.db import Database
from tests.platform.driver import Browser
from tests.platform.lms import ToolRegistration, User

REFUSED = "This launch was refused"
SESSION_ENDED = "Your session has ended"
FORBIDDEN = "You do not have access to this page"
NOT_VALID = "The request is not valid"
NOT_FOUND = "This page does not exist"
WRONG_METHOD = "This address does not accept this kind of request"
TOO_LARGE = "The upload is too large"

FORM = "application/x-www-form-urlencoded"
HUGE = "x" * 100_000
JUNK = bytes(range(256)) * 40  # every byte value, NULs and invalid UTF-8 included
NOT_UTF8 = b"\xff\xfe\xc0\xaf\xed\xa0\x80"


@pytest.fixture(autouse=True)
def _db_up_front(db: Database) -> None:
    """conftest's cleanup looks `db` up at teardown, which pytest 9 refuses unless it is active."""


@dataclass(frozen=True)
class Case:
    id: str
    method: str
    path: str
    status: int
    title: str
    params: dict[str, str] | None = None
    data: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    files: dict[str, Any] | None = None

    def send(self, base: str, accept: str) -> requests.Response:
        headers = {"Accept-Language": "en", "Accept": accept, **self.headers}
        return requests.request(
            self.method,
            base + self.path,
            params=self.params,
            data=self.data,
            files=self.files,
            headers=headers,
            allow_redirects=False,
            timeout=10,
        )


def own(path: str) -> str:
    """A placeholder for the tool's own base URL, filled in by `fill`."""
    return "{tool}" + path


CASES = [
    # --- /lti/login ---
    Case("login-get-nothing", "GET", "/lti/login", 400, REFUSED),
    Case("login-post-nothing", "POST", "/lti/login", 400, REFUSED, data={}),
    Case(
        "login-huge-iss",
        "POST",
        "/lti/login",
        400,
        REFUSED,
        data={"iss": HUGE, "login_hint": "u", "target_link_uri": own("/lti/launch")},
    ),
    Case(
        "login-huge-hint",
        "POST",
        "/lti/login",
        400,
        REFUSED,
        data={
            "iss": "https://lms.example",
            "login_hint": HUGE,
            "target_link_uri": own("/lti/launch"),
        },
    ),
    Case(
        "login-foreign-target",
        "POST",
        "/lti/login",
        400,
        REFUSED,
        data={
            "iss": "https://lms.example",
            "login_hint": "u",
            "target_link_uri": "https://evil.example/lti/launch",
        },
    ),
    Case(
        "login-target-bad-ipv6",
        "POST",
        "/lti/login",
        400,
        REFUSED,
        data={"iss": "https://lms.example", "login_hint": "u", "target_link_uri": "http://[::1/x"},
    ),
    Case(
        "login-unknown-issuer",
        "POST",
        "/lti/login",
        403,
        REFUSED,
        data={
            "iss": "https://unknown.example",
            "login_hint": "u",
            "target_link_uri": own("/lti/launch"),
            "client_id": "c",
            "lti_deployment_id": "1",
        },
    ),
    Case(
        "login-issuer-with-nul",
        "POST",
        "/lti/login",
        400,
        NOT_VALID,
        data={
            "iss": "https://lms.example/\x00",
            "login_hint": "u\x00",
            "target_link_uri": own("/lti/launch"),
            "client_id": "\x00",
        },
    ),
    Case(
        "login-binary-junk",
        "POST",
        "/lti/login",
        400,
        REFUSED,
        data=JUNK,
        headers={"Content-Type": FORM},
    ),
    Case(
        "login-not-utf8-form",
        "POST",
        "/lti/login",
        400,
        REFUSED,
        data=b"iss=" + NOT_UTF8 + b"&login_hint=" + NOT_UTF8 + b"&target_link_uri=" + NOT_UTF8,
        headers={"Content-Type": FORM},
    ),
    Case(
        "login-not-utf8-query",
        "GET",
        "/lti/login?iss=%FF%FE&login_hint=%C0%AF&target_link_uri=%ED%A0%80",
        400,
        REFUSED,
    ),
    Case(
        "login-json-body",
        "POST",
        "/lti/login",
        400,
        REFUSED,
        data=json.dumps({"iss": "https://lms.example", "login_hint": "u"}),
        headers={"Content-Type": "application/json"},
    ),
    Case(
        "login-broken-multipart",
        "POST",
        "/lti/login",
        400,
        REFUSED,
        data=b'--b\r\nContent-Disposition: form-data; name="iss"\r\n\r\nx',
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    ),
    Case(
        "login-multipart-file",
        "POST",
        "/lti/login",
        400,
        REFUSED,
        files={"iss": ("iss.bin", JUNK, "application/octet-stream")},
    ),
    Case("login-3mb", "POST", "/lti/login", 413, TOO_LARGE, data={"iss": "x" * (3 * 1024 * 1024)}),
    Case("login-delete", "DELETE", "/lti/login", 405, WRONG_METHOD),
    Case("login-put", "PUT", "/lti/login", 405, WRONG_METHOD, data={"iss": "x"}),
    # --- /lti/launch ---
    Case("launch-get", "GET", "/lti/launch", 405, WRONG_METHOD),
    Case("launch-nothing", "POST", "/lti/launch", 400, REFUSED, data={}),
    Case(
        "launch-unknown-state",
        "POST",
        "/lti/launch",
        401,
        REFUSED,
        data={"state": "nope", "id_token": "a.b.c"},
    ),
    Case(
        "launch-huge-state",
        "POST",
        "/lti/launch",
        400,
        REFUSED,
        data={"state": HUGE, "id_token": "a.b.c"},
    ),
    Case(
        "launch-state-with-nul",
        "POST",
        "/lti/launch",
        400,
        NOT_VALID,
        data={"state": "abc\x00def", "id_token": "a.b.c"},
    ),
    Case(
        "launch-huge-id-token",
        "POST",
        "/lti/launch",
        401,
        REFUSED,
        data={"state": "nope", "id_token": HUGE},
    ),
    Case(
        "launch-platform-error",
        "POST",
        "/lti/launch",
        400,
        REFUSED,
        data={
            "error": "<script>alert(1)</script>",
            "error_description": "<img src=x onerror=1>" * 50,
        },
    ),
    Case(
        "launch-json-body",
        "POST",
        "/lti/launch",
        400,
        REFUSED,
        data=json.dumps({"state": "s", "id_token": "a.b.c"}),
        headers={"Content-Type": "application/json"},
    ),
    Case(
        "launch-binary-junk",
        "POST",
        "/lti/launch",
        400,
        REFUSED,
        data=JUNK,
        headers={"Content-Type": FORM},
    ),
    Case(
        "launch-binary-octets",
        "POST",
        "/lti/launch",
        400,
        REFUSED,
        data=JUNK,
        headers={"Content-Type": "application/octet-stream"},
    ),
    Case(
        "launch-not-utf8",
        "POST",
        "/lti/launch",
        400,
        REFUSED,
        data=b"state=" + NOT_UTF8 + b"&id_token=" + NOT_UTF8,
        headers={"Content-Type": FORM},
    ),
    Case(
        "launch-3mb",
        "POST",
        "/lti/launch",
        413,
        TOO_LARGE,
        data={"id_token": "x" * (3 * 1024 * 1024), "state": "s"},
    ),
    Case(
        "launch-3mb-multipart",
        "POST",
        "/lti/launch",
        413,
        TOO_LARGE,
        files={"id_token": ("t", b"x" * (3 * 1024 * 1024))},
    ),
    # --- /lti/register ---
    Case("register-nothing", "GET", "/lti/register", 400, REFUSED),
    Case(
        "register-huge-config",
        "GET",
        "/lti/register",
        400,
        REFUSED,
        params={"openid_configuration": "https://lms.example/" + "x" * 3000},
    ),
    Case(
        "register-huge-token",
        "GET",
        "/lti/register",
        400,
        REFUSED,
        params={"openid_configuration": "https://lms.example/", "registration_token": "t" * 5000},
    ),
    Case(
        "register-not-a-url",
        "GET",
        "/lti/register",
        400,
        REFUSED,
        params={"openid_configuration": "javascript:alert(1)"},
    ),
    Case(
        "register-bad-ipv6",
        "GET",
        "/lti/register",
        400,
        REFUSED,
        params={"openid_configuration": "http://[::1/"},
    ),
    Case("register-not-utf8", "GET", "/lti/register?openid_configuration=%FF%FE", 400, REFUSED),
    Case("register-nul", "GET", "/lti/register?openid_configuration=%FF%FE%00", 400, NOT_VALID),
    Case("register-post-nothing", "POST", "/lti/register", 400, REFUSED, data={}),
    Case(
        "register-post-unsigned",
        "POST",
        "/lti/register",
        400,
        REFUSED,
        data={"openid_configuration": "https://lms.example/", "signed": "garbage"},
    ),
    Case(
        "register-post-junk",
        "POST",
        "/lti/register",
        400,
        REFUSED,
        data=JUNK,
        headers={"Content-Type": FORM},
    ),
    Case(
        "register-post-json",
        "POST",
        "/lti/register",
        400,
        REFUSED,
        data=json.dumps({"openid_configuration": "https://lms.example/"}),
        headers={"Content-Type": "application/json"},
    ),
    Case(
        "register-3mb",
        "POST",
        "/lti/register",
        413,
        TOO_LARGE,
        data={"openid_configuration": "x" * (3 * 1024 * 1024)},
    ),
    Case("register-put", "PUT", "/lti/register", 405, WRONG_METHOD),
    # --- /course, /course/overview, /language ---
    Case("course-no-session", "GET", "/course", 401, SESSION_ENDED),
    Case("course-forged-token", "GET", "/course", 401, SESSION_ENDED, params={"ts": "x.y.z"}),
    Case("course-long-token", "GET", "/course", 401, SESSION_ENDED, params={"ts": "a" * 8000}),
    Case("course-not-utf8-token", "GET", "/course?ts=%FF%FE", 401, SESSION_ENDED),
    Case("course-nul-token", "GET", "/course?ts=%FF%FE%00", 400, NOT_VALID),
    Case(
        "course-header-token",
        "GET",
        "/course",
        401,
        SESSION_ENDED,
        headers={"X-Tsunagu-Session": "e30.e30.e30"},
    ),
    Case("course-post", "POST", "/course", 405, WRONG_METHOD, data={"ts": "x"}),
    Case("course-3mb", "POST", "/course", 413, TOO_LARGE, data={"ts": "x" * (3 * 1024 * 1024)}),
    Case("overview-no-session", "GET", "/course/overview", 401, SESSION_ENDED),
    Case(
        "overview-forged-token",
        "GET",
        "/course/overview",
        401,
        SESSION_ENDED,
        params={"ts": "W10.abc.def"},
    ),
    Case("language-get", "GET", "/language", 405, WRONG_METHOD),
    Case("language-no-session", "POST", "/language", 401, SESSION_ENDED, data={"lang": "en"}),
    Case(
        "language-junk",
        "POST",
        "/language",
        401,
        SESSION_ENDED,
        data=JUNK,
        headers={"Content-Type": FORM},
    ),
    Case(
        "language-3mb", "POST", "/language", 413, TOO_LARGE, data={"lang": "x" * (3 * 1024 * 1024)}
    ),
    # --- /lti/jwks and the rest ---
    Case("jwks-post", "POST", "/lti/jwks", 405, WRONG_METHOD, data={"k": "v"}),
    Case("jwks-delete", "DELETE", "/lti/jwks", 405, WRONG_METHOD),
    Case("unknown-path", "GET", "/lti/nothing", 404, NOT_FOUND),
    Case("not-utf8-path", "GET", "/%FF%FE/%C0%AF", 404, NOT_FOUND),
    Case("traversal", "GET", "/static/../../etc/passwd", 404, NOT_FOUND),
    Case(
        "hostile-accept-language",
        "GET",
        "/course",
        401,
        SESSION_ENDED,
        headers={"Accept-Language": "en;q=abc, *;q=-1, \u00ff"},
    ),
]


def fill(case: Case, tool: str) -> Case:
    """Put the tool's base URL where a case names it."""
    if not isinstance(case.data, dict):
        return case
    data = {k: v.replace("{tool}", tool) if isinstance(v, str) else v for k, v in case.data.items()}
    return Case(**{**case.__dict__, "data": data})


def error_title(page: str) -> str:
    start = page.index('<h1 id="error-title">') + len('<h1 id="error-title">')
    return html.unescape(page[start : page.index("</h1>", start)])


@pytest.fixture
def tool(app: Flask) -> str:
    return str(app.extensions["tsunagu.config"].tool_base_url)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gets_an_error_page(tool, case):
    response = fill(case, tool).send(tool, "text/html,application/xhtml+xml,*/*;q=0.8")
    assert response.status_code == case.status, response.text[:600]
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert error_title(response.text) == case.title
    assert f"Error code: {case.status}" in response.text
    assert "Traceback" not in response.text
    assert response.headers["Cache-Control"] == "no-store"
    if case.id == "launch-platform-error":
        assert "<script>alert(1)" not in response.text and "<img src=x" not in response.text
        assert "&lt;img src=x onerror=1&gt;" in response.text


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_gets_json_when_json_is_asked_for(tool, case):
    response = fill(case, tool).send(tool, "application/json")
    assert response.status_code == case.status, response.text[:600]
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body["error"] == case.title
    assert isinstance(body["message"], str) and body["message"]
    assert set(body) == {"error", "message"}


def test_error_pages_default_to_japanese(tool):
    response = requests.get(tool + "/course", timeout=10)
    assert response.status_code == 401
    assert '<html lang="ja">' in response.text


def test_jwks_ignores_junk_query(tool):
    response = requests.get(tool + "/lti/jwks?%FF%FE=%FE&kid=" + "x" * 5000, timeout=10)
    assert response.status_code == 200
    assert response.json()["keys"]


# --- bad input inside a launched session ------------------------------------------------------


@dataclass
class Launched:
    browser: Browser
    token: str
    csrf: str


def launched(app: Flask, browser: Browser, reg: ToolRegistration, user: User) -> Launched:
    """A launched session: its token from the landing URL, its CSRF token as the tool's forms
    carry it. In English, as the error titles compared here are."""
    page = browser.launch(reg, user, locale="en")
    assert page.status_code == 200
    token = parse_qs(urlsplit(page.url).query)["ts"][0]
    codec = app.extensions["tsunagu.codec"]
    tool_session = codec.loads(token, browser.http.cookies.get("tsunagu_bind"))
    return Launched(browser, token, codec.csrf_token(tool_session))


def english(response: requests.Response) -> tuple[int, str]:
    return response.status_code, error_title(response.text)


def test_learner_cannot_open_the_overview(app, browser, reg, learner):
    session = launched(app, browser, reg, learner)
    response = browser.get(
        "/course/overview", params={"ts": session.token}, headers={"Accept-Language": "en"}
    )
    assert english(response) == (403, FORBIDDEN)


@pytest.mark.parametrize(
    ("form", "status", "title"),
    [
        ({"lang": "en"}, 403, FORBIDDEN),  # no CSRF token
        ({"lang": "en", "csrf_token": "0" * 64}, 403, FORBIDDEN),
        ({"lang": "en", "csrf_token": NOT_UTF8.decode("latin-1")}, 403, FORBIDDEN),
        ({"lang": "xx", "csrf_token": "{csrf}"}, 400, NOT_VALID),
        ({"lang": HUGE, "csrf_token": "{csrf}"}, 400, NOT_VALID),
        ({"lang": "en", "csrf_token": "{csrf}", "next": "https://evil.example/"}, 303, ""),
        ({"lang": "en", "csrf_token": "{csrf}", "next": "//evil.example/x"}, 303, ""),
        ({"lang": "en", "csrf_token": "{csrf}", "next": "/%FF/\xff"}, 303, ""),
        ({"lang": "en", "csrf_token": "{csrf}", "next": "/course\x00"}, 400, NOT_VALID),
    ],
    ids=[
        "no-csrf",
        "wrong-csrf",
        "binary-csrf",
        "unknown-lang",
        "huge-lang",
        "foreign-next",
        "scheme-relative-next",
        "junk-next",
        "nul-next",
    ],
)
def test_language_switch_with_bad_input(app, browser, reg, learner, form, status, title):
    session = launched(app, browser, reg, learner)
    data = {k: v.replace("{csrf}", session.csrf) for k, v in form.items()}
    response = browser.post(
        "/language", {**data, "ts": session.token}, headers={"Accept-Language": "en"}
    )
    assert response.status_code == status, response.text[:600]
    if status == 303:
        location = response.headers["Location"]
        assert location.startswith("/") and not location.startswith("//")
        assert urlsplit(location).path == "/course"
    else:
        assert error_title(response.text) == title


def test_lms_refusing_json_still_gets_html(tool):
    # A browser's usual Accept: HTML first, JSON not mentioned.
    response = requests.get(
        tool + "/course",
        headers={"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"},
        timeout=10,
    )
    assert response.headers["Content-Type"].startswith("text/html")
    # Equal preference keeps HTML too.
    response = requests.get(
        tool + "/course", headers={"Accept": "application/json, text/html"}, timeout=10
    )
    assert response.headers["Content-Type"].startswith("text/html")
