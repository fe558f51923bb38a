"""The one HTTP client the tool uses to talk to platforms: a User-Agent, timeouts, reuse."""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlsplit

import requests

from lti_tool import __version__

USER_AGENT = f"Tsunagu-LTI-Tool/{__version__} (+https://github.com/tsunagu-lti)"

_local = threading.local()


class _Session(requests.Session):
    """A session that reads the environment's proxy and CA-bundle settings once per origin.

    requests scans `os.environ` for them on every request, which costs more CPU than a loopback
    round trip to an LMS; they do not change while the tool runs.
    """

    def __init__(self) -> None:
        super().__init__()
        self._environment: dict[str, tuple[dict[str, str], Any]] = {}

    def merge_environment_settings(
        self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any
    ) -> Any:
        if proxies or verify not in (None, True):
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        found = self._environment.get(origin)
        if found is None:
            settings = super().merge_environment_settings(url, {}, None, verify, None)
            found = (dict(settings["proxies"]), settings["verify"])
            self._environment[origin] = found
        return {
            "proxies": dict(found[0]),
            "stream": self.stream if stream is None else stream,
            "verify": found[1],
            "cert": self.cert if cert is None else cert,
        }


class BearerAuth(requests.auth.AuthBase):
    """`Authorization: Bearer …`, given as the request's auth: requests then neither looks up
    ~/.netrc for the host nor lets an entry there replace the header."""

    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request


def http_session() -> requests.Session:
    """A per-thread session, so connections to a platform are reused across requests."""
    session: requests.Session | None = getattr(_local, "session", None)
    if session is None:
        session = _Session()
        session.headers["User-Agent"] = USER_AGENT
        _local.session = session
    return session
