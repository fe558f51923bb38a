"""The tool's signing keys: generation, rotation, the JWKS, and the current signing key.

Keys live in the database (the one state all workers share); the private half is encrypted
with a key derived from SECRET_KEY. `kid` is the RFC 7638 thumbprint, the same value pylti1p3
computes for a registration's public key.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from lti_tool.db import utcnow
from lti_tool.lti.models import ToolKey, ToolKeyStatus


class ToolKeyError(Exception):
    """A tool key cannot be used (none exists, or SECRET_KEY changed since it was made)."""


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def public_jwk_of(public_key: rsa.RSAPublicKey) -> dict[str, Any]:
    numbers = public_key.public_numbers()
    core = {"e": _b64url_uint(numbers.e), "kty": "RSA", "n": _b64url_uint(numbers.n)}
    digest = hashlib.sha256(json.dumps(core, separators=(",", ":"), sort_keys=True).encode())
    kid = base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode("ascii")
    return {**core, "kid": kid, "alg": "RS256", "use": "sig"}


def _fernet(secret_key: str) -> Fernet:
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"tsunagu tool keys"
    ).derive(secret_key.encode("utf-8"))
    return Fernet(base64.urlsafe_b64encode(derived))


class SigningKey:
    """A decrypted private key with its PEM forms computed once."""

    def __init__(self, kid: str, private_key: rsa.RSAPrivateKey) -> None:
        self.kid = kid
        self.private_key = private_key
        self.private_pem = private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")
        self.public_pem = (
            private_key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode("ascii")
        )


def generate_key(session: Session, secret_key: str) -> ToolKey:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    jwk = public_jwk_of(private_key.public_key())
    key = ToolKey(
        kid=jwk["kid"],
        public_jwk=jwk,
        private_key_encrypted=_fernet(secret_key).encrypt(pem).decode("ascii"),
        status=ToolKeyStatus.ACTIVE,
    )
    session.add(key)
    session.flush()
    return key


def ensure_key(session: Session, secret_key: str) -> tuple[ToolKey, bool]:
    """The current signing key, generating the first one if there is none."""
    current = _newest_active(session)
    if current is not None:
        return current, False
    return generate_key(session, secret_key), True


def rotate_keys(session: Session, secret_key: str, grace: dt.timedelta) -> ToolKey:
    """Add a new signing key; the old ones stay in the JWKS for `grace`, then go."""
    retire_at = utcnow() + grace
    for key in session.scalars(select(ToolKey).where(ToolKey.status == ToolKeyStatus.ACTIVE)):
        key.status = ToolKeyStatus.RETIRING
        key.retire_after = retire_at
    new_key = generate_key(session, secret_key)
    session.flush()
    return new_key


def prune_retired(session: Session) -> int:
    result = session.execute(
        delete(ToolKey).where(
            ToolKey.status == ToolKeyStatus.RETIRING, ToolKey.retire_after < utcnow()
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def list_keys(session: Session) -> list[ToolKey]:
    return list(session.scalars(select(ToolKey).order_by(ToolKey.created_at, ToolKey.id)))


def jwks(session: Session) -> dict[str, list[dict[str, Any]]]:
    """Every key a platform may still see a signature from."""
    keys = session.scalars(
        select(ToolKey)
        .where(or_(ToolKey.retire_after.is_(None), ToolKey.retire_after > utcnow()))
        .order_by(ToolKey.created_at.desc(), ToolKey.id.desc())
    )
    return {"keys": [dict(key.public_jwk) for key in keys]}


def _newest_active(session: Session) -> ToolKey | None:
    return session.scalars(
        select(ToolKey)
        .where(ToolKey.status == ToolKeyStatus.ACTIVE)
        .order_by(ToolKey.created_at.desc(), ToolKey.id.desc())
        .limit(1)
    ).first()


# Keyed by the secret too: a key decrypted once must not be handed out under another SECRET_KEY.
_decrypted: dict[tuple[str, str], SigningKey] = {}


def signing_key(session: Session, secret_key: str) -> SigningKey:
    """The newest active key, decrypted (decryption is cached per process by kid and secret)."""
    key = _newest_active(session)
    if key is None:
        raise ToolKeyError("the tool has no signing key; run `lti-tool keys ensure`")
    cached = _decrypted.get((key.kid, secret_key))
    if cached is not None:
        return cached
    try:
        pem = _fernet(secret_key).decrypt(key.private_key_encrypted.encode("ascii"))
    except InvalidToken as exc:
        raise ToolKeyError(
            f"tool key {key.kid} cannot be decrypted: "
            "SECRET_KEY differs from the one it was made with"
        ) from exc
    private_key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(private_key, rsa.RSAPrivateKey):
        raise ToolKeyError(f"tool key {key.kid} is not an RSA key")
    loaded = SigningKey(kid=key.kid, private_key=private_key)
    _decrypted[(key.kid, secret_key)] = loaded
    return loaded
