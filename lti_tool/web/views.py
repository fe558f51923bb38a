"""Pages that belong to no feature: the tool's front page for admins, and health."""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify, render_template
from flask.typing import ResponseReturnValue
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from lti_tool import runtime
from lti_tool.db import get_db
from lti_tool.lti.registration import ToolUrls

log = logging.getLogger(__name__)

bp = Blueprint("web", __name__, template_folder="templates")


@bp.get("/")
def index() -> ResponseReturnValue:
    return render_template("web/index.html", urls=ToolUrls(runtime.config().tool_base_url))


@bp.get("/health")
def health() -> ResponseReturnValue:
    try:
        with get_db().read_scope() as session:
            session.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        log.error("health check: database unreachable: %s", type(exc).__name__)
        return jsonify(status="error", database="unreachable"), 503
    return jsonify(status="ok", database="ok")
