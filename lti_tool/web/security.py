"""Security headers on every response, with `frame-ancestors` limited to registered platforms."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from flask import Flask, Response, g, request
from flask_babel import lazy_gettext as _l

from lti_tool.errors import BadRequest

if TYPE_CHECKING:
    from lti_tool.lti.platform_cache import PlatformCache, Snapshot


def origin_of(url: str) -> str | None:
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return f"{parts.scheme}://{parts.netloc}"


class FrameAncestors:
    """The origins allowed to frame the tool: every active platform's, from the registration
    snapshot (so as fresh as it is; a registration made here invalidates it at once)."""

    def __init__(self, platforms: PlatformCache, extra: Iterable[str] = ()) -> None:
        self._platforms = platforms
        self._extra = tuple(extra)
        self._computed: tuple[Snapshot, str] | None = None
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        self._platforms.invalidate()

    def sources(self) -> str:
        """`'self'` and every allowed origin, as a CSP source list."""
        snapshot = self._platforms.snapshot()
        computed = self._computed
        if computed is not None and computed[0] is snapshot:
            return computed[1]
        origins = {o for url in snapshot.active_urls() for o in [origin_of(url)] if o}
        origins.update(self._extra)
        value = " ".join(["'self'", *sorted(origins)])
        with self._lock:
            self._computed = (snapshot, value)
        return value


@functools.lru_cache(maxsize=64)
def content_security_policy(sources: str) -> str:
    # Platforms may frame us; deep-linking responses and registration forms post back to them.
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
        f"form-action {sources}; frame-ancestors {sources}"
    )


def init_security_headers(app: Flask, frame_ancestors: FrameAncestors, hsts: bool) -> None:
    @app.before_request
    def _refuse_nul_bytes() -> None:
        # No text we accept contains NUL; PostgreSQL would refuse it deep inside a query.
        sources = (request.args, request.form) if request.method == "POST" else (request.args,)
        for source in sources:
            for key, value in source.items(multi=True):
                if "\x00" in key or "\x00" in value:
                    raise BadRequest(
                        _l("The request contains characters this tool does not accept."),
                        log_detail="NUL byte in a parameter",
                    )

    @app.before_request
    def _sources() -> None:
        # Read before the request opens its own transaction (SQLite has one writer at a time).
        g.csp_sources = frame_ancestors.sources()

    @app.after_request
    def _headers(response: Response) -> Response:
        headers = response.headers
        # Names already set, read once: each test of an absent name costs werkzeug a raised
        # exception, and this runs on every response.
        present = {name.lower() for name, _ in headers.items()}
        added = []
        if "content-security-policy" not in present:
            sources = g.get("csp_sources", "'self'")
            extra = [o for o in g.get("extra_frame_origins", ()) if o not in sources.split()]
            added.append(
                ("Content-Security-Policy", content_security_policy(" ".join([sources, *extra])))
            )
        added += [(name, value) for name, value in _ALWAYS if name.lower() not in present]
        if hsts and request.is_secure and "strict-transport-security" not in present:
            added.append(("Strict-Transport-Security", "max-age=31536000"))
        if "cache-control" not in present and not request.path.startswith("/static/"):
            added.append(("Cache-Control", "no-store"))
        headers.extend(added)
        return response


_ALWAYS = (
    ("X-Content-Type-Options", "nosniff"),
    # Session tokens ride in URLs: never send a URL to another site.
    ("Referrer-Policy", "same-origin"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
)
