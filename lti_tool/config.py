"""Configuration read from the environment (DESIGN.md, "Configuration").

Nothing here touches the database or the network; `create_app` receives a finished `Config`.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def content_dir() -> Path:
    return Path(os.environ.get("CONTENT_DIR", PROJECT_ROOT / "content")).resolve()


def _instance_dir() -> Path:
    return Path(os.environ.get("INSTANCE_DIR", PROJECT_ROOT / "instance")).resolve()


def load_secret_key(instance_dir: Path) -> str:
    """Return SECRET_KEY from the environment, else from instance/secret_key, generating it once."""
    from_env = os.environ.get("SECRET_KEY")
    if from_env:
        return from_env
    path = instance_dir / "secret_key"
    if path.exists():
        return path.read_text().strip()
    instance_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    # Create with 0600 so the key is never world-readable, even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _seconds(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    try:
        seconds = float(value)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, not {value!r}") from None
    if not 0 <= seconds <= 3600:
        raise ValueError(f"{name} must be between 0 and 3600 seconds, not {value!r}")
    return seconds


@dataclass(frozen=True)
class Config:
    """Everything the app needs to know about where it runs."""

    database_url: str
    tool_base_url: str
    secret_key: str
    instance_dir: Path
    host: str = "127.0.0.1"
    port: int = 5000
    # The demo LMS at /demo: only ever switched on by `make run` for a newcomer on loopback.
    demo: bool = False
    # Lifetimes, in seconds.
    login_state_ttl: int = 600
    session_ttl: int = 8 * 3600
    url_token_ttl: int = 3600
    iat_leeway: int = 120
    jwks_cache_ttl: int = 3600
    jwks_refetch_interval: int = 30
    # How long a worker may use its snapshot of the registrations (0: read them every time).
    registration_cache_ttl: float = 5.0
    key_retire_grace: int = 7 * 24 * 3600
    http_timeout: float = 10.0
    roster_refresh_interval: int = 3600
    testing: bool = False
    content_dir: Path = field(default_factory=content_dir)
    # Production refuses the demo, SQLite, and a generated SECRET_KEY (see `check_production`).
    production: bool = False
    # Dynamic registrations wait for `lti-tool platforms enable` (default: on in production).
    registration_approval: bool = False
    extra: dict[str, object] = field(default_factory=dict)

    @classmethod
    def from_env(cls) -> Config:
        instance_dir = _instance_dir()
        port_text = os.environ.get("PORT", "5000")
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"PORT must be a TCP port number, not {port_text!r}")
        port = int(port_text)
        host = os.environ.get("HOST", "127.0.0.1")
        default_db = f"sqlite:///{instance_dir / 'lti_tool.db'}"
        return cls(
            database_url=os.environ.get("DATABASE_URL", default_db),
            tool_base_url=os.environ.get("TOOL_BASE_URL", f"http://127.0.0.1:{port}").rstrip("/"),
            secret_key=load_secret_key(instance_dir),
            instance_dir=instance_dir,
            host=host,
            port=port,
            demo=_flag("TSUNAGU_DEMO", False),
            production=_flag("TSUNAGU_PRODUCTION", False),
            registration_approval=_flag(
                "REGISTRATION_APPROVAL", _flag("TSUNAGU_PRODUCTION", False)
            ),
            registration_cache_ttl=_seconds("REGISTRATION_CACHE_SECONDS", 5.0),
        )

    def production_problems(self) -> list[str]:
        """What keeps this configuration from being safe to run in production."""
        if not self.production:
            return []
        problems = []
        if not self.database_url.startswith("postgresql"):
            problems.append("DATABASE_URL must point to PostgreSQL")
        if not os.environ.get("SECRET_KEY"):
            problems.append("SECRET_KEY must be set (every worker and container needs the same)")
        if not os.environ.get("TOOL_BASE_URL"):
            problems.append("TOOL_BASE_URL must be set to the URL the LMS reaches the tool at")
        if self.demo:
            problems.append("the demo LMS (TSUNAGU_DEMO) must be off")
        return problems

    def with_overrides(self, **changes: object) -> Config:
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def secure_transport(self) -> bool:
        return self.tool_base_url.startswith("https://")
