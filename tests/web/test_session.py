"""The session token's own format: what it carries comes back whole, and any change to it, or
anything else, is refused with a SessionError (never another exception)."""

from __future__ import annotations

import base64
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from lti_tool.lti.roles import decode_roles
from lti_tool.web.session import (
    TOKEN_HEADER,
    SessionCodec,
    SessionError,
    ToolSession,
    binding_hash,
)

CODEC = SessionCodec("k" * 48, bound_ttl=8 * 3600, unbound_ttl=3600)


def _session(**changes: object) -> ToolSession:
    values: dict[str, object] = {
        "member_id": 12,
        "course_id": 3,
        "person_id": 44,
        "platform_id": 1,
        "resource_link_pk": 7,
        "roles": decode_roles("http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"),
        "locale": "ja",
        "started_at": int(time.time()) - 10,
        "sid": "abcdefghijklmnop",
        "binding": None,
        "deep_link_id": None,
    }
    values.update(changes)
    return ToolSession(**values)  # type: ignore[arg-type]


def _reason(token: str, cookie: str | None = None) -> str:
    with pytest.raises(SessionError) as refused:
        CODEC.loads(token, cookie)
    return refused.value.reason


def test_a_token_carries_the_whole_session() -> None:
    plain = _session()
    assert CODEC.loads(CODEC.dumps(plain), None) == plain
    bound = _session(binding=binding_hash("cookie"), resource_link_pk=None, deep_link_id=5)
    assert CODEC.loads(CODEC.dumps(bound), "cookie") == bound
    assert _reason(CODEC.dumps(bound), "another cookie") == "token bound to another browser"
    assert _reason(CODEC.dumps(bound), None) == "token bound to another browser"


def test_every_one_character_change_is_refused() -> None:
    token = CODEC.dumps(_session())
    for index, char in enumerate(token):
        for other in {"A", "0", ".", "_", "é"} - {char}:
            changed = token[:index] + other + token[index + 1 :]
            assert _reason(changed) in {"token invalid", "token malformed"}, changed
    assert _reason(token[:-1]) == "token invalid"
    assert _reason(token + "A") == "token invalid"


def test_another_secret_key_or_garbage_is_refused() -> None:
    other = SessionCodec("o" * 48, bound_ttl=8 * 3600, unbound_ttl=3600)
    assert _reason(other.dumps(_session())) == "token invalid"
    for garbage in ("", ".", "..", "a.b.c", "W10.abc.def", "\x00", "ß.ü.ö", "a" * 5000):
        assert _reason(garbage) == "token invalid"


def test_a_signed_payload_of_the_wrong_shape_is_malformed_not_an_error() -> None:
    """Only the tool signs tokens; still, one whose payload it cannot read is refused."""
    stamp = f"{int(time.time()):x}"
    for payload in (b"not json", b"[1,2]", b'{"a":1}', b"7", b'["x",1,1,1,null,"","ja",1,"s"]'):
        encoded = base64.urlsafe_b64encode(payload).rstrip(b"=") + b"." + stamp.encode()
        token = (encoded + b"." + CODEC._signature(encoded)).decode()
        assert _reason(token) == "token malformed", payload
    encoded = b"W10.zz-not-hex"
    assert _reason((encoded + b"." + CODEC._signature(encoded)).decode()) == "token malformed"


def test_a_token_lives_its_time_and_no_longer() -> None:
    now = time.time()
    unbound = _session()
    assert CODEC.loads(CODEC.dumps(unbound, now=now - 3600 + 30), None) == unbound
    assert _reason(CODEC.dumps(unbound, now=now - 3600 - 30)) == "token expired"
    bound = _session(binding=binding_hash("c"))
    # Bound to the browser's cookie it may idle longer, up to the session's absolute lifetime.
    assert CODEC.loads(CODEC.dumps(bound, now=now - 7200), "c") == bound
    old = _session(binding=binding_hash("c"), started_at=int(now) - 8 * 3600 - 30)
    assert _reason(CODEC.dumps(old, now=now - 60), "c") == "session over its absolute lifetime"
    # Another worker's clock a little ahead is fine; far in the future is not a real token.
    assert CODEC.loads(CODEC.dumps(unbound, now=now + 30), None) == unbound
    assert _reason(CODEC.dumps(unbound, now=now + 600)) == "token expired"


def test_the_token_may_come_in_a_header_instead_of_the_url(browser, reg, learner):
    page = browser.launch(reg, learner)
    token = parse_qs(urlsplit(page.url).query)["ts"][0]
    assert browser.get("/modules/", headers={TOKEN_HEADER: token}).status_code == 200
    assert browser.get("/modules/", headers={TOKEN_HEADER: token[:-2]}).status_code == 401
    assert browser.get("/modules/").status_code == 401
