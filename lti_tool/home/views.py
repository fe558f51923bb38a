"""Landing pages, the language switch and "open in a new window"."""

from __future__ import annotations

from collections.abc import Hashable

from flask import Blueprint, g, redirect, render_template, request
from flask.typing import ResponseReturnValue

from lti_tool import runtime
from lti_tool.db import get_db, get_session, read_only
from lti_tool.errors import BadRequest
from lti_tool.home import services
from lti_tool.web.context import (
    current_session,
    rebind_to_window,
    replace_session,
    requires_session,
    requires_staff,
)
from lti_tool.web.i18n import SUPPORTED_LOCALES
from lti_tool.web.templating import page_cache

bp = Blueprint("home", __name__, template_folder="templates")


@bp.get("/course")
@requires_session
def course() -> ResponseReturnValue:
    with get_db().direct() as conn, conn.snapshot():
        page = services.course_home(conn, runtime.catalog(), g.tool_session)
    return page_cache("tsunagu.course_pages").render(
        _course_page_key(page),
        "home/course.html",
        fills={"reader_name": page.reader_name},
        page=page,
    )


def _course_page_key(page: services.CourseHome) -> Hashable:
    """Everything a course home shows but the reader's tokens and name (see PageCache)."""
    return (
        request.args.get("activity"),
        g.tool_session.is_staff,
        page.course_title,
        page.reader_name is not None,
        page.activity_title,
        tuple(
            (
                module.module.id,
                module.percent,
                module.completed_required,
                module.required_count,
                module.settings.due_at if module.settings else None,
                module.is_overdue,
            )
            for module in page.modules
        ),
    )


@bp.get("/course/overview")
@read_only
@requires_staff
def overview() -> ResponseReturnValue:
    page = services.course_overview(get_session(), g.tool_session)
    return render_template("home/overview.html", page=page)


@bp.post("/language")
@requires_session
def language() -> ResponseReturnValue:
    lang = request.form.get("lang", "")
    if lang not in SUPPORTED_LOCALES:
        raise BadRequest("unsupported language", log_detail=f"language {lang[:10]!r}")
    tool_session = services.choose_language(get_session(), g.tool_session, lang)
    replace_session(tool_session)
    return redirect(services.safe_next(request.form.get("next"), tool_session), code=303)


@bp.get("/session/window")
@requires_session
def new_window() -> ResponseReturnValue:
    tool_session = current_session()
    assert tool_session is not None
    return rebind_to_window(tool_session, services.landing_endpoint(tool_session))
