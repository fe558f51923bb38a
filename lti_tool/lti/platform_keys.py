"""Platform public keys (JWKS), cached per process and refetched once on an unknown `kid`.

The cache is an optimisation only: a cold worker fetches the JWKS again, so nothing here is
needed for correctness across workers.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import jwt
import requests
from flask_babel import lazy_gettext as _l

from lti_tool.errors import UpstreamError
from lti_tool.lti.http import http_session

log = logging.getLogger(__name__)

MAX_JWKS_BYTES = 256 * 1024


class UnknownKey(Exception):
    """The platform's JWKS has no usable RS256 key with this kid, even after a refetch."""


@dataclass
class _KeySet:
    fetched_at: float
    keys: dict[str, Any] = field(default_factory=dict)


class PlatformKeyCache:
    def __init__(self, ttl: float, refetch_interval: float, timeout: float) -> None:
        self.ttl = ttl
        self.refetch_interval = refetch_interval
        self.timeout = timeout
        self._sets: dict[str, _KeySet] = {}
        self._lock = threading.Lock()

    def key_for(self, jwks_url: str, kid: str) -> Any:
        """The public key object for `kid`, fetching the JWKS at most once more for it."""
        now = time.monotonic()
        cached = self._sets.get(jwks_url)
        if cached is not None and now - cached.fetched_at < self.ttl and kid in cached.keys:
            return cached.keys[kid]
        # Unknown kid or stale set: fetch, unless we fetched moments ago (so a stream of
        # forged kids cannot make us hammer the platform).
        if cached is None or now - cached.fetched_at >= self.refetch_interval:
            cached = self._fetch(jwks_url)
        if kid not in cached.keys:
            raise UnknownKey(kid)
        return cached.keys[kid]

    def forget(self, jwks_url: str | None = None) -> None:
        with self._lock:
            if jwks_url is None:
                self._sets.clear()
            else:
                self._sets.pop(jwks_url, None)

    def _fetch(self, jwks_url: str) -> _KeySet:
        try:
            response = http_session().get(jwks_url, timeout=self.timeout, stream=True)
            body = response.raw.read(MAX_JWKS_BYTES + 1, decode_content=True)
            response.close()
        except requests.RequestException as exc:
            log.warning("platform JWKS fetch failed url=%s error=%s", jwks_url, type(exc).__name__)
            raise UpstreamError(
                _l("The learning platform's public keys could not be fetched."),
                log_detail=f"JWKS fetch failed: {jwks_url}: {exc}",
            ) from exc
        if response.status_code != 200 or len(body) > MAX_JWKS_BYTES:
            raise UpstreamError(
                _l("The learning platform's public keys could not be fetched."),
                log_detail=f"JWKS at {jwks_url} answered {response.status_code}",
            )
        keys = parse_jwks(body)
        key_set = _KeySet(fetched_at=time.monotonic(), keys=keys)
        with self._lock:
            self._sets[jwks_url] = key_set
        log.info("platform JWKS fetched url=%s keys=%d", jwks_url, len(keys))
        return key_set


def parse_jwks(body: bytes) -> dict[str, Any]:
    """RS256-capable RSA keys by kid; anything else in the set is ignored."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise UpstreamError(
            _l("The learning platform's public keys could not be read."),
            log_detail="JWKS is not JSON",
        ) from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise UpstreamError(
            _l("The learning platform's public keys could not be read."),
            log_detail="JWKS has no keys list",
        )
    keys: dict[str, Any] = {}
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("kty") != "RSA":
            continue
        kid = entry.get("kid")
        if not isinstance(kid, str) or entry.get("alg", "RS256") != "RS256":
            continue
        if entry.get("use", "sig") != "sig":
            continue
        try:
            keys[kid] = jwt.PyJWK(entry, algorithm="RS256").key
        except (jwt.PyJWKError, ValueError, TypeError):
            log.warning("platform JWKS entry unusable kid=%s", kid)
    return keys
