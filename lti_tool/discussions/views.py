"""Scenario pages: the list, and one scenario (good-practice points for instructors only)."""

from __future__ import annotations

from flask import Blueprint, g, render_template
from flask.typing import ResponseReturnValue
from flask_babel import lazy_gettext as _l

from lti_tool import runtime
from lti_tool.catalog.scenarios import Scenario
from lti_tool.db import read_only
from lti_tool.errors import NotFound
from lti_tool.web.context import requires_session

bp = Blueprint("discussions", __name__, url_prefix="/scenarios", template_folder="templates")


@bp.get("/")
@read_only
@requires_session
def index() -> ResponseReturnValue:
    scenarios = sorted(runtime.catalog().scenarios.values(), key=lambda s: s.id)
    return render_template("discussions/index.html", scenarios=scenarios)


@bp.get("/<scenario_id>")
@read_only
@requires_session
def scenario(scenario_id: str) -> ResponseReturnValue:
    found: Scenario | None = runtime.catalog().scenarios.get(scenario_id)
    if found is None:
        raise NotFound(_l("This case scenario does not exist."))
    return render_template(
        "discussions/scenario.html", scenario=found, show_practice=g.tool_session.is_staff
    )
