"""LTI Dynamic Registration against the test LMS: the confirmation page, the registration request
Moodle accepts, what the tool stores, the first launch, and every refusal."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from flask import Response
from sqlalchemy import select

from lti_tool.db import Database
from lti_tool.lti.models import Platform, PlatformStatus, RegisteredVia
from tests.platform.driver import Browser
from tests.platform.lms import TestLMS, User, parse_form

TOOL_CONFIG = "https://purl.imsglobal.org/spec/lti-tool-configuration"
AGS_NRPS_SCOPES = {
    "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
    "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly",
    "https://purl.imsglobal.org/spec/lti-ags/scope/score",
    "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly",
}
TOKEN = "reg-token-1"


@pytest.fixture(autouse=True)
def _db_up_front(db: Database) -> None:
    """conftest's cleanup looks `db` up at teardown, which pytest 9 refuses unless it is active."""


@pytest.fixture
def dr(lms: TestLMS) -> Iterator[TestLMS]:
    """The test LMS with one valid registration token and no recorded registrations."""
    lms.registrations.clear()
    lms.registration_tokens.clear()
    lms.registration_tokens.add(TOKEN)
    yield lms
    lms.registration_tokens.clear()


def config_url(lms: TestLMS) -> str:
    return lms.base_url + "/.well-known/openid-configuration"


def stored(db: Database) -> list[dict[str, Any]]:
    """Every registration the tool has, as plain values."""
    with db.session_scope() as session:
        return [
            {
                "issuer": p.issuer,
                "client_id": p.client_id,
                "name": p.name,
                "auth_login_url": p.auth_login_url,
                "auth_token_url": p.auth_token_url,
                "jwks_url": p.jwks_url,
                "status": p.status,
                "via": p.registered_via,
                "product": p.product_family_code,
                "deployments": sorted(d.deployment_id for d in p.deployments),
            }
            for p in session.scalars(select(Platform).order_by(Platform.id))
        ]


def english(browser: Browser) -> Browser:
    browser.http.headers["Accept-Language"] = "en"
    return browser


def start(browser: Browser, lms: TestLMS, token: str = TOKEN) -> requests.Response:
    return browser.get(
        "/lti/register",
        params={"openid_configuration": config_url(lms), "registration_token": token},
    )


def register(browser: Browser, lms: TestLMS, token: str = TOKEN) -> requests.Response:
    """What the admin does in the LMS's dialog: open the page, press Register."""
    page = start(browser, lms, token)
    assert page.status_code == 200, page.text[:500]
    action, fields = parse_form(page.text)
    return browser.post(action, fields)


def error_title(page: requests.Response) -> str:
    start_tag = page.text.index('<h1 id="error-title">') + len('<h1 id="error-title">')
    return page.text[start_tag : page.text.index("</h1>", start_tag)]


# --- the round trip ---------------------------------------------------------------------------


def test_confirmation_page_names_the_platform_and_signs_the_form(browser, dr, db):
    page = start(english(browser), dr)
    assert page.status_code == 200
    assert "testlms" in page.text
    assert dr.issuer in page.text
    action, fields = parse_form(page.text)
    assert action == "/lti/register"
    assert fields["openid_configuration"] == config_url(dr)
    assert fields["registration_token"] == TOKEN
    assert fields["signed"]
    # Showing the page registers nothing, anywhere.
    assert dr.registrations == []
    assert stored(db) == []


def test_registration_sends_what_moodle_requires(app, browser, dr):
    done = register(browser, dr)
    assert done.status_code == 200, done.text[:800]
    tool = app.extensions["tsunagu.config"].tool_base_url
    [body] = dr.registrations
    tool_conf = body[TOOL_CONFIG]
    assert body["redirect_uris"] == [tool + "/lti/launch"]
    assert body["initiate_login_uri"] == tool + "/lti/login"
    assert body["jwks_uri"] == tool + "/lti/jwks"
    assert body["response_types"] == ["id_token"]
    assert body["token_endpoint_auth_method"] == "private_key_jwt"
    assert body.get("application_type", "web") == "web"
    assert tool_conf["target_link_uri"] == tool + "/lti/launch"
    assert tool_conf["domain"] == urlsplit(tool_conf["target_link_uri"]).netloc
    assert set(body["scope"].split()) >= AGS_NRPS_SCOPES
    assert "LtiDeepLinkingRequest" in {m["type"] for m in tool_conf["messages"]}
    assert body["logo_uri"].startswith(tool + "/")
    assert requests.get(body["logo_uri"], timeout=5).status_code == 200
    assert body["client_name#ja"] == "つなぐ"
    assert "外国人支援コーディネーター" in tool_conf["description#ja"]


def test_registration_stores_the_platform_and_its_deployment(browser, dr, db):
    done = register(browser, dr)
    assert done.status_code == 200
    [client_id] = dr.tools
    [platform] = stored(db)
    assert platform == {
        "issuer": dr.issuer,
        "client_id": client_id,
        "name": "testlms",
        "auth_login_url": dr.base_url + "/auth",
        "auth_token_url": dr.base_url + "/token",
        "jwks_url": dr.base_url + "/jwks",
        "status": PlatformStatus.ACTIVE,
        "via": RegisteredVia.DYNAMIC,
        "product": "testlms",
        "deployments": [dr.tools[client_id].deployment_id],
    }
    # The page shows what was stored, and tells the LMS to close its dialog.
    assert client_id in done.text
    assert dr.tools[client_id].deployment_id in done.text
    assert '<script src="/static/js/registration-close.js' in done.text


def test_registration_close_script_posts_the_lti_close_message(browser):
    script = browser.get("/static/js/registration-close.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["Content-Type"]
    assert 'postMessage({ subject: "org.imsglobal.lti.close" }' in script.text


def test_a_dynamically_registered_tool_launches(browser, dr, learner: User):
    assert register(browser, dr).status_code == 200
    [client_id] = dr.tools
    page = browser.launch(dr.tools[client_id], learner)
    assert page.status_code == 200
    assert "Nguyen Thi Lan" in page.text


@pytest.fixture
def same_client_id(dr: TestLMS, monkeypatch: pytest.MonkeyPatch) -> str:
    """Make the LMS answer every registration with one client_id, as Moodle's "update existing
    tool" does."""
    client_id = "dr-fixed"
    original = dr.app.view_functions["register"]

    def register_keeping_client_id() -> Any:
        response = original()
        if isinstance(response, tuple) or response.status_code != 200:
            return response
        answer = response.get_json()
        dr.tools[client_id] = dr.tools.pop(answer["client_id"])
        dr.tools[client_id].client_id = client_id
        answer["client_id"] = client_id
        return Response(json.dumps(answer), content_type="application/json")

    monkeypatch.setitem(dr.app.view_functions, "register", register_keeping_client_id)
    return client_id


def test_reregistering_updates_the_registration(browser, dr, db, same_client_id, learner):
    assert register(browser, dr).status_code == 200
    with db.session_scope() as session:
        platform = session.scalars(select(Platform)).one()
        platform.status = PlatformStatus.DISABLED
    dr.registration_tokens.add("reg-token-2")
    dr.config_overrides["https://purl.imsglobal.org/spec/lti-platform-configuration"] = {
        "product_family_code": "moodle",
        "version": "4.5",
    }

    assert register(browser, dr, token="reg-token-2").status_code == 200

    [platform] = stored(db)
    assert platform["client_id"] == same_client_id
    assert platform["name"] == "moodle" and platform["product"] == "moodle"
    # Re-registering in the LMS never re-enables what the tool's administrator disabled.
    assert platform["status"] == PlatformStatus.DISABLED
    assert platform["deployments"] == ["1", "2"]
    with db.session_scope() as session:
        session.scalars(select(Platform)).one().status = PlatformStatus.ACTIVE
    assert browser.launch(dr.tools[same_client_id], learner).status_code == 200


def test_with_approval_a_new_registration_waits_for_the_administrator(
    app, browser, dr, db, learner
):
    config = app.extensions["tsunagu.config"]
    app.extensions["tsunagu.config"] = config.with_overrides(registration_approval=True)
    try:
        page = register(browser, dr)
    finally:
        app.extensions["tsunagu.config"] = config
    assert page.status_code == 200 and "lti-tool platforms enable" in page.text
    [platform] = stored(db)
    assert platform["status"] == PlatformStatus.PENDING
    reg = next(iter(dr.tools.values()))
    login = browser.http.post(
        reg.login_url,
        data=dr.login_params(reg, learner),
        allow_redirects=False,
        timeout=10,
        headers={"Accept-Language": "en"},
    )
    assert login.status_code == 403 and "awaits approval" in login.text


def test_registering_again_in_the_lms_adds_a_second_registration(browser, dr, db):
    # Moodle's "register as a new tool": a new client_id, so a registration of its own.
    dr.registration_tokens.add("reg-token-2")
    assert register(browser, dr).status_code == 200
    assert register(browser, dr, token="reg-token-2").status_code == 200
    assert sorted(p["client_id"] for p in stored(db)) == sorted(dr.tools)
    assert len(dr.tools) == 2


# --- refusals ---------------------------------------------------------------------------------


def assert_refused(
    page: requests.Response, status: int, title: str, dr: TestLMS, db: Database
) -> None:
    assert page.status_code == status, page.text[:800]
    assert page.headers["Content-Type"].startswith("text/html")
    assert error_title(page) == title
    assert dr.registrations == []
    assert dr.tools == {}
    assert stored(db) == []


def test_opened_without_openid_configuration(browser, dr, db):
    page = english(browser).get("/lti/register")
    assert_refused(page, 400, "This launch was refused", dr, db)
    assert "Tool URL" in page.text


def test_issuer_on_another_host_is_refused(browser, dr, db):
    dr.config_overrides["issuer"] = "http://evil.example"
    page = start(english(browser), dr)
    assert_refused(page, 400, "This launch was refused", dr, db)
    assert "http://evil.example" in page.text
    assert "not on the host" in page.text


@pytest.mark.parametrize("field", ["jwks_uri", "authorization_endpoint", "registration_endpoint"])
def test_configuration_lacking_an_endpoint_is_refused(browser, dr, db, field):
    dr.config_overrides[field] = None
    page = start(english(browser), dr)
    assert_refused(page, 400, "This launch was refused", dr, db)
    assert field in page.text


@pytest.mark.parametrize("value", ["ftp://localhost/x", "/relative/register", 42])
def test_configuration_with_a_non_http_endpoint_is_refused(browser, dr, db, value):
    dr.config_overrides["registration_endpoint"] = value
    assert_refused(start(english(browser), dr), 400, "This launch was refused", dr, db)


def test_configuration_without_id_token_launches_is_refused(browser, dr, db):
    dr.config_overrides["response_types_supported"] = ["code"]
    assert_refused(start(english(browser), dr), 400, "This launch was refused", dr, db)


UPSTREAM = "The learning platform did not answer as expected"


def test_configuration_not_json(browser, dr, db, monkeypatch):
    monkeypatch.setitem(
        dr.app.view_functions,
        "openid_configuration",
        lambda: Response("<html>Moodle maintenance</html>", 200),
    )
    page = start(english(browser), dr)
    assert_refused(page, 502, UPSTREAM, dr, db)
    assert "could not be read" in page.text


def test_configuration_not_found(browser, dr, db):
    page = english(browser).get(
        "/lti/register",
        params={
            "openid_configuration": dr.base_url + "/.well-known/nothing-here",
            "registration_token": TOKEN,
        },
    )
    assert_refused(page, 502, UPSTREAM, dr, db)
    assert "could not be fetched" in page.text


def test_configuration_not_an_object(browser, dr, db, monkeypatch):
    monkeypatch.setitem(
        dr.app.view_functions,
        "openid_configuration",
        lambda: Response("[1, 2]", 200, content_type="application/json"),
    )
    assert_refused(start(english(browser), dr), 400, "This launch was refused", dr, db)


def test_registration_endpoint_refusing_the_token(browser, dr, db):
    # The page is shown (the token is only checked by the LMS), the POST then fails cleanly.
    page = register(english(browser), dr, token="expired-token")
    assert_refused(page, 502, UPSTREAM, dr, db)
    assert "refused the registration (HTTP 401)" in page.text
    assert "Traceback" not in page.text


def test_registration_endpoint_rejecting_the_body(browser, dr, db, monkeypatch):
    monkeypatch.setitem(
        dr.app.view_functions,
        "register",
        lambda: Response(
            '{"error": "invalid_client_metadata"}', 400, content_type="application/json"
        ),
    )
    page = register(english(browser), dr)
    assert_refused(page, 502, UPSTREAM, dr, db)
    assert "HTTP 400" in page.text


def test_registration_answer_without_client_id(browser, dr, db, monkeypatch):
    monkeypatch.setitem(
        dr.app.view_functions,
        "register",
        lambda: Response('{"client_name": "Tsunagu"}', 200, content_type="application/json"),
    )
    page = register(english(browser), dr)
    assert_refused(page, 502, UPSTREAM, dr, db)
    assert "no client ID" in page.text


@pytest.mark.parametrize(
    "tamper",
    [
        lambda fields, lms: fields.update(registration_token="another-token"),
        lambda fields, lms: fields.update(
            openid_configuration=lms.base_url.replace("localhost", "127.0.0.1")
            + "/.well-known/openid-configuration"
        ),
        lambda fields, lms: fields.update(signed=fields["signed"][:-4] + "AAAA"),
        lambda fields, lms: fields.pop("signed"),
    ],
    ids=["token", "configuration", "signature", "no-signature"],
)
def test_tampered_registration_form_is_refused(browser, dr, db, tamper: Callable[..., None]):
    page = start(english(browser), dr)
    action, fields = parse_form(page.text)
    tamper(fields, dr)
    dr.registration_tokens.add("another-token")
    assert_refused(browser.post(action, fields), 400, "This launch was refused", dr, db)


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/.well-known/openid-configuration",
        "http://0.0.0.0/.well-known/openid-configuration",
        "file:///etc/passwd",
        "gopher://localhost/",
    ],
)
def test_forbidden_configuration_urls_are_never_fetched(browser, dr, db, url):
    page = english(browser).get(
        "/lti/register", params={"openid_configuration": url, "registration_token": TOKEN}
    )
    assert_refused(page, 400, "This launch was refused", dr, db)
    assert "configuration URL is not valid" in page.text


@pytest.mark.parametrize("field", ["registration_endpoint", "jwks_uri", "token_endpoint"])
def test_configuration_pointing_at_link_local_endpoints_is_refused(browser, dr, db, field):
    # The configuration is the platform's word; its endpoints must pass the same check as its
    # own URL, or any site could make the tool post to a cloud metadata service.
    dr.config_overrides[field] = "http://169.254.169.254/latest/api/token"
    page = start(english(browser), dr)
    assert_refused(page, 400, "This launch was refused", dr, db)


@pytest.mark.parametrize(
    "url",
    [
        "http://[::1/.well-known/openid-configuration",
        "http://a..b/.well-known/openid-configuration",
        "http://" + "a" * 64 + ".example/.well-known/openid-configuration",
        "http://localhost:99999999/.well-known/openid-configuration",
        "http://localhost:port/.well-known/openid-configuration",
    ],
)
def test_malformed_configuration_urls_are_refused(browser, dr, db, url):
    page = english(browser).get(
        "/lti/register", params={"openid_configuration": url, "registration_token": TOKEN}
    )
    assert_refused(page, 400, "This launch was refused", dr, db)


def test_issuer_with_a_malformed_port_is_refused(browser, dr, db):
    dr.config_overrides["issuer"] = dr.issuer + "99999"
    assert_refused(start(english(browser), dr), 400, "This launch was refused", dr, db)


def test_what_the_platform_says_is_escaped(browser, dr, db):
    dr.config_overrides["https://purl.imsglobal.org/spec/lti-platform-configuration"] = {
        "product_family_code": "<script>alert(1)</script>"
    }
    hostile = config_url(dr) + '?x="><script>alert(2)</script>'
    page = browser.get(
        "/lti/register", params={"openid_configuration": hostile, "registration_token": TOKEN}
    )
    assert page.status_code == 200
    assert "<script>alert" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    # The escaped form still carries the exact values back.
    action, fields = parse_form(page.text)
    assert fields["openid_configuration"] == hostile
    done = browser.post(action, fields)
    assert done.status_code == 200
    assert "<script>alert" not in done.text
    assert [p["name"] for p in stored(db)] == ["<script>alert(1)</script>"]
