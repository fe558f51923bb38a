"""Template filters and globals shared by every feature's templates."""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Hashable, Mapping
from typing import Any, cast
from urllib.parse import urlencode

from flask import Flask, current_app, g, render_template, request
from flask_babel import format_datetime, get_locale, get_translations
from flask_babel import lazy_gettext as _l
from jinja2 import pass_context
from jinja2.runtime import Context
from markupsafe import Markup, escape

from lti_tool.catalog.ruby import render_inline
from lti_tool.lti.roles import Role, decode_roles
from lti_tool.web.context import csrf_token, current_session, session_token, window_token

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


# The per-request values a cached page leaves open: alphanumeric, so that neither URL quoting
# nor HTML escaping changes them, and long enough never to occur in content.
_HOLES = {
    "session_token": "tsunaguHoleSessionToken7f3c",
    "csrf_token": "tsunaguHoleCsrfToken7f3c",
    "window_token": "tsunaguHoleWindowToken7f3c",
}
_HOLE_BYTES = {name: hole.encode() for name, hole in _HOLES.items()}
_HOLE_PATTERN = re.compile("(" + "|".join(_HOLES.values()) + ")")


class PageCache:
    """Whole pages rendered once per `key` — which must name everything the page shows but
    the reader's tokens, the language and the path (every page shows those two; the cache
    adds them) — with the session, CSRF and window tokens left as holes filled on every
    request. A page that is the same for many readers then costs a join, not a render.

    The key is the caller's promise; `tests/modules/test_page_cache.py` holds each cached page
    to its plain rendering. Pages are kept and given out encoded (UTF-8), as they are sent.
    """

    def __init__(self, max_bytes: int = 8_000_000) -> None:
        # A budget in bytes of kept pages (a unit page is 26,000-48,000 in Japanese): 8 MB per
        # worker. The oldest pages go first.
        self.max_bytes = max_bytes
        self._pages: dict[Hashable, tuple[bytes, ...]] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    def render(
        self,
        key: Hashable,
        template: str,
        fills: Mapping[str, str | None] | None = None,
        **context: Any,
    ) -> bytes:
        """The page for `key`, encoded. `fills` are further per-reader values (a name, say)
        passed to the template as holes and filled HTML-escaped; the key must still say
        whether each is empty, if the template tests it."""
        fills = fills or {}
        key = (str(get_locale()), request.path, key)
        pieces = self._pages.get(key)
        if pieces is None:
            pieces = self._skeleton(template, context, fills)
            if pieces is None:
                return render_template(template, **context, **fills).encode()
            self._keep(key, pieces)
        values = {
            _HOLE_BYTES["session_token"]: (session_token() or "").encode(),
            _HOLE_BYTES["csrf_token"]: csrf_token().encode(),
            _HOLE_BYTES["window_token"]: (window_token() or "").encode(),
        }
        for name, value in fills.items():
            values[_fill_hole(name).encode()] = str(escape(value or "")).encode()
        return b"".join([values.get(piece, piece) for piece in pieces])

    def _keep(self, key: Hashable, pieces: tuple[bytes, ...]) -> None:
        size = sum(map(len, pieces))
        if size > self.max_bytes:
            return
        with self._lock:
            if key in self._pages:
                return
            while self._pages and self._bytes + size > self.max_bytes:
                # The oldest first (dicts keep insertion order).
                oldest = next(iter(self._pages))
                self._bytes -= sum(map(len, self._pages.pop(oldest)))
            self._pages[key] = pieces
            self._bytes += size

    @property
    def size(self) -> int:
        """Bytes kept."""
        return self._bytes

    def clear(self) -> None:
        with self._lock:
            self._pages.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._pages)

    @staticmethod
    def _skeleton(
        template: str, context: dict[str, Any], fills: Mapping[str, str | None]
    ) -> tuple[bytes, ...] | None:
        if current_session() is None:
            return None
        fresh = g.pop("_fresh_token", None)
        g._fresh_token = _HOLES["session_token"]  # what url_for carries in links
        try:
            html = render_template(
                template,
                **context,
                **{name: _fill_hole(name) if value else value for name, value in fills.items()},
                session_token=lambda: _HOLES["session_token"],
                csrf_token=lambda: _HOLES["csrf_token"],
                window_token=lambda: _HOLES["window_token"],
            )
        finally:
            g.pop("_fresh_token", None)
            if fresh is not None:
                g._fresh_token = fresh
        # Never keep a page that carries this reader's own token or values (a template that
        # bypassed the holes): it would be served to the next reader.
        own = [token for token in (session_token(), csrf_token(), window_token()) if token]
        # (Names shorter than 6 characters may well occur in any page: not checked.)
        own += [str(escape(value)) for value in fills.values() if value and len(value) >= 6]
        if any(value in html for value in own):
            return None
        pattern = _HOLE_PATTERN if not fills else _holes_pattern(fills)
        return tuple(piece.encode() for piece in pattern.split(html) if piece)


def page_cache(name: str) -> PageCache:
    """The app's page cache called `name`, made on first use."""
    cache = current_app.extensions.get(name)
    if cache is None:
        cache = current_app.extensions.setdefault(name, PageCache())
    return cast(PageCache, cache)


def _fill_hole(name: str) -> str:
    return f"tsunaguHoleFill{name}7f3c"


def _holes_pattern(fills: Mapping[str, Any]) -> re.Pattern[str]:
    names = [*_HOLES.values(), *(_fill_hole(name) for name in sorted(fills))]
    return re.compile("(" + "|".join(re.escape(name) for name in names) + ")")
