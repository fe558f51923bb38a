"""The engine's pool: a connection the database dropped while it sat idle is replaced before
a request uses it, without a test round trip on every checkout of a busy connection."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import create_engine, text

from lti_tool import db as db_module
from lti_tool.db import Database


@pytest.fixture
def pinged(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    calls: list[Any] = []
    real = db_module.ping

    def _counting(dbapi_conn: Any) -> None:
        calls.append(dbapi_conn)
        real(dbapi_conn)

    monkeypatch.setattr(db_module, "ping", _counting)
    return calls


def _backend_pid(database: Database) -> int:
    with database.engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_busy_connections_are_not_tested_idle_ones_are(
    database_url: str, pinged: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    if not database_url.startswith("postgresql"):
        # SQLite runs in-process: nothing to drop, nothing to test.
        assert Database(database_url).engine.dialect.name == "sqlite"
        return
    database = Database(database_url)
    try:
        for _ in range(3):
            with database.session_scope() as session:
                session.execute(text("SELECT 2"))
        assert pinged == []
        monkeypatch.setattr(db_module, "IDLE_PING_SECONDS", 0.0)
        with database.session_scope() as session:
            session.execute(text("SELECT 2"))
        assert len(pinged) == 1
    finally:
        database.engine.dispose()


def test_an_idle_connection_the_server_dropped_is_replaced(
    database_url: str, pinged: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    if not database_url.startswith("postgresql"):
        assert Database(database_url).engine.dialect.name == "sqlite"
        return
    database = Database(database_url)
    admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        dropped = _backend_pid(database)  # now idle in the pool
        with admin.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": dropped})
        monkeypatch.setattr(db_module, "IDLE_PING_SECONDS", 0.0)
        with database.session_scope() as session:
            assert session.execute(text("SELECT 1")).scalar_one() == 1
        assert pinged, "the idle connection was handed out untested"
        assert _backend_pid(database) != dropped
    finally:
        database.engine.dispose()
        admin.dispose()
