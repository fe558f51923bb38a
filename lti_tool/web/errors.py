"""One place that turns errors into pages (HTML) or JSON, never leaking internals."""

from __future__ import annotations

import logging

from flask import Flask, g, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from werkzeug.exceptions import HTTPException

from lti_tool.errors import ToolError

log = logging.getLogger("lti_tool.errors")


def _wants_json() -> bool:
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return (
        best == "application/json"
        and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]
    )


def _page(
    status: int, title: str, message: str, hint: str | None, new_window: bool
) -> ResponseReturnValue:
    if _wants_json():
        return {"error": title, "message": message}, status
    return (
        render_template(
            "errors/error.html",
            status=status,
            title=title,
            message=message,
            hint=hint,
            offer_new_window=new_window,
            in_session=g.get("tool_session") is not None,
        ),
        status,
    )


def init_error_pages(app: Flask) -> None:
    @app.errorhandler(ToolError)
    def _tool_error(error: ToolError) -> ResponseReturnValue:
        log.info(
            "refused status=%s kind=%s detail=%s path=%s",
            error.status,
            type(error).__name__,
            error.log_detail,
            request.path,
        )
        return _page(
            error.status,
            str(error.title),
            str(error.message),
            str(error.hint) if error.hint else None,
            error.offer_new_window,
        )

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> ResponseReturnValue:
        status = error.code or 500
        titles = {
            400: _("The request is not valid"),
            404: _("This page does not exist"),
            405: _("This address does not accept this kind of request"),
            413: _("The upload is too large"),
        }
        messages = {
            400: _("The request could not be understood."),
            404: _("Check the address, or go back to the course page in your LMS."),
            405: _("Open this page from your LMS instead."),
            413: _("The data sent is larger than this tool accepts."),
        }
        log.info("http error status=%s path=%s", status, request.path)
        return _page(
            status,
            titles.get(status, _("The request could not be completed")),
            messages.get(status, _("The request could not be completed.")),
            None,
            False,
        )

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> ResponseReturnValue:
        log.exception("unexpected error path=%s", request.path)
        return _page(
            500,
            _("Something went wrong in the tool"),
            _("The error has been logged. Please try again in a moment."),
            None,
            False,
        )
