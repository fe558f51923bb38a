"""Template filters and globals shared by every feature's templates."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from flask import Flask
from flask_babel import format_datetime, get_locale, get_translations
from flask_babel import lazy_gettext as _l
from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup

from lti_tool.catalog.ruby import render_inline
from lti_tool.lti.roles import Role, decode_roles

ROLE_LABELS = {
    Role.ADMINISTRATOR: _l("Administrator"),
    Role.INSTRUCTOR: _l("Instructor"),
    Role.TEACHING_ASSISTANT: _l("Teaching assistant"),
    Role.MENTOR: _l("Mentor"),
    Role.CONTENT_DEVELOPER: _l("Content developer"),
    Role.LEARNER: _l("Learner"),
}


def role_labels(roles_text: str) -> str:
    roles = decode_roles(roles_text)
    labels = [str(label) for role, label in ROLE_LABELS.items() if role in roles]
    return ", ".join(labels) or str(_l("Learner (no role given)"))


def merge_query(args: Mapping[str, str], **changes: str) -> str:
    merged = {key: value for key, value in args.items() if key not in changes}
    merged.update(changes)
    return urlencode(merged)


def datetime_local(value: dt.datetime) -> str:
    return str(format_datetime(value, "medium"))


def localized(text: Mapping[str, Any] | None) -> Markup:
    """A stored {"ja", "en"} text in the page's language, ruby rendered."""
    if not text:
        return Markup("")
    locale = str(get_locale() or "ja")
    return render_inline(str(text.get("ja" if locale == "ja" else "en") or text.get("en") or ""))


@pass_context
def _gettext(context: Context, message: str) -> str:
    # The page's catalog, looked up once per render (`_catalog`) rather than on every string;
    # macros imported without the page's context look it up themselves.
    catalog = context.get("_catalog") or get_translations()
    return str(catalog.ugettext(message))


@pass_context
def _ngettext(context: Context, singular: str, plural: str, n: int) -> str:
    catalog = context.get("_catalog") or get_translations()
    return str(catalog.ungettext(singular, plural, n))


def init_templating(app: Flask) -> None:
    # Replaces Flask-Babel's callables (same new-style semantics: autoescaped, %-formatted).
    app.jinja_env.install_gettext_callables(  # type: ignore[attr-defined]
        _gettext, _ngettext, newstyle=True
    )

    app.jinja_env.filters.update(
        role_labels=role_labels,
        merge_query=merge_query,
        datetime_local=datetime_local,
        localized=localized,
    )

    @app.context_processor
    def _locale() -> dict[str, Any]:
        return {"current_locale": str(get_locale() or "ja"), "_catalog": get_translations()}
