"""Calling a platform's LTI Advantage services: OAuth2 client-credentials tokens with a signed
client assertion (RFC 7523), cached per platform and scope set, and authorised requests.

Tokens are cached in the database (so a one-shot `lti-tool grades deliver` reuses the token a
web worker got) and in the process, until shortly before they expire.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jwt
import requests
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from lti_tool.db import Database, utcnow
from lti_tool.lti.http import BearerAuth, http_session
from lti_tool.lti.keys import signing_key
from lti_tool.lti.models import AccessToken, Platform

log = logging.getLogger(__name__)

# Renew a token this long before the platform says it expires.
EXPIRY_MARGIN = 60
MAX_BODY = 4 * 1024 * 1024


class ServiceError(Exception):
    """A service call failed. `status` is the HTTP status (0: no answer); `retryable` says
    whether trying again later may succeed."""

    def __init__(
        self, message: str, *, status: int = 0, retryable: bool = True, body: str = ""
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.body = body


@dataclass
class _CachedToken:
    token: str
    expires_at: float


# Keyed by registration (id, client id, token URL) and scope set: a registration id that the
# database hands out again (SQLite reuses them) never meets another registration's token.
_Key = tuple[int, str, str, str]
_memory: dict[_Key, _CachedToken] = {}
_memory_lock = threading.Lock()
# One token request at a time per platform and scope set in this process: threads that find
# no token wait for the one being fetched instead of each asking the platform for its own.
_fetching: dict[_Key, threading.Lock] = {}


def scope_key(scopes: Sequence[str]) -> str:
    return hashlib.sha256(" ".join(sorted(set(scopes))).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class PlatformRef:
    """What a service call needs of a registration (no ORM object crosses a transaction)."""

    id: int
    client_id: str
    auth_token_url: str | None
    auth_audience: str | None

    @classmethod
    def of(cls, platform: Platform) -> PlatformRef:
        return cls(platform.id, platform.client_id, platform.auth_token_url, platform.auth_audience)


class ServiceClient:
    """Service calls for one platform. Database work happens in short transactions of its own,
    never around a network call (SQLite has one writer; PostgreSQL rows stay unlocked)."""

    def __init__(
        self, db: Database, platform: PlatformRef, secret_key: str, *, timeout: float = 10.0
    ) -> None:
        if not platform.auth_token_url:
            raise ServiceError("the platform has no token URL", retryable=False)
        self.db = db
        self.platform = platform
        self.secret_key = secret_key
        self.timeout = timeout

    # --- tokens --------------------------------------------------------------------------------

    def _key(self, scopes: Sequence[str]) -> _Key:
        platform = self.platform
        return (platform.id, platform.client_id, platform.auth_token_url or "", scope_key(scopes))

    def token(self, scopes: Sequence[str]) -> str:
        key = self._key(scopes)
        cached = _memory.get(key)
        if cached is not None and cached.expires_at - EXPIRY_MARGIN > time.time():
            return cached.token
        with _memory_lock:
            fetching = _fetching.setdefault(key, threading.Lock())
        with fetching:
            return self._token(key, scopes)

    def _token(self, key: _Key, scopes: Sequence[str]) -> str:
        now = time.time()
        cached = _memory.get(key)
        if cached is not None and cached.expires_at - EXPIRY_MARGIN > now:
            return cached.token  # another thread fetched it while this one waited
        with self.db.read_scope() as session:
            stored = session.scalars(
                select(AccessToken).where(
                    AccessToken.platform_id == self.platform.id, AccessToken.scope_key == key[3]
                )
            ).first()
        if stored is not None and stored.expires_at.timestamp() - EXPIRY_MARGIN > now:
            with _memory_lock:
                _memory[key] = _CachedToken(stored.token, stored.expires_at.timestamp())
            return stored.token
        token, lifetime = self._request_token(scopes)
        expires = utcnow() + dt.timedelta(seconds=lifetime)
        self._store(key[3], token, expires)
        with _memory_lock:
            _memory[key] = _CachedToken(token, expires.timestamp())
        return token

    def forget_token(self, scopes: Sequence[str], token: str | None = None) -> None:
        """Drop the cached token (only `token`, if given: a newer one another thread already
        fetched stays)."""
        key = self._key(scopes)
        with _memory_lock:
            cached = _memory.get(key)
            if cached is not None and (token is None or cached.token == token):
                del _memory[key]
        query = delete(AccessToken).where(
            AccessToken.platform_id == self.platform.id, AccessToken.scope_key == key[3]
        )
        if token is not None:
            query = query.where(AccessToken.token == token)
        with self.db.session_scope() as session:
            session.execute(query)

    def _store(self, key: str, token: str, expires: dt.datetime) -> None:
        try:
            with self.db.session_scope() as session:
                stored = session.scalars(
                    select(AccessToken).where(
                        AccessToken.platform_id == self.platform.id, AccessToken.scope_key == key
                    )
                ).first()
                if stored is None:
                    session.add(
                        AccessToken(
                            platform_id=self.platform.id,
                            scope_key=key,
                            token=token,
                            expires_at=expires,
                        )
                    )
                else:
                    stored.token = token
                    stored.expires_at = expires
        except IntegrityError:
            pass  # another worker stored one at the same moment; ours is as good

    def client_assertion(self) -> str:
        with self.db.read_scope() as session:
            key = signing_key(session, self.secret_key)
        now = int(time.time())
        audience = self.platform.auth_audience or self.platform.auth_token_url
        claims = {
            "iss": self.platform.client_id,
            "sub": self.platform.client_id,
            "aud": audience,
            "iat": now,
            "exp": now + 300,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, key.private_key, algorithm="RS256", headers={"kid": key.kid})

    def _request_token(self, scopes: Sequence[str]) -> tuple[str, int]:
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": self.client_assertion(),
            "scope": " ".join(scopes),
        }
        assert self.platform.auth_token_url is not None
        try:
            # Form-encoded, as the spec and Moodle require (a JSON body gets 400 there).
            response = http_session().post(
                self.platform.auth_token_url,
                data=form,
                timeout=self.timeout,
                headers={"Accept": "application/json"},
            )
        except requests.RequestException as exc:
            raise ServiceError(f"token request failed: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise ServiceError(
                f"token endpoint answered {response.status_code}",
                status=response.status_code,
                retryable=response.status_code >= 500 or response.status_code == 429,
                body=response.text[:500],
            )
        try:
            answer = response.json()
            token = answer["access_token"]
            lifetime = int(answer.get("expires_in", 3600))
        except (ValueError, KeyError, TypeError):
            raise ServiceError("token endpoint answered without an access_token") from None
        if not isinstance(token, str) or not token:
            raise ServiceError("token endpoint answered without an access_token")
        return token, max(lifetime, EXPIRY_MARGIN + 1)

    # --- requests ------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        url: str,
        scopes: Sequence[str],
        *,
        json_body: Any = None,
        accept: str = "application/json",
        content_type: str | None = None,
    ) -> requests.Response:
        """An authorised request; a 401 gets one retry with a fresh token."""
        for attempt in (1, 2):
            token = self.token(scopes)
            headers = {"Accept": accept}
            data = None
            if json_body is not None:
                data = json.dumps(json_body).encode()
                headers["Content-Type"] = content_type or "application/json"
            try:
                response = http_session().request(
                    method,
                    url,
                    data=data,
                    headers=headers,
                    timeout=self.timeout,
                    auth=BearerAuth(token),
                )
            except requests.RequestException as exc:
                raise ServiceError(f"{method} {url} failed: {type(exc).__name__}") from exc
            if response.status_code == 401 and attempt == 1:
                log.info("service answered 401; renewing token platform=%s", self.platform.id)
                self.forget_token(scopes, token)
                continue
            return response
        raise AssertionError("unreachable")
