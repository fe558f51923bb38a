"""Forged launches: every launch validation rule, each refused with a crafted id_token.

Every test in this module is one forged launch that the tool must refuse (the count goes in the
issue's closing note: `pytest --collect-only -q tests/lti/test_launch_validation.py`). Each asserts
the 4xx status, that the page names the problem for the LMS admin, and that nothing was written:
no course, person or member rows, every table as it was, and the login state not consumed (a
refused launch writes nothing but a log line, so the user can still retry from the same login).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from sqlalchemy import update

from lti_tool.lti.models import Platform, PlatformStatus, RegisteredVia
from lti_tool.lti.registration import save_platform
from lti_tool.lti.state import LoginState, StateSigner
from tests.conftest import SECRET, make_user
from tests.lti.launch_helpers import (
    ENGLISH,
    b64json,
    hs256_token,
    launch_rows,
    login_state_unspent,
    page_text,
    rs256_without_kid,
    swap_body,
    table_counts,
    unsigned_token,
)
from tests.platform.driver import Browser, LoginResult
from tests.platform.lms import DL, LTI, MEMBERSHIP, PlatformKey, TestLMS, ToolRegistration, User

LOGIN_WINDOW = 600  # Config.login_state_ttl: the iat window


@dataclass
class Forgery:
    """A real login, and the claims the platform would sign for it; tests spoil one thing."""

    browser: Browser
    lms: TestLMS
    reg: ToolRegistration
    user: User
    login: LoginResult
    body: dict[str, Any]
    before: dict[str, int] = field(default_factory=dict)
    sent: dict[str, str] = field(default_factory=dict)

    def sign(self, **changes: Any) -> str:
        """The claims with `changes` applied (None deletes a claim), signed by the platform."""
        return self.lms.sign(self.spoil(**changes))

    def spoil(self, **changes: Any) -> dict[str, Any]:
        body = dict(self.body)
        for name, value in changes.items():
            if value is None:
                body.pop(name, None)
            else:
                body[name] = value
        return body

    def fields(self, id_token: str) -> dict[str, str]:
        return {"id_token": id_token, "state": self.login.state}

    def post(self, fields: dict[str, str]) -> requests.Response:
        self.sent = fields
        return self.browser.post_launch(fields)


@pytest.fixture
def forgery(browser: Browser, lms: TestLMS, reg: ToolRegistration, db: Any) -> Forgery:
    browser.http.headers.update(ENGLISH)
    user = make_user("Learner")
    login = browser.login(reg, user)
    body = lms.claims(reg, user, login.nonce)
    return Forgery(browser, lms, reg, user, login, body, before=table_counts(db))


def assert_refused(
    response: requests.Response, status: int, message: str, forgery: Forgery, db: Any
) -> None:
    text = page_text(response)
    assert response.status_code == status, (response.status_code, text[:600])
    assert "This launch was refused" in text
    assert message in text, text[:2000]
    assert response.headers["Content-Type"].startswith("text/html")
    # Nothing written: no launch rows, every table as it was, the login state still usable.
    assert launch_rows(db) == (0, 0, 0)
    assert table_counts(db) == forgery.before
    assert login_state_unspent(db, forgery.login.state, SECRET)
    # The page explains without echoing the token back.
    id_token = forgery.sent.get("id_token", "")
    assert len(id_token) < 20 or id_token[:40] not in response.text


def _claim(name: str) -> str:
    return LTI + name


def _now() -> int:
    return int(time.time())


# --- one rule, one forged token ------------------------------------------------------------------
# Each entry: how to forge the form fields, the status, and the message the page must show.

Forge = Callable[[Forgery], dict[str, str]]


def _alg_none(f: Forgery) -> dict[str, str]:
    header = {"alg": "none", "typ": "JWT", "kid": f.lms.signing_key.kid}
    return f.fields(unsigned_token(f.body, header))


def _hs256_with_public_pem(f: Forgery) -> dict[str, str]:
    # The algorithm-confusion attack: HMAC keyed with the platform's (public) PEM.
    key = f.lms.signing_key
    return f.fields(hs256_token(f.body, key.public_pem, {"typ": "JWT", "kid": key.kid}))


def _wrong_key_same_kid(f: Forgery) -> dict[str, str]:
    impostor = PlatformKey.generate(kid=f.lms.signing_key.kid)
    return f.fields(f.lms.sign(f.body, key=impostor))


def _body_altered_after_signing(f: Forgery) -> dict[str, str]:
    # A learner's genuine token, promoted to instructor after the platform signed it.
    token = f.sign()
    return f.fields(swap_body(token, f.spoil(**{_claim("roles"): [MEMBERSHIP + "Instructor"]})))


def _kid_missing(f: Forgery) -> dict[str, str]:
    return f.fields(rs256_without_kid(f.body, f.lms.signing_key))


def _expired(f: Forgery) -> dict[str, str]:
    now = _now()
    return f.fields(f.sign(iat=now - 400, exp=now - 300))


def _iat_in_future(f: Forgery) -> dict[str, str]:
    now = _now()
    return f.fields(f.sign(iat=now + 600, exp=now + 900))


def _iat_too_old(f: Forgery) -> dict[str, str]:
    # Still unexpired, but issued before any login state still alive could have been made.
    now = _now()
    return f.fields(f.sign(iat=now - LOGIN_WINDOW - 120, exp=now + 60))


def _nbf_in_future(f: Forgery) -> dict[str, str]:
    return f.fields(f.sign(nbf=_now() + 600))


def _exp_missing(f: Forgery) -> dict[str, str]:
    return f.fields(f.sign(exp=None))


def _wrong_nonce(f: Forgery) -> dict[str, str]:
    return f.fields(f.sign(nonce="n" * 43))


def _missing_nonce(f: Forgery) -> dict[str, str]:
    return f.fields(f.sign(nonce=None))


def _wrong_aud(f: Forgery) -> dict[str, str]:
    return f.fields(f.sign(aud="client-of-another-tool"))


def _aud_missing(f: Forgery) -> dict[str, str]:
    return f.fields(f.sign(aud=None))


def _aud_list_without_azp(f: Forgery) -> dict[str, str]:
    return f.fields(f.sign(aud=[f.reg.client_id, "client-of-another-tool"]))


def _azp_wrong(f: Forgery) -> dict[str, str]:
    return f.fields(
        f.sign(aud=[f.reg.client_id, "client-of-another-tool"], azp="client-of-another-tool")
    )


def _azp_wrong_single_aud(f: Forgery) -> dict[str, str]:
    return f.fields(f.sign(azp="client-of-another-tool"))


def _wrong_iss(f: Forgery) -> dict[str, str]:
    return f.fields(f.sign(iss="https://lms.evil.example"))


def _iss_missing(f: Forgery) -> dict[str, str]:
    return f.fields(f.sign(iss=None))


def _unknown_deployment(f: Forgery) -> dict[str, str]:
    return f.fields(f.sign(**{_claim("deployment_id"): "deployment-nobody-registered"}))


def _deployment_missing(f: Forgery) -> dict[str, str]:
    return f.fields(f.sign(**{_claim("deployment_id"): None}))


def _wrong_version(f: Forgery) -> dict[str, str]:
    return f.fields(f.sign(**{_claim("version"): "1.1.0"}))


def _unsupported_message_type(f: Forgery) -> dict[str, str]:
    return f.fields(f.sign(**{_claim("message_type"): "LtiStartProctoring"}))


def _message_type_missing(f: Forgery) -> dict[str, str]:
    return f.fields(f.sign(**{_claim("message_type"): None}))


def _missing_sub(f: Forgery) -> dict[str, str]:
    return f.fields(f.sign(sub=None))


def _sub_too_long(f: Forgery) -> dict[str, str]:
    return f.fields(f.sign(sub="s" * 256))


def _missing_roles(f: Forgery) -> dict[str, str]:
    return f.fields(f.sign(**{_claim("roles"): None}))


def _roles_not_a_list(f: Forgery) -> dict[str, str]:
    return f.fields(f.sign(**{_claim("roles"): MEMBERSHIP + "Instructor"}))


def _resource_link_without_id(f: Forgery) -> dict[str, str]:
    return f.fields(f.sign(**{_claim("resource_link"): {"title": "Module A"}}))


def _deep_linking_without_settings(f: Forgery) -> dict[str, str]:
    body = f.lms.claims(f.reg, f.user, f.login.nonce, message_type="LtiDeepLinkingRequest")
    body.pop(DL + "deep_linking_settings")
    return f.fields(f.lms.sign(body))


def _context_without_id(f: Forgery) -> dict[str, str]:
    return f.fields(f.sign(**{_claim("context"): {"title": "A course", "label": "C1"}}))


def _not_a_jwt(f: Forgery) -> dict[str, str]:
    return f.fields("abc")


def _two_parts(f: Forgery) -> dict[str, str]:
    return f.fields(f"{b64json({'alg': 'RS256', 'kid': f.lms.signing_key.kid})}.{b64json(f.body)}")


def _garbage_base64(f: Forgery) -> dict[str, str]:
    return f.fields("!!!$$$.%%%^^^.&&&***")


def _header_not_an_object(f: Forgery) -> dict[str, str]:
    token = f.sign()
    return f.fields(b64json(["RS256"]) + token[token.index(".") :])


def _oversized(f: Forgery) -> dict[str, str]:
    # Genuinely signed, but larger than any launch needs (64 KiB): refused before any parsing.
    return f.fields(f.sign(**{_claim("custom"): {"padding": "x" * 70_000}}))


def _no_id_token(f: Forgery) -> dict[str, str]:
    return {"state": f.login.state}


FORGED: list[Any] = [
    pytest.param(_alg_none, 401, "The id_token must be signed with RS256.", id="alg-none"),
    pytest.param(
        _hs256_with_public_pem,
        401,
        "The id_token must be signed with RS256.",
        id="hs256-keyed-with-public-pem",
    ),
    pytest.param(
        _wrong_key_same_kid,
        401,
        "The id_token's signature or claims are not valid.",
        id="wrong-key-same-kid",
    ),
    pytest.param(
        _body_altered_after_signing,
        401,
        "The id_token's signature or claims are not valid.",
        id="body-altered-after-signing",
    ),
    pytest.param(_kid_missing, 401, "The id_token header names no key (kid).", id="kid-missing"),
    pytest.param(_expired, 401, "The id_token has expired.", id="expired"),
    pytest.param(_iat_in_future, 401, "The id_token is dated in the future.", id="iat-future"),
    pytest.param(_iat_too_old, 401, "The id_token was issued too long ago.", id="iat-too-old"),
    pytest.param(_nbf_in_future, 401, "The id_token is dated in the future.", id="nbf-future"),
    pytest.param(_exp_missing, 401, "The id_token lacks a required claim: exp.", id="exp-missing"),
    pytest.param(
        _wrong_nonce, 401, "The id_token's nonce does not belong to this login.", id="wrong-nonce"
    ),
    pytest.param(_missing_nonce, 401, "The id_token has no nonce.", id="missing-nonce"),
    pytest.param(
        _wrong_aud, 401, "The id_token is not addressed to this tool's client ID.", id="wrong-aud"
    ),
    pytest.param(_aud_missing, 401, "The id_token's audience is missing.", id="aud-missing"),
    pytest.param(
        _aud_list_without_azp,
        401,
        "authorized party (azp) is not this tool",
        id="aud-list-without-azp",
    ),
    pytest.param(_azp_wrong, 401, "authorized party (azp) is not this tool", id="azp-wrong"),
    pytest.param(
        _azp_wrong_single_aud,
        401,
        "authorized party (azp) is not this tool",
        id="azp-wrong-single-aud",
    ),
    pytest.param(
        _wrong_iss,
        401,
        "The id_token comes from an issuer this tool is not registered with.",
        id="wrong-iss",
    ),
    pytest.param(_iss_missing, 401, "The id_token has no issuer (iss).", id="iss-missing"),
    pytest.param(
        _unknown_deployment,
        403,
        "The deployment “deployment-nobody-registered” is not registered for this platform.",
        id="unknown-deployment",
    ),
    pytest.param(
        _deployment_missing, 400, "The launch names no deployment.", id="deployment-missing"
    ),
    pytest.param(_wrong_version, 400, "The launch is not LTI version 1.3.0.", id="wrong-version"),
    pytest.param(
        _unsupported_message_type,
        400,
        "This tool does not support the message type “LtiStartProctoring”.",
        id="unsupported-message-type",
    ),
    pytest.param(
        _message_type_missing,
        400,
        "This tool does not support the message type",
        id="message-type-missing",
    ),
    pytest.param(_missing_sub, 401, "The id_token lacks a required claim: sub.", id="sub-missing"),
    pytest.param(
        _sub_too_long, 400, "The launch does not identify the user (sub).", id="sub-too-long"
    ),
    pytest.param(_missing_roles, 400, "The launch has no roles claim.", id="roles-missing"),
    pytest.param(_roles_not_a_list, 400, "The launch has no roles claim.", id="roles-not-a-list"),
    pytest.param(
        _resource_link_without_id,
        400,
        "The launch has no resource link id.",
        id="resource-link-without-id",
    ),
    pytest.param(
        _deep_linking_without_settings,
        400,
        "The deep-linking request has no return URL.",
        id="deep-linking-without-settings",
    ),
    pytest.param(
        _context_without_id, 400, "The launch's context claim has no id.", id="context-without-id"
    ),
    pytest.param(_not_a_jwt, 400, "The id_token is not a well-formed JWT.", id="not-a-jwt"),
    pytest.param(_two_parts, 400, "The id_token is not a well-formed JWT.", id="jwt-two-parts"),
    pytest.param(
        _garbage_base64, 400, "The id_token is not a well-formed JWT.", id="jwt-garbage-base64"
    ),
    pytest.param(
        _header_not_an_object,
        400,
        "The id_token is not a well-formed JWT.",
        id="jwt-header-not-an-object",
    ),
    pytest.param(_oversized, 400, "The id_token is too large.", id="oversized"),
    pytest.param(_no_id_token, 400, "The launch carries no id_token.", id="no-id-token"),
]


@pytest.mark.parametrize(("forge", "status", "message"), FORGED)
def test_forged_launch_is_refused(
    forgery: Forgery, db: Any, forge: Forge, status: int, message: str
) -> None:
    response = forgery.post(forge(forgery))
    assert_refused(response, status, message, forgery, db)


# --- rules whose setup differs ----------------------------------------------------------------


def test_unknown_kid_is_refused_after_one_jwks_refetch(
    forgery: Forgery, db: Any, app: Any, lms: TestLMS
) -> None:
    # The platform's keys are cached, as after any earlier launch.
    app.extensions["tsunagu.platform_keys"].key_for(lms.base_url + "/jwks", lms.signing_key.kid)
    hits = lms.jwks_hits
    token = lms.sign(forgery.body, key=PlatformKey.generate())
    response = forgery.post(forgery.fields(token))
    assert_refused(
        response,
        401,
        "The id_token is signed with a key the platform does not publish.",
        forgery,
        db,
    )
    assert lms.jwks_hits == hits + 1


def test_replayed_form_is_refused(browser: Browser, reg: ToolRegistration, db: Any) -> None:
    browser.http.headers.update(ENGLISH)
    login = browser.login(reg, make_user("Learner"))
    action, fields = browser.authorize(login)
    assert browser.post_launch(fields, action).status_code == 303
    before = table_counts(db)
    replay = browser.post_launch(fields, action)
    text = page_text(replay)
    assert replay.status_code == 401
    assert "This launch has expired or was already used." in text
    assert table_counts(db) == before


def test_replayed_id_token_with_a_fresh_login_is_refused(
    browser: Browser, reg: ToolRegistration, db: Any
) -> None:
    # An id_token captured from one launch, posted with the state of a new login.
    browser.http.headers.update(ENGLISH)
    user = make_user("Learner")
    login = browser.login(reg, user)
    action, fields = browser.authorize(login)
    assert browser.post_launch(fields, action).status_code == 303
    fresh = browser.login(reg, user)
    before = table_counts(db)
    response = browser.post_launch({"id_token": fields["id_token"], "state": fresh.state})
    assert response.status_code == 401
    assert "The id_token's nonce does not belong to this login." in page_text(response)
    assert table_counts(db) == before
    assert login_state_unspent(db, fresh.state, SECRET)


def test_unknown_state_is_refused(forgery: Forgery, db: Any) -> None:
    fields = {"id_token": forgery.sign(), "state": "s" * 43}
    response = forgery.post(fields)
    assert_refused(response, 401, "This launch has expired or was already used.", forgery, db)


def test_missing_state_is_refused(forgery: Forgery, db: Any) -> None:
    response = forgery.post({"id_token": forgery.sign()})
    assert_refused(response, 400, "The launch has no login state.", forgery, db)


def test_expired_state_is_refused(forgery: Forgery, db: Any) -> None:
    # The same state (so the id_token's nonce still matches), signed by the tool, but expired.
    signer = StateSigner(SECRET)
    issued = signer.decode(forgery.login.state)
    assert issued is not None
    expired = LoginState(issued.key, issued.platform_id, _now() - 1, issued.nonce)
    fields = {**forgery.fields(forgery.sign()), "state": signer.encode(expired)}
    response = forgery.post(fields)
    assert_refused(response, 401, "This launch has expired or was already used.", forgery, db)


@pytest.mark.parametrize("part", [1, 2, 3])
def test_tampered_state_is_refused(forgery: Forgery, db: Any, part: int) -> None:
    # Another platform, a later expiry, or a made-up MAC: the state's MAC no longer checks out.
    pieces = forgery.login.state.split(".")
    pieces[part] = {1: "999", 2: str(_now() + 86400), 3: "A" * 32}[part]
    fields = {**forgery.fields(forgery.sign()), "state": ".".join(pieces)}
    response = forgery.post(fields)
    assert_refused(response, 401, "This launch has expired or was already used.", forgery, db)


def test_iss_of_another_registered_platform_is_refused(
    browser: Browser, lms: TestLMS, reg: ToolRegistration, db: Any
) -> None:
    # Another platform the tool trusts, even under the same client_id: the login chose this one.
    with db.session_scope() as session:
        save_platform(
            session,
            issuer="https://other-lms.example",
            client_id=reg.client_id,
            name="Other LMS",
            auth_login_url="https://other-lms.example/auth",
            auth_token_url=None,
            auth_audience=None,
            jwks_url=lms.base_url + "/jwks",
            product_family_code=None,
            deployment_ids=[reg.deployment_id],
            registered_via=RegisteredVia.MANUAL,
        )
    browser.http.headers.update(ENGLISH)
    user = make_user("Learner")
    login = browser.login(reg, user)
    forgery = Forgery(browser, lms, reg, user, login, lms.claims(reg, user, login.nonce))
    forgery.before = table_counts(db)
    response = forgery.post(forgery.fields(forgery.sign(iss="https://other-lms.example")))
    assert_refused(
        response,
        401,
        "The id_token's issuer is not the platform that started this login.",
        forgery,
        db,
    )


def test_launch_for_disabled_platform_is_refused(forgery: Forgery, db: Any) -> None:
    # Disabled between the login and the launch.
    with db.session_scope() as session:
        session.execute(update(Platform).values(status=PlatformStatus.DISABLED))
    forgery.before = table_counts(db)
    response = forgery.post(forgery.fields(forgery.sign()))
    assert_refused(
        response, 403, "This tool's registration with the platform is disabled.", forgery, db
    )


@pytest.mark.parametrize(
    ("fields", "shown"),
    [
        pytest.param({"error": "login_required"}, "login_required", id="error-only"),
        pytest.param(
            {"error": "login_required", "error_description": "The user is not logged in."},
            "The user is not logged in.",
            id="error-with-description",
        ),
    ],
)
def test_platform_oidc_error_response_is_refused(
    forgery: Forgery, db: Any, fields: dict[str, str], shown: str
) -> None:
    response = forgery.post({**fields, "state": forgery.login.state})
    assert_refused(
        response, 400, "The platform could not complete the launch: " + shown, forgery, db
    )


@pytest.fixture
def two_registrations(
    browser: Browser, lms: TestLMS, register: Callable[..., ToolRegistration], db: Any
) -> tuple[Forgery, ToolRegistration]:
    """A login for the first of two registrations of the same platform, and the second."""
    first = register(deployment_id="dep-first", client_id="client-first")
    second = register(deployment_id="dep-second", client_id="client-second")
    browser.http.headers.update(ENGLISH)
    user = make_user("Learner")
    login = browser.login(first, user)
    forgery = Forgery(browser, lms, first, user, login, lms.claims(first, user, login.nonce))
    forgery.before = table_counts(db)
    return forgery, second


def test_aud_of_the_platforms_other_registration_is_refused(
    two_registrations: tuple[Forgery, ToolRegistration], db: Any
) -> None:
    forgery, second = two_registrations
    response = forgery.post(forgery.fields(forgery.sign(aud=second.client_id)))
    assert_refused(
        response, 401, "The id_token is not addressed to this tool's client ID.", forgery, db
    )


def test_deployment_of_the_platforms_other_registration_is_refused(
    two_registrations: tuple[Forgery, ToolRegistration], db: Any
) -> None:
    forgery, second = two_registrations
    token = forgery.sign(**{_claim("deployment_id"): second.deployment_id})
    response = forgery.post(forgery.fields(token))
    assert_refused(
        response,
        403,
        "The deployment “dep-second” is not registered for this platform.",
        forgery,
        db,
    )


def test_refusal_page_escapes_what_the_token_says(forgery: Forgery, db: Any) -> None:
    markup = '<script>alert("x")</script>'
    response = forgery.post(forgery.fields(forgery.sign(**{_claim("deployment_id"): markup})))
    assert_refused(
        response,
        403,
        f"The deployment “{markup}” is not registered for this platform.",
        forgery,
        db,
    )
    assert markup not in response.text


def test_refused_launch_leaves_the_login_usable(forgery: Forgery, db: Any) -> None:
    # A forged token cannot burn the user's login: the genuine one still launches after it.
    refused = forgery.post(forgery.fields(forgery.sign(nonce="n" * 43)))
    assert_refused(refused, 401, "The id_token's nonce does not belong to this login.", forgery, db)
    genuine = forgery.post(forgery.fields(forgery.sign()))
    assert genuine.status_code == 303
    assert not login_state_unspent(db, forgery.login.state, SECRET)
    assert launch_rows(db) == (1, 1, 1)
