"""The LTI URL contract: /lti/login, /lti/launch, /lti/jwks, /lti/register (DESIGN.md)."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable

from flask import Blueprint, Response, current_app, g, jsonify, redirect, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import lazy_gettext as _l
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response as BaseResponse

from lti_tool import runtime
from lti_tool.db import Direct, get_db, get_session
from lti_tool.lti import keys
from lti_tool.lti.errors import LtiRefused
from lti_tool.lti.launch import Launch, consume_login_state, validate_launch
from lti_tool.lti.login import start_login, state_cookie_name
from lti_tool.lti.registration import (
    ToolUrls,
    fetch_platform_configuration,
    register_with_platform,
)
from lti_tool.lti.toolconf import DbToolConf
from lti_tool.web.security import origin_of
from lti_tool.web.session import set_tool_cookie

log = logging.getLogger(__name__)

bp = Blueprint("lti", __name__, url_prefix="/lti", template_folder="templates")

# Registered by the app factory: turns a validated launch into the response (domain code).
LaunchHandler = Callable[[Session, Launch], BaseResponse]
# Registered with it: the common launch (a returning member), on a connection of its own
# without the ORM. It spends the login state (the function it is given) in the transaction
# that records the launch; None, with nothing written, leaves the launch to the other.
KnownLaunchHandler = Callable[[Direct, Launch, Callable[[Direct], None]], BaseResponse | None]


def tool_urls() -> ToolUrls:
    return ToolUrls(runtime.config().tool_base_url)


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    params = request.form if request.method == "POST" else request.args
    cfg = runtime.config()
    start = start_login(
        runtime.platforms(),
        runtime.state_signer(),
        params,
        tool_base_url=cfg.tool_base_url,
        redirect_uri=tool_urls().launch,
        state_ttl=cfg.login_state_ttl,
    )
    response = redirect(start.redirect_url, code=302)
    set_tool_cookie(response, request, state_cookie_name(start.state), start.state, start.ttl)
    return response


@bp.post("/launch")
def launch() -> ResponseReturnValue:
    if "id_token" not in request.form and request.form.get("error"):
        raise LtiRefused(
            f"platform error {request.form.get('error', '')[:40]}",
            _l(
                "The platform could not complete the launch: %(error)s",
                error=request.form.get("error_description", request.form["error"])[:300],
            ),
        )
    cfg = runtime.config()
    # Validation reads no database (signed state, registrations from the worker's snapshot),
    # so no transaction is open while the platform's keys are fetched.
    validated = validate_launch(
        request.form,
        request.cookies,
        runtime.platforms(),
        runtime.state_signer(),
        DbToolConf(get_session, cfg.secret_key),
        runtime.platform_keys(),
        iat_window=dt.timedelta(seconds=cfg.login_state_ttl),
        leeway=cfg.iat_leeway,
    )
    # What the launch opens (a picker, an item, a setup page) is the domain's business.
    known: KnownLaunchHandler | None = current_app.extensions.get("tsunagu.known_launch_handler")
    response = None
    # Not beside a session that validation had to open (a registration missing from the
    # worker's snapshot): on SQLite its transaction holds this thread's turn to write.
    if known is not None and g.get("_db_session") is None:
        with get_db().direct() as conn:
            response = known(conn, validated, lambda writer: consume_login_state(writer, validated))
    if response is None:
        session = get_session()
        consume_login_state(Direct.within(session), validated)
        handler: LaunchHandler = current_app.extensions["tsunagu.launch_handler"]
        response = handler(session, validated)
    # The state cookie did its work; don't let them pile up in the browser.
    state = request.form.get("state", "")
    if request.cookies.get(state_cookie_name(state)):
        response.delete_cookie(
            state_cookie_name(state), path="/", secure=True, samesite="None", partitioned=True
        )
    return response


@bp.get("/jwks")
def jwks() -> ResponseReturnValue:
    response = jsonify(keys.jwks(get_session()))
    response.headers["Cache-Control"] = "public, max-age=300"
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


def _registration_signer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(runtime.config().secret_key, salt="tsunagu.register.v1")


def _registration_fingerprint(config_url: str, token: str) -> str:
    return hashlib.sha256(f"{config_url}\0{token}".encode()).hexdigest()


def _registration_params() -> tuple[str, str]:
    source = request.form if request.method == "POST" else request.args
    config_url = source.get("openid_configuration", "")
    token = source.get("registration_token", "")
    # Moodle opens these pages in an iframe before the platform is registered: let the
    # platform's origin frame them (its issuer must be on this host; checked when parsed).
    origin = origin_of(config_url)
    if origin:
        g.extra_frame_origins = (origin,)
    if not config_url or len(config_url) > 2048 or len(token) > 4096:
        raise LtiRefused(
            "registration without openid_configuration",
            _l(
                "This is the tool's registration address. Paste it into your LMS as the "
                "“Tool URL” of a new LTI Advantage tool; the LMS then opens it for you."
            ),
            hint=_l("Opened directly, it has nothing to register."),
        )
    return config_url, token


@bp.get("/register")
def register_start() -> ResponseReturnValue:
    config_url, token = _registration_params()
    platform_config = fetch_platform_configuration(
        config_url, timeout=runtime.config().http_timeout
    )
    signed = _registration_signer().dumps(_registration_fingerprint(config_url, token))
    response = Response(
        render_template(
            "lti/register_confirm.html",
            platform=platform_config,
            config_url=config_url,
            registration_token=token,
            signed=signed,
            urls=tool_urls(),
        )
    )
    return response


@bp.post("/register")
def register_finish() -> ResponseReturnValue:
    config_url, token = _registration_params()
    try:
        fingerprint = _registration_signer().loads(request.form.get("signed", ""), max_age=3600)
    except BadSignature:
        raise LtiRefused(
            "registration form signature", _l("This registration form has expired.")
        ) from None
    if fingerprint != _registration_fingerprint(config_url, token):
        raise LtiRefused("registration form altered", _l("This registration form was altered."))
    cfg = runtime.config()
    platform_config = fetch_platform_configuration(config_url, timeout=cfg.http_timeout)
    session = get_session()
    result = register_with_platform(
        session,
        platform_config,
        token or None,
        tool_urls(),
        timeout=cfg.http_timeout,
        pending=cfg.registration_approval,
    )
    # Committed before the snapshot is dropped, so that no worker thread reloads it without the
    # new registration (the LMS may launch the tool right after the dialog closes).
    session.commit()
    runtime.platforms().invalidate()
    response: Response = Response(
        render_template("lti/register_done.html", result=result, platform=platform_config)
    )
    return response
