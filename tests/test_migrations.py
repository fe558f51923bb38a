"""Migrations on the backend under test: a fresh database goes up to head, matches the models
exactly (what `alembic check` runs in CI), comes all the way down, and goes up again."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Engine, make_url

from lti_tool.cli import alembic_config, upgrade_database
from lti_tool.models import Base


@pytest.fixture
def empty_database_url(tmp_path: Path) -> Iterator[str]:
    """A database of its own, with nothing in it, on the server the suite runs against."""
    server_url = os.environ.get("TEST_DATABASE_URL")
    if not server_url:
        yield f"sqlite:///{tmp_path / 'migrations.db'}"
        return
    name = f"tsunagu_migrations_{os.getpid()}_{secrets.token_hex(3)}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                {"n": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture
def engine(empty_database_url: str) -> Iterator[Engine]:
    engine = create_engine(empty_database_url)
    yield engine
    engine.dispose()


def quiet(cfg: AlembicConfig) -> AlembicConfig:
    cfg.attributes["skip_logging"] = True  # leave the test run's logging alone
    return cfg


def differences(engine: Engine) -> list[object]:
    """What autogenerate would write: nothing, when migrations and models agree."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))


def tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def test_upgrade_check_downgrade_upgrade(empty_database_url: str, engine: Engine):
    cfg = quiet(alembic_config(empty_database_url))
    head = ScriptDirectory.from_config(cfg).get_current_head()
    model_tables = set(Base.metadata.tables)

    upgrade_database(empty_database_url)
    assert current_revision(engine) == head
    assert tables(engine) == model_tables | {"alembic_version"}
    assert differences(engine) == []
    command.check(cfg)  # the CLI's own check agrees

    command.downgrade(cfg, "base")
    assert tables(engine) == {"alembic_version"}
    assert current_revision(engine) is None

    command.upgrade(cfg, "head")
    assert current_revision(engine) == head
    assert differences(engine) == []


def test_every_revision_steps_down_and_up(empty_database_url: str, engine: Engine):
    """Each migration's downgrade undoes exactly its upgrade, one step at a time."""
    cfg = quiet(alembic_config(empty_database_url))
    revisions = [r.revision for r in ScriptDirectory.from_config(cfg).walk_revisions()]
    command.upgrade(cfg, "head")
    for revision in revisions:  # newest first
        command.downgrade(cfg, "-1")
        assert current_revision(engine) != revision
        command.upgrade(cfg, "+1")
        assert current_revision(engine) == revision
        command.downgrade(cfg, "-1")
    assert tables(engine) == {"alembic_version"}
    command.upgrade(cfg, "head")
    assert differences(engine) == []
