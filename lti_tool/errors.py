"""Typed errors. Each carries an HTTP status and a translatable message for the page.

Services raise these; one error handler in `web.errors` turns them into pages. Nothing that a
user, a browser or a platform can send should ever surface as a 500.
"""

from __future__ import annotations

from flask_babel import LazyString
from flask_babel import lazy_gettext as _l


class ToolError(Exception):
    """Base of every error the tool expects and explains."""

    status: int = 400
    title: LazyString = _l("The request could not be completed")

    def __init__(
        self,
        message: str | LazyString,
        *,
        hint: str | LazyString | None = None,
        log_detail: str | None = None,
    ) -> None:
        super().__init__(str(log_detail or message))
        self.message = message
        # A hint says what the reader can do next (relaunch, ask the LMS admin ...).
        self.hint = hint
        # What goes to the log: never personal data, never a token.
        self.log_detail = log_detail or str(message)
        # Pages for session problems offer "open in a new window".
        self.offer_new_window = False


class BadRequest(ToolError):
    status = 400
    title = _l("The request is not valid")


class NotAuthenticated(ToolError):
    status = 401
    title = _l("Your session has ended")


class Forbidden(ToolError):
    status = 403
    title = _l("You do not have access to this page")


class NotFound(ToolError):
    status = 404
    title = _l("This page does not exist")


class Conflict(ToolError):
    status = 409
    title = _l("This was already done")


class PayloadTooLarge(ToolError):
    status = 413
    title = _l("The upload is too large")


class UpstreamError(ToolError):
    """A platform we called answered badly or not at all (the tool itself is fine)."""

    status = 502
    title = _l("The learning platform did not answer as expected")
