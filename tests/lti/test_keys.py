"""The tool's signing keys: the JWKS, RFC 7638 kids, rotation and retirement, and keys bound to
the SECRET_KEY they were made with."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import delete, select

from lti_tool.db import Database, utcnow
from lti_tool.lti import keys
from lti_tool.lti.keys import (
    ToolKeyError,
    ensure_key,
    generate_key,
    prune_retired,
    public_jwk_of,
    rotate_keys,
    signing_key,
)
from lti_tool.lti.models import ToolKey, ToolKeyStatus
from tests.conftest import SECRET

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi"}


@pytest.fixture(autouse=True)
def _db_up_front(db: Database) -> None:
    """conftest's cleanup looks `db` up at teardown, which pytest 9 refuses unless it is active."""


@pytest.fixture
def tool_keys(db: Database) -> Iterator[Database]:
    """Put the tool's keys back as they were: the session-wide app signs with them."""
    columns = [c.key for c in ToolKey.__table__.columns]
    with db.session_scope() as session:
        before = [{c: getattr(k, c) for c in columns} for k in session.scalars(select(ToolKey))]
    yield db
    with db.session_scope() as session:
        session.execute(delete(ToolKey))
        session.add_all(ToolKey(**row) for row in before)


@pytest.fixture
def jwks_url(app) -> str:
    return app.extensions["tsunagu.config"].tool_base_url + "/lti/jwks"


def fetch_jwks(url: str) -> list[dict[str, Any]]:
    response = requests.get(url, timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/json"
    return list(response.json()["keys"])


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638, written out: the required members in lexicographic order, no whitespace."""
    canonical = '{"e":"' + jwk["e"] + '","kty":"RSA","n":"' + jwk["n"] + '"}'
    digest = hashlib.sha256(canonical.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def sign_with(key: keys.SigningKey, **claims: Any) -> str:
    now = int(time.time())
    body = {"iss": "tool", "aud": "platform", "iat": now, "exp": now + 60, **claims}
    return jwt.encode(body, key.private_pem, algorithm="RS256", headers={"kid": key.kid})


def verify_with_jwks(token: str, published: list[dict[str, Any]]) -> dict[str, Any]:
    kid = jwt.get_unverified_header(token)["kid"]
    [jwk] = [k for k in published if k["kid"] == kid]
    return dict(jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=["RS256"], audience="platform"))


def b64_int(value: str) -> int:
    return int.from_bytes(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)), "big")


def test_jwks_publishes_the_active_key(app, db, jwks_url):
    response = requests.get(jwks_url, timeout=5)
    assert response.headers["Cache-Control"] == "public, max-age=300"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    published = fetch_jwks(jwks_url)
    with db.session_scope() as session:
        current = signing_key(session, SECRET)
    [jwk] = [k for k in published if k["kid"] == current.kid]
    assert {"kid", "kty", "alg", "use", "n", "e"} <= jwk.keys()
    assert (jwk["kty"], jwk["alg"], jwk["use"]) == ("RSA", "RS256", "sig")
    assert not PRIVATE_MEMBERS & jwk.keys()
    numbers = current.private_key.public_key().public_numbers()
    assert (b64_int(jwk["n"]), b64_int(jwk["e"])) == (numbers.n, numbers.e)
    assert numbers.n.bit_length() >= 2048


def test_kid_is_the_rfc7638_thumbprint():
    # The worked example of RFC 7638, section 3.1.
    n = (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc"
        "_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQ"
        "R0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bF"
        "TWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    )
    public_key = rsa.RSAPublicNumbers(b64_int("AQAB"), b64_int(n)).public_key()
    jwk = public_jwk_of(public_key)
    assert jwk["n"] == n and jwk["e"] == "AQAB"
    assert jwk["kid"] == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_published_kids_are_thumbprints(app, jwks_url):
    published = fetch_jwks(jwks_url)
    assert published
    for jwk in published:
        assert jwk["kid"] == thumbprint(jwk)


def test_signing_key_signs_what_the_jwks_verifies(app, db, jwks_url):
    with db.session_scope() as session:
        key = signing_key(session, SECRET)
    token = sign_with(key, sub="grade-sync")
    assert verify_with_jwks(token, fetch_jwks(jwks_url))["sub"] == "grade-sync"


def test_rotation_keeps_the_old_key_until_it_retires(app, tool_keys, jwks_url, monkeypatch):
    db = tool_keys
    with db.session_scope() as session:
        old = signing_key(session, SECRET)
        new_row = rotate_keys(session, SECRET, dt.timedelta(days=7))
        new_kid = new_row.kid
    assert new_kid != old.kid

    with db.session_scope() as session:
        new = signing_key(session, SECRET)
        old_row = session.scalars(select(ToolKey).where(ToolKey.kid == old.kid)).one()
        assert old_row.status == ToolKeyStatus.RETIRING
        assert old_row.retire_after is not None
        assert abs(old_row.retire_after - (utcnow() + dt.timedelta(days=7))) < dt.timedelta(
            minutes=1
        )
        assert prune_retired(session) == 0  # not yet
    assert new.kid == new_kid

    published = fetch_jwks(jwks_url)
    assert [k["kid"] for k in published][:2] == [new_kid, old.kid]  # newest first
    # A platform still holding a token signed by the old key can verify it during the grace.
    assert verify_with_jwks(sign_with(old), published)["iss"] == "tool"
    assert verify_with_jwks(sign_with(new), published)["iss"] == "tool"

    # Eight days on: the old key is out of the JWKS, and pruning deletes it.
    later = utcnow() + dt.timedelta(days=8)
    monkeypatch.setattr(keys, "utcnow", lambda: later)
    published = fetch_jwks(jwks_url)
    kids = {k["kid"] for k in published}
    assert new_kid in kids and old.kid not in kids
    with db.session_scope() as session:
        assert prune_retired(session) == 1
    with db.session_scope() as session:
        remaining = {k.kid for k in session.scalars(select(ToolKey))}
        assert old.kid not in remaining and new_kid in remaining
        assert signing_key(session, SECRET).kid == new_kid


def test_rotation_with_no_grace_drops_the_old_key_at_once(app, tool_keys, jwks_url):
    db = tool_keys
    with db.session_scope() as session:
        old_kid = signing_key(session, SECRET).kid
        rotate_keys(session, SECRET, dt.timedelta(0))
    assert old_kid not in {k["kid"] for k in fetch_jwks(jwks_url)}
    with db.session_scope() as session:
        assert prune_retired(session) >= 1


def test_a_key_made_under_another_secret_key_is_refused(db):
    session = db.sessions()
    try:
        foreign = generate_key(session, "another-secret-" + "y" * 40)
        with pytest.raises(ToolKeyError, match="SECRET_KEY differs") as refused:
            signing_key(session, SECRET)
        assert foreign.kid in str(refused.value)
    finally:
        session.rollback()
        session.close()


def test_a_key_once_decrypted_is_still_refused_under_another_secret_key(db):
    other = "another-secret-" + "z" * 40
    session = db.sessions()
    try:
        generate_key(session, other)
        assert signing_key(session, other).private_key is not None
        with pytest.raises(ToolKeyError, match="SECRET_KEY differs"):
            signing_key(session, SECRET)
    finally:
        session.rollback()
        session.close()


def test_ensure_key_makes_the_first_key_once(db):
    session = db.sessions()
    try:
        session.execute(delete(ToolKey))
        with pytest.raises(ToolKeyError, match="keys ensure"):
            signing_key(session, SECRET)
        first, created = ensure_key(session, SECRET)
        again, created_again = ensure_key(session, SECRET)
        assert created and not created_again
        assert again.kid == first.kid
        assert signing_key(session, SECRET).kid == first.kid
        assert first.private_key_encrypted.encode() not in first.public_jwk.values()
        assert "PRIVATE KEY" not in first.private_key_encrypted
    finally:
        session.rollback()
        session.close()
