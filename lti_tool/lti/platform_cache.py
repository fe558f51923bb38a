"""Registrations as every launch reads them: a per-process snapshot of all platforms and their
deployments, reloaded every few seconds.

Logins and launches look a registration up several times each; reading it from memory instead
of the database takes those round trips off every launch. The snapshot is never the only
check that matters: it holds no secrets, and a registration the tool's administrator disables
(`lti-tool platforms disable`, from another process) stops launching within `ttl` seconds.
A registration made through this process (Dynamic Registration) invalidates it at once, and a
lookup that misses reloads it (at most once a second), so a platform or deployment added from
the command line launches at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import select

from lti_tool.db import Database
from lti_tool.lti.models import Deployment, Platform, PlatformStatus


@dataclass(frozen=True)
class KnownPlatform:
    """One registration, as read at the snapshot's time. Same attribute names as `Platform`."""

    id: int
    issuer: str
    client_id: str
    name: str
    status: PlatformStatus
    auth_login_url: str
    auth_token_url: str | None
    auth_audience: str | None
    jwks_url: str
    # deployment_id → its row's primary key
    deployments: Mapping[str, int]

    @property
    def is_active(self) -> bool:
        return self.status == PlatformStatus.ACTIVE


@dataclass(frozen=True)
class Snapshot:
    by_id: Mapping[int, KnownPlatform]
    by_issuer: Mapping[str, tuple[KnownPlatform, ...]] = field(default_factory=dict)

    def find(self, issuer: str, client_id: str | None) -> tuple[KnownPlatform, ...]:
        """The registrations of `issuer` (with this client_id, when one is given)."""
        found = self.by_issuer.get(issuer, ())
        if client_id is None:
            return found
        return tuple(platform for platform in found if platform.client_id == client_id)

    def active_urls(self) -> list[str]:
        return [
            url
            for platform in self.by_id.values()
            if platform.is_active
            for url in (platform.issuer, platform.auth_login_url)
        ]


def load_snapshot(db: Database) -> Snapshot:
    with db.read_scope() as session:
        deployments: dict[int, dict[str, int]] = {}
        for row in session.execute(
            select(Deployment.platform_id, Deployment.deployment_id, Deployment.id)
        ):
            deployments.setdefault(row.platform_id, {})[row.deployment_id] = row.id
        platforms = [
            KnownPlatform(
                id=row.id,
                issuer=row.issuer,
                client_id=row.client_id,
                name=row.name,
                status=row.status,
                auth_login_url=row.auth_login_url,
                auth_token_url=row.auth_token_url,
                auth_audience=row.auth_audience,
                jwks_url=row.jwks_url,
                deployments=deployments.get(row.id, {}),
            )
            for row in session.execute(
                select(
                    Platform.id,
                    Platform.issuer,
                    Platform.client_id,
                    Platform.name,
                    Platform.status,
                    Platform.auth_login_url,
                    Platform.auth_token_url,
                    Platform.auth_audience,
                    Platform.jwks_url,
                ).order_by(Platform.id)
            )
        ]
    by_issuer: dict[str, tuple[KnownPlatform, ...]] = {}
    for platform in platforms:
        by_issuer[platform.issuer] = (*by_issuer.get(platform.issuer, ()), platform)
    return Snapshot(by_id={p.id: p for p in platforms}, by_issuer=by_issuer)


# A lookup that misses reloads the snapshot if it is older than this.
MISS_RELOAD = 1.0


class PlatformCache:
    """The current snapshot; `ttl` 0 reads the database every time."""

    def __init__(self, load: Callable[[], Snapshot], ttl: float) -> None:
        self._load = load
        self.ttl = ttl
        self._snapshot: Snapshot | None = None
        self._loaded_at = 0.0
        self._miss_reloaded_at = float("-inf")
        self._lock = threading.Lock()

    def snapshot(self) -> Snapshot:
        snapshot, now = self._snapshot, time.monotonic()
        if snapshot is not None and now - self._loaded_at < self.ttl:
            return snapshot
        with self._lock:
            if self._snapshot is not None and now - self._loaded_at < self.ttl:
                return self._snapshot
            snapshot = self._load()
            self._snapshot, self._loaded_at = snapshot, time.monotonic()
            return snapshot

    def after_miss(self) -> Snapshot:
        """A fresh snapshot after a lookup missed, unless a miss reloaded it moments ago (so
        that a stream of unknown issuers cannot make every request read the database)."""
        with self._lock:
            now = time.monotonic()
            if self._snapshot is not None and now - self._miss_reloaded_at < MISS_RELOAD:
                return self._snapshot
            self._miss_reloaded_at = now
            self._snapshot, self._loaded_at = self._load(), time.monotonic()
            return self._snapshot

    def invalidate(self) -> None:
        with self._lock:
            self._snapshot = None
            self._miss_reloaded_at = float("-inf")
