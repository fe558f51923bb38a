"""Per-request session handling: load the token, guard views, keep links carrying the token."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar, cast

from flask import Flask, current_app, g, redirect, request, url_for
from flask_babel import lazy_gettext as _l
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from lti_tool import runtime
from lti_tool.errors import Forbidden, NotAuthenticated
from lti_tool.web.session import (
    BINDING_COOKIE,
    CSRF_FIELD,
    TOKEN_PARAM,
    SessionError,
    ToolSession,
    binding_hash,
    new_binding,
    new_sid,
    set_tool_cookie,
    token_from_request,
)

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

# Endpoints whose URLs never carry the session token.
_TOKENLESS_PREFIXES = ("static", "lti.", "demo.", "web.")
# Set on the second hop of "open in a new window": the binding cookie was set on the first.
WINDOW_CHECK_PARAM = "cookie_check"


def current_session() -> ToolSession | None:
    return cast("ToolSession | None", g.get("tool_session"))


def session_token() -> str | None:
    """A fresh token for the current session (renewed on every page, see web.session)."""
    tool_session = current_session()
    if tool_session is None:
        return None
    token = g.get("_fresh_token")
    if token is None:
        token = runtime.session_codec().dumps(tool_session)
        g._fresh_token = token
    return cast(str, token)


def window_token() -> str | None:
    """The token for "open in a new window": this session, unbound. A new top-level window is
    another cookie partition than the LMS's iframe (CHIPS; Firefox's Total Cookie Protection),
    so the binding cookie the frame kept never reaches it and a bound token would dead-end
    there. Unbound, it lives as briefly as any token of a browser that refuses our cookies;
    the window then binds the session to a first-party cookie (`rebind_to_window`)."""
    tool_session = current_session()
    if tool_session is None or tool_session.binding is None:
        return session_token()
    return runtime.session_codec().dumps(replace(tool_session, binding=None))


def csrf_token() -> str:
    tool_session = current_session()
    if tool_session is None:
        return ""
    return runtime.session_codec().csrf_token(tool_session)


def replace_session(tool_session: ToolSession) -> None:
    """Use a changed session (e.g. a new language) for the rest of this request."""
    g.tool_session = tool_session
    g.pop("_fresh_token", None)


def init_session_handling(app: Flask) -> None:
    @app.before_request
    def _load_session() -> None:
        g.tool_session = None
        token = token_from_request(request)
        if token is None:
            return
        cookies = request.cookies
        # (`in` first: `get` of an absent name costs werkzeug a raised exception.)
        binding_cookie = cookies[BINDING_COOKIE] if BINDING_COOKIE in cookies else None  # noqa: SIM401
        try:
            g.tool_session = runtime.session_codec().loads(token, binding_cookie)
        except SessionError as exc:
            g.session_error = exc.reason

    @app.url_defaults
    def _carry_token(endpoint: str, values: dict[str, Any]) -> None:
        if TOKEN_PARAM in values or endpoint.startswith(_TOKENLESS_PREFIXES):
            return
        token = session_token()
        if token is not None:
            values[TOKEN_PARAM] = token

    @app.context_processor
    def _template_session() -> dict[str, Any]:
        return {
            "tool_session": current_session(),
            "session_token": session_token,
            "window_token": window_token,
            "csrf_token": csrf_token,
            "CSRF_FIELD": CSRF_FIELD,
            "TOKEN_PARAM": TOKEN_PARAM,
        }


def _require_session() -> ToolSession:
    tool_session = current_session()
    if tool_session is None:
        reason = g.get("session_error", "no token")
        log.info("session refused reason=%s path=%s", reason, request.path)
        error = NotAuthenticated(
            _l("Your session with this tool has ended, or this page was opened without one."),
            hint=_l("Go back to the course page in your LMS and open the activity again."),
            log_detail=f"session: {reason}",
        )
        raise error
    if request.method == "POST" and not runtime.session_codec().check_csrf(
        tool_session, request.form.get(CSRF_FIELD)
    ):
        raise Forbidden(
            _l("This form has expired or did not come from this tool."),
            hint=_l("Reload the page and try again."),
            log_detail="csrf check failed",
        )
    return tool_session


def requires_session(view: F) -> F:
    """The view needs a launched session (any role); POSTs also need the CSRF token."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _require_session()
        return view(*args, **kwargs)

    return cast(F, wrapper)


def requires_staff(view: F) -> F:
    """The view is for instructors and administrators of the session's course."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not _require_session().is_staff:
            raise Forbidden(
                _l("This page is for the course's instructors."), log_detail="staff required"
            )
        return view(*args, **kwargs)

    return cast(F, wrapper)


def start_session(
    *,
    member_id: int,
    course_id: int,
    person_id: int,
    platform_id: int,
    resource_link_pk: int | None,
    roles: frozenset[Any],
    locale: str,
    cookies_work: bool,
    landing_endpoint: str,
    landing_values: dict[str, Any] | None = None,
    deep_link_id: int | None = None,
) -> Response:
    """Answer a valid launch: a 303 to the landing page with the new session's token, and the
    binding cookie where the browser showed at login that it keeps our cookies."""
    # One binding per browser, reused across launches, so two tabs of two courses both stay valid.
    binding = (request.cookies.get(BINDING_COOKIE) or new_binding()) if cookies_work else None
    tool_session = ToolSession(
        member_id=member_id,
        course_id=course_id,
        person_id=person_id,
        platform_id=platform_id,
        resource_link_pk=resource_link_pk,
        roles=roles,
        locale=locale,
        started_at=int(time.time()),
        sid=new_sid(),
        binding=binding_hash(binding) if binding else None,
        deep_link_id=deep_link_id,
    )
    replace_session(tool_session)
    response = redirect(url_for(landing_endpoint, **(landing_values or {})), code=303)
    if binding is not None:
        set_tool_cookie(response, request, BINDING_COOKIE, binding, runtime.config().session_ttl)
    return response


def rebind_to_window(tool_session: ToolSession, landing_endpoint: str) -> Response:
    """Continue a session in a new top-level window, bound to a first-party cookie where the
    browser keeps one. Without one yet, set it and come back (`WINDOW_CHECK_PARAM`): a browser
    that refused it continues unbound, as in the frame, instead of dead-ending."""
    ttl = runtime.config().session_ttl
    binding = request.cookies.get(BINDING_COOKIE)
    if binding is None and not request.args.get(WINDOW_CHECK_PARAM):
        endpoint = request.endpoint
        assert endpoint is not None  # called from a view
        check: dict[str, Any] = {WINDOW_CHECK_PARAM: "1"}
        response = redirect(url_for(endpoint, **check), code=303)
        set_tool_cookie(response, request, BINDING_COOKIE, new_binding(), ttl)
        return response
    replace_session(replace(tool_session, binding=binding_hash(binding) if binding else None))
    response = redirect(url_for(landing_endpoint), code=303)
    if binding is not None:
        set_tool_cookie(response, request, BINDING_COOKIE, binding, ttl)
    return response


def own_page_url(path: str) -> str | None:
    """The URL of one of the tool's session pages at `path`, rebuilt with the current token;
    None for anything else (foreign, unknown, or not a session page)."""
    if not path.startswith("/") or path.startswith("//"):
        return None
    adapter = current_app.url_map.bind_to_environ(request.environ)
    try:
        endpoint, values = adapter.match(path, method="GET")
    except HTTPException:
        return None
    if endpoint.startswith(_TOKENLESS_PREFIXES):
        return None
    return url_for(endpoint, **values)
