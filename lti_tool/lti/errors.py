"""The refusal every LTI step raises: a reason for the log, a message for the LMS admin."""

from __future__ import annotations

from flask_babel import LazyString
from flask_babel import lazy_gettext as _l

from lti_tool.errors import ToolError


class LtiRefused(ToolError):
    """An LTI message (login, launch, registration) that fails validation."""

    title = _l("This launch was refused")

    def __init__(
        self,
        reason: str,
        message: str | LazyString,
        *,
        status: int = 400,
        hint: str | LazyString | None = None,
    ) -> None:
        super().__init__(
            message,
            hint=hint
            or _l(
                "Go back to the course page and open the activity again. If this keeps "
                "happening, show this page to your LMS administrator."
            ),
            log_detail=reason,
        )
        self.status = status
        self.reason = reason


def inactive_registration(status: str) -> LtiRefused:
    """The refusal for a registration that is not active (disabled, or awaiting approval)."""
    if status == "pending":
        return LtiRefused(
            "registration pending approval",
            _l("This tool's registration with the platform awaits approval."),
            status=403,
            hint=_l("Ask Tsunagu's administrator to approve it (lti-tool platforms enable)."),
        )
    return LtiRefused(
        "registration disabled",
        _l("This tool's registration with the platform is disabled."),
        status=403,
        hint=_l("Ask the tool's administrator to enable the registration."),
    )
