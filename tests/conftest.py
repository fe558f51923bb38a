"""Fixtures: a migrated database (SQLite, or PostgreSQL with TEST_DATABASE_URL), the tool and the
test LMS served over loopback HTTP, and factories for registrations, users and launches."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import delete
from sqlalchemy.orm import Session

from lti_tool.app import create_app
from lti_tool.config import Config
from lti_tool.db import Database
from lti_tool.lti.keys import ensure_key
from lti_tool.lti.models import RegisteredVia, ToolKey
from lti_tool.lti.registration import save_platform
from lti_tool.models import Base
from tests.platform.databases import fresh_database
from tests.platform.driver import Browser
from tests.platform.lms import MEMBERSHIP, TestLMS, ToolRegistration, User
from tests.platform.server import LiveServer

SECRET = "test-secret-" + "x" * 40
# A small, stable catalog for the tests (the real curriculum is checked on its own).
FIXTURE_CONTENT = Path(__file__).parent / "fixtures" / "content"


def pytest_report_header() -> str:
    return f"database: {_backend_label()}"


def _backend_label() -> str:
    url = os.environ.get("TEST_DATABASE_URL", "")
    return "postgresql" if url.startswith("postgresql") else "sqlite"


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    with fresh_database(os.environ.get("TEST_DATABASE_URL")) as url:
        yield url


@pytest.fixture(scope="session")
def tool_server() -> Iterator[LiveServer]:
    server = LiveServer("127.0.0.1").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def lms_server() -> Iterator[LiveServer]:
    # Another site than the tool (localhost vs 127.0.0.1), as a real LMS is.
    server = LiveServer("127.0.0.1", url_host="localhost").start()
    yield server
    server.stop()


def make_config(database_url: str, base_url: str, tmp: Path, **changes: Any) -> Config:
    return Config(
        database_url=database_url,
        tool_base_url=base_url,
        secret_key=SECRET,
        instance_dir=tmp,
        testing=True,
        jwks_refetch_interval=0,
        # Tests change registrations behind the tool's back: read them on every request.
        registration_cache_ttl=0,
        content_dir=FIXTURE_CONTENT,
    ).with_overrides(**changes)


@pytest.fixture(scope="session")
def app(
    database_url: str, tool_server: LiveServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Flask]:
    config = make_config(database_url, tool_server.url, tmp_path_factory.mktemp("instance"))
    flask_app = create_app(config)
    tool_server.mount(flask_app)
    keys_db = Database(database_url)
    with keys_db.session_scope() as session:
        ensure_key(session, SECRET)
    keys_db.engine.dispose()
    yield flask_app
    flask_app.extensions["tsunagu.db"].engine.dispose()


@pytest.fixture(scope="session")
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    yield database
    database.engine.dispose()


@pytest.fixture(scope="session")
def lms(lms_server: LiveServer) -> TestLMS:
    platform = TestLMS()
    platform.base_url = lms_server.url
    lms_server.mount(platform.app)
    return platform


@pytest.fixture(autouse=True)
def _clean(request: pytest.FixtureRequest) -> Iterator[None]:
    if "app" not in request.fixturenames:
        yield
        return
    # Fixtures are looked up before the test runs: pytest refuses new ones during teardown.
    app: Flask = request.getfixturevalue("app")
    database: Database = request.getfixturevalue("db")
    lms: TestLMS | None = request.getfixturevalue("lms") if "lms" in request.fixturenames else None
    yield
    # Work a test's requests left for after their responses (grades, rosters) ends first.
    assert app.extensions["tsunagu.after_response"].wait_idle(30), "after-response work hangs"
    with database.session_scope() as session:
        for table in reversed(Base.metadata.sorted_tables):
            if table.name != ToolKey.__tablename__:
                session.execute(delete(table))
    app.extensions["tsunagu.platform_keys"].forget()
    app.extensions["tsunagu.platforms"].invalidate()
    if lms is not None:
        lms.tools.clear()
        lms.scores.clear()
        lms.lineitems.clear()
        lms.members.clear()
        lms.score_failures.clear()
        lms.config_overrides.clear()
        lms.on_jwks = None
        del lms.keys[1:]


@pytest.fixture
def session(db: Database) -> Iterator[Session]:
    with db.session_scope() as s:
        yield s


@pytest.fixture
def register(app: Flask, lms: TestLMS, db: Database) -> Callable[..., ToolRegistration]:
    """Register the test LMS with the tool (as `lti-tool platforms add` would); returns the
    LMS's view of the registration."""

    def _register(deployment_id: str = "1", client_id: str | None = None) -> ToolRegistration:
        reg = lms.add_tool(
            app.extensions["tsunagu.config"].tool_base_url,
            client_id=client_id,
            deployment_id=deployment_id,
        )
        with db.session_scope() as session:
            save_platform(
                session,
                issuer=lms.issuer,
                client_id=reg.client_id,
                name=lms.name,
                auth_login_url=lms.base_url + "/auth",
                auth_token_url=lms.base_url + "/token",
                auth_audience=None,
                jwks_url=lms.base_url + "/jwks",
                product_family_code="testlms",
                deployment_ids=[deployment_id],
                registered_via=RegisteredVia.MANUAL,
            )
        return reg

    return _register


@pytest.fixture
def reg(register: Callable[..., ToolRegistration]) -> ToolRegistration:
    return register()


@pytest.fixture
def browser(app: Flask, lms: TestLMS) -> Browser:
    return Browser(app.extensions["tsunagu.config"].tool_base_url, lms)


def make_user(role: str = "Learner", **fields: Any) -> User:
    roles = fields.pop("roles", [MEMBERSHIP + role] if role else [])
    defaults = {
        "name": "Nguyen Thi Lan",
        "given_name": "Lan",
        "family_name": "Nguyen",
        "email": "lan@example.org",
    }
    defaults.update(fields)
    return User(sub=defaults.pop("sub", uuid.uuid4().hex[:12]), roles=roles, **defaults)


@pytest.fixture
def learner() -> User:
    return make_user("Learner")


@pytest.fixture
def instructor() -> User:
    return make_user(
        "Instructor",
        name="田中 花子",
        given_name="花子",
        family_name="田中",
        email="tanaka@example.jp",
    )
