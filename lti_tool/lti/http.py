"""The one HTTP client the tool uses to talk to platforms: a User-Agent, timeouts, reuse."""

from __future__ import annotations

import threading

import requests

from lti_tool import __version__

USER_AGENT = f"Tsunagu-LTI-Tool/{__version__} (+https://github.com/tsunagu-lti)"

_local = threading.local()


def http_session() -> requests.Session:
    """A per-thread session, so connections to a platform are reused across requests."""
    session: requests.Session | None = getattr(_local, "session", None)
    if session is None:
        session = requests.Session()
        session.headers["User-Agent"] = USER_AGENT
        _local.session = session
    return session
