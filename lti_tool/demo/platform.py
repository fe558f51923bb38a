"""The demo platform: its key, its registration with the tool, its people and courses, and the
id_tokens it signs."""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lti_tool.config import Config
from lti_tool.lti import claims as C
from lti_tool.lti.keys import public_jwk_of
from lti_tool.lti.models import RegisteredVia
from lti_tool.lti.registration import save_platform

CLIENT_ID = "tsunagu-demo"
DEPLOYMENT_ID = "demo"
MEMBERSHIP = "http://purl.imsglobal.org/vocab/lis/v2/membership#"


@dataclass(frozen=True)
class DemoPerson:
    key: str
    name: str
    given_name: str
    family_name: str
    role: str
    locale: str


@dataclass(frozen=True)
class DemoCourse:
    key: str
    title: str
    label: str


PEOPLE = (
    DemoPerson("tanaka", "田中 花子", "花子", "田中", "Instructor", "ja"),
    DemoPerson("sato", "佐藤 健", "健", "佐藤", "Learner", "ja"),
    DemoPerson("nguyen", "Nguyen Thi Lan", "Lan", "Nguyen", "Learner", "en"),
    DemoPerson("santos", "Maria Santos", "Maria", "Santos", "Learner", "pt_br"),
)
COURSES = (
    DemoCourse("frsc-2026-tokyo", "外国人支援コーディネーター養成研修 2026（東京）", "FRSC-2026-T"),
    DemoCourse("frsc-2026-osaka", "外国人支援コーディネーター養成研修 2026（大阪）", "FRSC-2026-O"),
)


def person(key: str) -> DemoPerson | None:
    return next((p for p in PEOPLE if p.key == key), None)


def course(key: str) -> DemoCourse | None:
    return next((c for c in COURSES if c.key == key), None)


def demo_base_url(config: Config) -> str:
    return f"http://localhost:{config.port}/demo"


def _load_key(instance_dir: Path) -> rsa.RSAPrivateKey:
    path = instance_dir / "demo_platform_key.pem"
    if not path.exists():
        instance_dir.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another worker made it first
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(loaded, rsa.RSAPrivateKey)
    return loaded


class DemoPlatform:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.issuer = demo_base_url(config)
        self._key: rsa.RSAPrivateKey | None = None

    @property
    def key(self) -> rsa.RSAPrivateKey:
        if self._key is None:
            self._key = _load_key(self.config.instance_dir)
        return self._key

    @property
    def jwk(self) -> dict[str, Any]:
        return public_jwk_of(self.key.public_key())

    def ensure_registered(self, session: Session) -> None:
        """Register the demo platform with the tool (idempotent; safe with several workers)."""
        try:
            with session.begin_nested():
                save_platform(
                    session,
                    issuer=self.issuer,
                    client_id=CLIENT_ID,
                    name="Demo LMS",
                    auth_login_url=self.issuer + "/auth",
                    auth_token_url=self.issuer + "/token",
                    auth_audience=None,
                    jwks_url=self.issuer + "/jwks",
                    product_family_code="tsunagu-demo",
                    deployment_ids=[DEPLOYMENT_ID],
                    registered_via=RegisteredVia.DEMO,
                )
        except IntegrityError:
            pass  # registered concurrently by another worker

    def id_token(self, who: DemoPerson, where: DemoCourse, nonce: str, target_link_uri: str) -> str:
        now = int(time.time())
        body: dict[str, Any] = {
            "iss": self.issuer,
            "aud": CLIENT_ID,
            "sub": who.key,
            "iat": now,
            "exp": now + 60,
            "nonce": nonce,
            "name": who.name,
            "given_name": who.given_name,
            "family_name": who.family_name,
            C.MESSAGE_TYPE: C.RESOURCE_LINK_REQUEST,
            C.VERSION: "1.3.0",
            C.DEPLOYMENT_ID: DEPLOYMENT_ID,
            C.TARGET_LINK_URI: target_link_uri,
            C.ROLES: [MEMBERSHIP + who.role],
            C.CONTEXT: {
                "id": where.key,
                "title": where.title,
                "label": where.label,
                "type": ["CourseSection"],
            },
            C.RESOURCE_LINK: {"id": f"{where.key}-tsunagu", "title": "Tsunagu"},
            C.LAUNCH_PRESENTATION: {"locale": who.locale, "document_target": "iframe"},
            C.TOOL_PLATFORM: {
                "guid": "tsunagu-demo",
                "name": "Demo LMS",
                "product_family_code": "tsunagu-demo",
            },
        }
        return jwt.encode(
            body,
            self.key,
            algorithm="RS256",
            headers={"kid": self.jwk["kid"], "typ": "JWT"},
        )

    @staticmethod
    def new_message_hint() -> str:
        return uuid.uuid4().hex
