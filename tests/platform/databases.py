"""Throwaway, migrated databases for the tests and the benchmarks."""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from lti_tool.cli import upgrade_database


@contextmanager
def fresh_database(server_url: str | None, prefix: str = "tsunagu_test") -> Iterator[str]:
    """A migrated database: a temporary SQLite file when `server_url` is None, else a database
    of its own on that PostgreSQL server, dropped afterwards."""
    if server_url is None:
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite:///{folder}/{prefix}.db"
            upgrade_database(url)
            yield url
        return
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(3)}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade_database(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :n AND pid <> pg_backend_pid()"
                ),
                {"n": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()
