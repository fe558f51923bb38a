"""Demo LMS pages: pick a person and a course, open the course page that frames the tool."""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlencode

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
)
from flask.typing import ResponseReturnValue
from flask_babel import lazy_gettext as _l

from lti_tool import runtime
from lti_tool.db import get_db
from lti_tool.demo import platform as demo
from lti_tool.errors import BadRequest
from lti_tool.web.security import origin_of

bp = Blueprint("demo", __name__, url_prefix="/demo", template_folder="templates")


def _platform() -> demo.DemoPlatform:
    found = current_app.extensions.get("tsunagu.demo")
    if found is None:
        found = demo.DemoPlatform(runtime.config())
        current_app.extensions["tsunagu.demo"] = found
    return found


@bp.before_request
def _loopback_only() -> ResponseReturnValue | None:
    # The demo signs launches for anyone who asks: it must never answer beyond this machine.
    try:
        if not ipaddress.ip_address(request.remote_addr or "").is_loopback:
            abort(404)
    except ValueError:
        abort(404)
    # Serve the demo on `localhost` so that it frames the tool (127.0.0.1) from another site.
    if request.host.split(":")[0] != "localhost" and request.method == "GET":
        return redirect(f"http://localhost:{runtime.config().port}{request.full_path}", code=302)
    return None


def _page(template: str, **context: Any) -> Response:
    response = Response(render_template(template, **context))
    tool = origin_of(runtime.config().tool_base_url) or "'self'"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"frame-src 'self' {tool}; form-action 'self' {tool}; frame-ancestors 'self' {tool}; "
        "object-src 'none'; base-uri 'none'"
    )
    return response


def _choice() -> tuple[demo.DemoPerson, demo.DemoCourse]:
    who = demo.person(request.args.get("person", ""))
    where = demo.course(request.args.get("course", ""))
    if who is None or where is None:
        raise BadRequest(_l("Choose a person and a course on the demo's start page."))
    return who, where


@bp.get("/")
def index() -> ResponseReturnValue:
    # `lti-tool serve` registers the demo platform; the start page makes sure of it (only here:
    # the auth and JWKS endpoints answer the tool in the middle of a launch and must not wait
    # on a write).
    with get_db().session_scope() as session:
        _platform().ensure_registered(session)
    return _page("demo/index.html", people=demo.PEOPLE, courses=demo.COURSES)


@bp.get("/course")
def course_page() -> ResponseReturnValue:
    who, where = _choice()
    frame_url = "/demo/frame?" + urlencode({"person": who.key, "course": where.key})
    return _page("demo/course.html", person=who, course=where, frame_url=frame_url)


@bp.get("/frame")
def frame() -> ResponseReturnValue:
    """What the LMS loads into the iframe: the login initiation, auto-posted to the tool."""
    who, where = _choice()
    platform = _platform()
    base = runtime.config().tool_base_url
    fields = {
        "iss": platform.issuer,
        "login_hint": who.key,
        "target_link_uri": base + "/lti/launch",
        "lti_message_hint": where.key,
        "client_id": demo.CLIENT_ID,
        "lti_deployment_id": demo.DEPLOYMENT_ID,
    }
    return _page("demo/autopost.html", action=base + "/lti/login", fields=fields)


@bp.get("/auth")
def auth() -> ResponseReturnValue:
    """The platform's OIDC auth endpoint: checks the tool's request, answers with an id_token."""
    args = request.args
    launch_url = runtime.config().tool_base_url + "/lti/launch"
    who = demo.person(args.get("login_hint", ""))
    where = demo.course(args.get("lti_message_hint", ""))
    if (
        args.get("client_id") != demo.CLIENT_ID
        or args.get("redirect_uri") != launch_url
        or args.get("response_type") != "id_token"
        or args.get("response_mode") != "form_post"
        or args.get("scope") != "openid"
        or not args.get("nonce")
        or not args.get("state")
        or who is None
        or where is None
    ):
        raise BadRequest(_l("The demo LMS refused this authentication request."))
    token = _platform().id_token(who, where, args["nonce"], launch_url)
    return _page(
        "demo/autopost.html",
        action=launch_url,
        fields={"id_token": token, "state": args["state"]},
    )


@bp.get("/jwks")
def jwks() -> ResponseReturnValue:
    return jsonify({"keys": [_platform().jwk]})
