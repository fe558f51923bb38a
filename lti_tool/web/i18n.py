"""Language: Japanese and English, from the reader's choice, the launch locale, or the browser."""

from __future__ import annotations

from babel import Locale
from flask import g, request

SUPPORTED_LOCALES = ("ja", "en")
DEFAULT_LOCALE = "ja"


def normalize_locale(code: str | None) -> str | None:
    """Map an LMS or browser language code (Moodle: `ja`, `en`, `pt_br`, `zh_cn`) to ours.

    Japanese codes give Japanese; any other language gives English, the lingua franca of the
    tool's readers who do not read Japanese first.
    """
    if not code:
        return None
    primary = code.strip().replace("_", "-").split("-", 1)[0].lower()
    if not primary:
        return None
    return "ja" if primary == "ja" else "en"


def select_locale() -> str:
    session_locale = getattr(g, "locale_override", None)
    if session_locale in SUPPORTED_LOCALES:
        return str(session_locale)
    tool_session = getattr(g, "tool_session", None)
    if tool_session is not None and tool_session.locale in SUPPORTED_LOCALES:
        return str(tool_session.locale)
    chosen = normalize_locale(request.args.get("lang"))
    if chosen:
        return chosen
    if not request.accept_languages:
        return DEFAULT_LOCALE
    return request.accept_languages.best_match(SUPPORTED_LOCALES) or "en"


_LOCALES = {code: Locale.parse(code) for code in SUPPORTED_LOCALES}


def select_babel_locale() -> Locale:
    """`select_locale` for Flask-Babel, which would otherwise parse it anew on every request."""
    return _LOCALES[select_locale()]
