"""The tool's session after a launch: a signed token carried in the tool's links and forms.

Why a token and not a cookie: a tool in a cross-site iframe often cannot keep cookies (blocked
third-party cookies, Safari, Moodle over http), and one browser may have two courses open in
two tabs, which one cookie cannot tell apart. So every page's links and forms carry `ts`, a
short-lived signed token naming the member and course of *this* launch (no server state).

Where the browser does keep our cookies, the launch also sets a random binding cookie and the
token carries its hash: such a token is then useless without that browser's cookie and may live
longer. Where it does not, the token alone is accepted for a shorter idle time, renewed on every
page, and never beyond the session's absolute lifetime.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, replace

from flask import Request
from werkzeug.wrappers import Response

from lti_tool.lti.roles import Role, decode_roles, encode_roles, has_staff_rights

TOKEN_PARAM = "ts"  # noqa: S105 - a parameter name, not a secret
TOKEN_HEADER = "X-Tsunagu-Session"  # noqa: S105
_TOKEN_ENVIRON = "HTTP_" + TOKEN_HEADER.upper().replace("-", "_")
BINDING_COOKIE = "tsunagu_bind"
CSRF_FIELD = "csrf_token"


@dataclass(frozen=True)
class ToolSession:
    member_id: int
    course_id: int
    person_id: int
    platform_id: int
    resource_link_pk: int | None
    roles: frozenset[Role]
    locale: str
    started_at: int
    sid: str
    binding: str | None = None
    # An open deep-linking request (its id), for the picker.
    deep_link_id: int | None = None

    @property
    def is_staff(self) -> bool:
        return has_staff_rights(self.roles)

    def with_locale(self, locale: str) -> ToolSession:
        return replace(self, locale=locale)


class SessionError(Exception):
    """No usable session: missing, forged, expired, or bound to another browser."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# Longer tokens are refused unread (a session's token is ~130 characters).
MAX_TOKEN_CHARS = 1024
# Signed "in the future" by up to this many seconds: another worker's clock, not a forgery.
CLOCK_SKEW = 60


class SessionCodec:
    """Tokens `payload.time.signature`: the session as compact JSON in base64url, the signing
    time in hexadecimal seconds, and HMAC-SHA256 over both (its first 128 bits, base64url),
    with a key derived from the secret key for this use only. Checked and made on every page,
    so kept to a few microseconds each way."""

    def __init__(self, secret_key: str, *, bound_ttl: int, unbound_ttl: int) -> None:
        self._key = hashlib.sha256(b"tsunagu.session.v2\0" + secret_key.encode()).digest()
        self._csrf_key = hashlib.sha256(b"tsunagu.csrf\0" + secret_key.encode()).digest()
        self.bound_ttl = bound_ttl
        self.unbound_ttl = unbound_ttl

    def _signature(self, message: bytes) -> bytes:
        return _b64encode(hmac.digest(self._key, message, "sha256")[:16]).encode("ascii")

    def dumps(self, session: ToolSession, *, now: float | None = None) -> str:
        """The session's token, signed now (or at `now`, for tests of expiry)."""
        payload = [
            session.member_id,
            session.course_id,
            session.person_id,
            session.platform_id,
            session.resource_link_pk,
            encode_roles(session.roles),
            session.locale,
            session.started_at,
            session.sid,
            session.binding,
            session.deep_link_id,
        ]
        encoded = _b64encode(json.dumps(payload, separators=(",", ":")).encode())
        message = f"{encoded}.{int(time.time() if now is None else now):x}".encode("ascii")
        return (message + b"." + self._signature(message)).decode("ascii")

    def loads(self, token: str, binding_cookie: str | None) -> ToolSession:
        if len(token) > MAX_TOKEN_CHARS:
            raise SessionError("token invalid")
        raw = token.encode("utf-8", "replace")
        message, dot, signature = raw.rpartition(b".")
        if not dot or not hmac.compare_digest(self._signature(message), signature):
            raise SessionError("token invalid")
        encoded, _, stamp = message.partition(b".")
        try:
            signed_at = int(stamp, 16)
            payload = json.loads(_b64decode(encoded.decode("ascii")))
        except (ValueError, binascii.Error):
            raise SessionError("token malformed") from None
        now = time.time()
        # The looser limit first; the bound/unbound limit is applied below.
        if not -CLOCK_SKEW <= now - signed_at <= max(self.bound_ttl, self.unbound_ttl):
            raise SessionError("token expired")
        try:
            session = ToolSession(
                member_id=int(payload[0]),
                course_id=int(payload[1]),
                person_id=int(payload[2]),
                platform_id=int(payload[3]),
                resource_link_pk=None if payload[4] is None else int(payload[4]),
                roles=decode_roles(str(payload[5])),
                locale=str(payload[6]),
                started_at=int(payload[7]),
                sid=str(payload[8]),
                binding=None if payload[9] is None else str(payload[9]),
                deep_link_id=None if payload[10] is None else int(payload[10]),
            )
        except (TypeError, ValueError, IndexError, KeyError):
            raise SessionError("token malformed") from None
        if now - session.started_at > self.bound_ttl:
            raise SessionError("session over its absolute lifetime")
        if session.binding is None:
            if now - signed_at > self.unbound_ttl:
                raise SessionError("token expired")
        elif binding_cookie is None or not hmac.compare_digest(
            session.binding.encode(), binding_hash(binding_cookie).encode()
        ):
            raise SessionError("token bound to another browser")
        return session

    def csrf_token(self, session: ToolSession) -> str:
        return hmac.new(self._csrf_key, session.sid.encode(), hashlib.sha256).hexdigest()

    def check_csrf(self, session: ToolSession, submitted: str | None) -> bool:
        if submitted is None:
            return False
        return hmac.compare_digest(
            self.csrf_token(session).encode(), submitted.encode("utf-8", "replace")
        )


def binding_hash(cookie_value: str) -> str:
    return hashlib.sha256(cookie_value.encode()).hexdigest()[:32]


def new_binding() -> str:
    return secrets.token_urlsafe(32)


def new_sid() -> str:
    return secrets.token_urlsafe(12)


def token_from_request(request: Request) -> str | None:
    # From the environ: a header that is absent costs `headers.get` a raised exception.
    token = request.environ.get(_TOKEN_ENVIRON) or request.args.get(TOKEN_PARAM)
    if token is None and request.method == "POST":
        token = request.form.get(TOKEN_PARAM)
    return token or None


def cross_site_cookies_possible(request: Request) -> bool:
    """Browsers take `SameSite=None` only with `Secure`, which needs https (or loopback)."""
    host = request.host.rsplit(":", 1)[0].strip("[]")
    return request.is_secure or host in {"localhost", "127.0.0.1", "::1"}


def set_tool_cookie(
    response: Response, request: Request, name: str, value: str, max_age: int
) -> None:
    """Set a cookie the tool needs inside an LMS iframe: `SameSite=None; Secure; Partitioned`
    where the browser takes it, else a first-party `Lax` cookie (used only top-level)."""
    if cross_site_cookies_possible(request):
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            httponly=True,
            secure=True,
            samesite="None",
            partitioned=True,
            path="/",
        )
    else:
        response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="Lax", path="/")
