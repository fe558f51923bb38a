"""OIDC login initiation: what /lti/login accepts, what it refuses, and that it writes nothing
(its state is signed; only the launch that spends it is recorded)."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests
from sqlalchemy import select, update

from lti_tool.lti.login import state_cookie_name
from lti_tool.lti.models import Platform, PlatformStatus, UsedLoginState
from lti_tool.lti.state import StateSigner
from tests.conftest import SECRET, make_user
from tests.lti.launch_helpers import ENGLISH, page_text, table_counts
from tests.platform.driver import Browser
from tests.platform.lms import TestLMS, ToolRegistration, query_of


def _login(
    browser: Browser, reg: ToolRegistration, params: dict[str, str], method: str = "POST"
) -> requests.Response:
    if method == "POST":
        return browser.http.post(
            reg.login_url, data=params, headers=ENGLISH, allow_redirects=False, timeout=10
        )
    return browser.http.get(
        reg.login_url, params=params, headers=ENGLISH, allow_redirects=False, timeout=10
    )


def _states(db: Any) -> list[UsedLoginState]:
    with db.read_scope() as session:
        return list(session.scalars(select(UsedLoginState)))


def _assert_refused(response: requests.Response, status: int, message: str, db: Any) -> None:
    text = page_text(response)
    assert response.status_code == status, (response.status_code, text[:600])
    assert message in text, text[:2000]
    assert "Location" not in response.headers
    assert _states(db) == []


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_login_writes_nothing_and_redirects_to_the_platform_with_a_signed_state(
    browser: Browser, lms: TestLMS, reg: ToolRegistration, db: Any, method: str
) -> None:
    user = make_user("Learner")
    before = table_counts(db)
    response = _login(browser, reg, lms.login_params(reg, user), method)
    assert table_counts(db) == before
    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(lms.base_url + "/auth?")
    query = query_of(location)
    assert query["redirect_uri"] == browser.tool_url + "/lti/launch"
    assert query["client_id"] == reg.client_id
    assert query["login_hint"] == user.sub
    assert (query["response_type"], query["response_mode"], query["scope"]) == (
        "id_token",
        "form_post",
        "openid",
    )
    state = StateSigner(SECRET).decode(query["state"])
    assert state is not None and state.nonce == query["nonce"]
    with db.read_scope() as session:
        platform = session.scalars(select(Platform)).one()
    assert state.platform_id == platform.id
    assert 590 <= state.expires_at - time.time() <= 600
    assert response.cookies.get(state_cookie_name(query["state"])) == query["state"]
    # Another secret did not sign it, and no two logins share a state or a nonce.
    assert StateSigner(SECRET + "x").decode(query["state"]) is None
    again = query_of(_login(browser, reg, lms.login_params(reg, user), method).headers["Location"])
    assert again["state"] != query["state"] and again["nonce"] != query["nonce"]


@pytest.mark.parametrize("missing", ["iss", "login_hint", "target_link_uri"])
def test_login_without_a_required_parameter_is_refused(
    browser: Browser, lms: TestLMS, reg: ToolRegistration, db: Any, missing: str
) -> None:
    params = lms.login_params(reg, make_user("Learner"))
    del params[missing]
    response = _login(browser, reg, params)
    _assert_refused(response, 400, f"The login request lacks: {missing}.", db)


def test_login_without_any_parameter_names_them_all(
    browser: Browser, reg: ToolRegistration, db: Any
) -> None:
    response = _login(browser, reg, {})
    _assert_refused(response, 400, "The login request lacks: iss, login_hint, target_link_uri.", db)


@pytest.mark.parametrize(
    "target",
    [
        pytest.param("http://evil.example/lti/launch", id="other-host"),
        pytest.param("{scheme}://{host}:1/lti/launch", id="other-port"),
        pytest.param("https://{host}:{port}/lti/launch", id="other-scheme"),
        pytest.param("{scheme}://{host}:{port}.evil.example/lti/launch", id="host-prefix"),
        pytest.param("{scheme}://{host}:{port}@evil.example/lti/launch", id="userinfo"),
        pytest.param("//evil.example/lti/launch", id="scheme-relative"),
        pytest.param("javascript:alert(1)", id="javascript"),
    ],
)
def test_login_with_target_link_uri_elsewhere_is_refused(
    browser: Browser, lms: TestLMS, reg: ToolRegistration, db: Any, target: str
) -> None:
    tool = urlsplit(browser.tool_url)
    target = target.format(scheme=tool.scheme, host=tool.hostname, port=tool.port)
    params = lms.login_params(reg, make_user("Learner"), target_link_uri=target)
    response = _login(browser, reg, params)
    _assert_refused(
        response, 400, "The login request's target_link_uri does not point to this tool.", db
    )


def test_login_from_unknown_issuer_is_refused(
    browser: Browser, lms: TestLMS, reg: ToolRegistration, db: Any
) -> None:
    params = {**lms.login_params(reg, make_user("Learner")), "iss": "https://lms.evil.example"}
    response = _login(browser, reg, params)
    _assert_refused(
        response,
        403,
        "This tool is not registered with the platform “https://lms.evil.example”.",
        db,
    )


def test_login_with_unknown_client_id_is_refused(
    browser: Browser, lms: TestLMS, reg: ToolRegistration, db: Any
) -> None:
    params = {**lms.login_params(reg, make_user("Learner")), "client_id": "nobody-gave-this"}
    response = _login(browser, reg, params)
    _assert_refused(response, 403, "This tool is not registered with the platform", db)


def test_login_for_issuer_with_two_registrations_needs_client_id(
    browser: Browser, lms: TestLMS, register: Any, db: Any
) -> None:
    first = register(client_id="client-first")
    second = register(client_id="client-second")
    params = lms.login_params(second, make_user("Learner"))
    del params["client_id"]
    response = _login(browser, second, params)
    _assert_refused(
        response,
        400,
        "The platform has several registrations with this tool but sent no client_id.",
        db,
    )
    # With the client_id, the login picks that registration.
    chosen = _login(browser, second, lms.login_params(second, make_user("Learner")))
    assert chosen.status_code == 302
    assert query_of(chosen.headers["Location"])["client_id"] == second.client_id
    state = StateSigner(SECRET).decode(query_of(chosen.headers["Location"])["state"])
    assert state is not None
    with db.read_scope() as session:
        platform = session.get(Platform, state.platform_id)
        assert platform is not None and platform.client_id == second.client_id != first.client_id


def test_login_with_unknown_deployment_is_refused(
    browser: Browser, lms: TestLMS, reg: ToolRegistration, db: Any
) -> None:
    params = {**lms.login_params(reg, make_user("Learner")), "lti_deployment_id": "dep-unknown"}
    response = _login(browser, reg, params)
    _assert_refused(
        response, 403, "The deployment “dep-unknown” is not registered for this platform.", db
    )


def test_login_for_disabled_platform_is_refused(
    browser: Browser, lms: TestLMS, reg: ToolRegistration, db: Any
) -> None:
    with db.session_scope() as session:
        session.execute(update(Platform).values(status=PlatformStatus.DISABLED))
    response = _login(browser, reg, lms.login_params(reg, make_user("Learner")))
    _assert_refused(response, 403, "This tool's registration with the platform is disabled.", db)


def test_login_with_oversized_parameter_is_refused(
    browser: Browser, lms: TestLMS, reg: ToolRegistration, db: Any
) -> None:
    params = {**lms.login_params(reg, make_user("Learner")), "login_hint": "h" * 5000}
    before = table_counts(db)
    response = _login(browser, reg, params)
    _assert_refused(response, 400, "The login request is malformed.", db)
    assert table_counts(db) == before
