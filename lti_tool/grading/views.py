"""Instructors' view of grades and their delivery to the LMS, with resend."""

from __future__ import annotations

from flask import Blueprint, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from lti_tool.db import get_session, read_only
from lti_tool.errors import BadRequest
from lti_tool.grading import services
from lti_tool.web.context import requires_staff

bp = Blueprint("grading", __name__, template_folder="templates")


@bp.get("/course/grades")
@read_only
@requires_staff
def index() -> ResponseReturnValue:
    session = get_session()
    course_id = g.tool_session.course_id
    items = services.grade_items(session, course_id)
    rows = {item.id: services.latest_grades(session, course_id, item.id) for item in items}
    return render_template("grading/index.html", items=items, rows=rows)


@bp.post("/course/grades/<int:item_id>/resend")
@requires_staff
def resend(item_id: int) -> ResponseReturnValue:
    raw = request.form.get("member_id", "")
    if raw and not raw.isdigit():
        raise BadRequest("member_id must be a number")
    count = services.resend(
        get_session(), g.tool_session.course_id, item_id, int(raw) if raw else None
    )
    return redirect(url_for("grading.index", resent=count), code=303)
