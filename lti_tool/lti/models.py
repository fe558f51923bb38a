"""Registrations (platform + client_id), deployments, tool keys and spent OIDC login states."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from lti_tool.db import Base, intpk, str255, str_enum, timestamp, url, utcnow


class PlatformStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"
    # Registered dynamically, waiting for the tool's administrator to approve it.
    PENDING = "pending"


class RegisteredVia(StrEnum):
    DYNAMIC = "dynamic"
    MANUAL = "manual"
    DEMO = "demo"


class Platform(Base):
    """One registration of the tool with an LMS: an issuer and the client_id it gave us."""

    __tablename__ = "lti_platform"
    __table_args__ = (UniqueConstraint("issuer", "client_id"),)

    id: Mapped[intpk]
    issuer: Mapped[str] = mapped_column(String(1024))
    client_id: Mapped[str255]
    name: Mapped[str255]
    auth_login_url: Mapped[url]
    auth_token_url: Mapped[url | None]
    auth_audience: Mapped[str | None] = mapped_column(String(1024))
    jwks_url: Mapped[url]
    product_family_code: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[PlatformStatus] = mapped_column(
        str_enum(PlatformStatus), default=PlatformStatus.ACTIVE
    )
    registered_via: Mapped[RegisteredVia] = mapped_column(str_enum(RegisteredVia))
    created_at: Mapped[timestamp]
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    deployments: Mapped[list[Deployment]] = relationship(
        back_populates="platform", order_by="Deployment.id", cascade="all, delete-orphan"
    )

    @property
    def is_active(self) -> bool:
        return self.status == PlatformStatus.ACTIVE


class Deployment(Base):
    """A deployment of the tool inside a platform (Moodle: one per tool type)."""

    __tablename__ = "lti_deployment"
    __table_args__ = (UniqueConstraint("platform_id", "deployment_id"),)

    id: Mapped[intpk]
    platform_id: Mapped[int] = mapped_column(ForeignKey("lti_platform.id", ondelete="CASCADE"))
    deployment_id: Mapped[str255]
    created_at: Mapped[timestamp]

    platform: Mapped[Platform] = relationship(back_populates="deployments")


class ToolKeyStatus(StrEnum):
    ACTIVE = "active"
    RETIRING = "retiring"


class ToolKey(Base):
    """An RSA key pair of the tool. The private half is encrypted with a key derived from
    SECRET_KEY; the newest active key signs, retiring keys stay in the JWKS until `retire_after`."""

    __tablename__ = "lti_tool_key"

    id: Mapped[intpk]
    kid: Mapped[str] = mapped_column(String(64), unique=True)
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    private_key_encrypted: Mapped[str] = mapped_column(Text)
    status: Mapped[ToolKeyStatus] = mapped_column(
        str_enum(ToolKeyStatus), default=ToolKeyStatus.ACTIVE
    )
    created_at: Mapped[timestamp]
    retire_after: Mapped[dt.datetime | None]


class UsedLoginState(Base):
    """An OIDC login state a launch has spent (states are signed, not stored, until used).

    Kept until the state's own expiry, so that a replayed launch POST is refused on any worker.
    """

    __tablename__ = "lti_used_state"
    __table_args__ = (Index("ix_lti_used_state_expires_at", "expires_at"),)

    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    platform_id: Mapped[int] = mapped_column(ForeignKey("lti_platform.id", ondelete="CASCADE"))
    expires_at: Mapped[dt.datetime]


class AccessToken(Base):
    """An OAuth2 access token for a platform's services, cached until shortly before expiry."""

    __tablename__ = "lti_access_token"
    __table_args__ = (UniqueConstraint("platform_id", "scope_key"),)

    id: Mapped[intpk]
    platform_id: Mapped[int] = mapped_column(ForeignKey("lti_platform.id", ondelete="CASCADE"))
    scope_key: Mapped[str] = mapped_column(String(64))
    token: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[dt.datetime]
