"""The OIDC login state: signed by the tool at login, spent once at launch.

A login writes nothing: the state it sends to the platform carries its own platform, expiry
and a MAC under a key derived from SECRET_KEY, and the nonce is derived from the state with
the same key. The platform signs that nonce into the id_token, so a launch is bound to the
login that started it even where the browser refused the state cookie. The launch that uses
a state records it in `lti_used_state` in the same transaction as the launch itself; a second
use of the same state (a replayed POST, on any worker) finds it there and is refused.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete

from lti_tool.db import Direct, Prepared, per_dialect, utcnow
from lti_tool.lti.models import UsedLoginState

MAX_STATE_LENGTH = 96
_KEY_LENGTH = 22  # secrets.token_urlsafe(16)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class LoginState:
    """A state whose MAC checked out (its expiry is the caller's to check)."""

    key: str
    platform_id: int
    expires_at: int
    nonce: str

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at <= (time.time() if now is None else now)


class StateSigner:
    def __init__(self, secret_key: str) -> None:
        self._key = hashlib.sha256(b"tsunagu.login-state.v1\0" + secret_key.encode()).digest()

    def _mac(self, message: str) -> str:
        return _b64(hmac.digest(self._key, message.encode(), "sha256"))[:32]

    def _nonce(self, key: str) -> str:
        return _b64(hmac.digest(self._key, b"nonce\0" + key.encode(), "sha256"))

    def issue(self, platform_id: int, ttl: int) -> LoginState:
        key = secrets.token_urlsafe(16)
        return LoginState(key, platform_id, int(time.time()) + ttl, self._nonce(key))

    def encode(self, state: LoginState) -> str:
        body = f"{state.key}.{state.platform_id}.{state.expires_at}"
        return f"{body}.{self._mac(body)}"

    def decode(self, value: str) -> LoginState | None:
        """The state, if the tool issued it; None for anything else."""
        if not value or len(value) > MAX_STATE_LENGTH:
            return None
        parts = value.split(".")
        if len(parts) != 4 or len(parts[0]) != _KEY_LENGTH:
            return None
        key, platform, expires, mac = parts
        if not hmac.compare_digest(mac, self._mac(f"{key}.{platform}.{expires}")):
            return None
        if not platform.isdigit() or not expires.isdigit():
            return None
        return LoginState(key, int(platform), int(expires), self._nonce(key))


_TABLE = cast(Table, UsedLoginState.__table__)


@per_dialect
def _spend_statement(insert: Callable[..., Any]) -> Any:
    """INSERT … ON CONFLICT DO NOTHING RETURNING, with bind parameters."""
    return (
        insert(_TABLE)
        .values(
            key=bindparam("key"),
            platform_id=bindparam("platform_id"),
            expires_at=bindparam("expires_at", type_=_TABLE.c.expires_at.type),
        )
        .on_conflict_do_nothing(index_elements=["key"])
        .returning(_TABLE.c.key)
    )


_SPEND = Prepared(_spend_statement)


_PRUNE = Prepared(
    delete(_TABLE).where(_TABLE.c.expires_at < bindparam("now", type_=_TABLE.c.expires_at.type))
)


def spend(conn: Direct, state: LoginState) -> bool:
    """Record the state as used, in the caller's transaction; False if it already was."""
    values = {
        "key": state.key,
        "platform_id": state.platform_id,
        "expires_at": dt.datetime.fromtimestamp(state.expires_at, dt.UTC),
    }
    return conn.first(_SPEND, values) is not None


def prune_used_states(conn: Direct) -> int:
    """Forget used states past their expiry: an expired state is refused on its own."""
    return conn.count(_PRUNE, {"now": utcnow()})
