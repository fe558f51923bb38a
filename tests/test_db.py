"""The engine's pool: a connection the database dropped while it sat idle is replaced before
a request uses it, without a test round trip on every checkout of a busy connection."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
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


@pytest.fixture
def server_database(
    database_url: str, pinged: list[Any], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Database | None]:
    """The suite's database when it is a server (PostgreSQL), else None. SQLite runs
    in-process: nothing can drop its connections, and they are never tested."""
    database = Database(database_url)
    try:
        if database.is_sqlite:
            monkeypatch.setattr(db_module, "IDLE_PING_SECONDS", 0.0)
            with database.session_scope() as session:
                session.execute(text("SELECT 2"))
            assert pinged == []
            yield None
        else:
            yield database
    finally:
        database.engine.dispose()


def test_busy_connections_are_not_tested_idle_ones_are(
    server_database: Database | None, pinged: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    database = server_database
    if database is None:
        return
    for _ in range(3):
        with database.session_scope() as session:
            session.execute(text("SELECT 2"))
    assert pinged == []
    monkeypatch.setattr(db_module, "IDLE_PING_SECONDS", 0.0)
    with database.session_scope() as session:
        session.execute(text("SELECT 2"))
    assert len(pinged) == 1


def test_an_idle_connection_the_server_dropped_is_replaced(
    server_database: Database | None, pinged: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    database = server_database
    if database is None:
        return
    admin = create_engine(database.url, isolation_level="AUTOCOMMIT")
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
        admin.dispose()


def test_sqlite_writers_queue_in_turn(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    lock_path = str(tmp_path / "db-writers.lock")
    # Two queues on one file stand for two worker processes (flock is per open file).
    first, second = db_module.WriteQueue(lock_path), db_module.WriteQueue(lock_path)
    assert first.enter()
    entered = threading.Event()

    def _other() -> None:
        if second.enter():
            entered.set()
            second.leave()

    waiter = threading.Thread(target=_other)
    waiter.start()
    assert not entered.wait(0.2), "the other process's writer went in out of turn"
    first.leave()
    assert entered.wait(5), "the waiting writer was not let in"
    waiter.join()
    # A writer that waits too long goes on without its turn instead of hanging.
    monkeypatch.setattr(db_module, "WRITE_QUEUE_TIMEOUT", 0.1)
    assert first.enter()
    started = time.monotonic()
    assert second.enter() is False
    assert time.monotonic() - started < 2
    first.leave()
    assert second.enter()
    second.leave()


def test_concurrent_sqlite_writers_all_commit(tmp_path: Any) -> None:
    database = Database(f"sqlite:///{tmp_path / 'queue.db'}")
    with database.engine.begin() as conn:
        conn.execute(text("CREATE TABLE counter (n INTEGER)"))
        conn.execute(text("INSERT INTO counter VALUES (0)"))
    errors: list[BaseException] = []

    def _add() -> None:
        try:
            for _ in range(25):
                with database.session_scope() as session:
                    value = session.execute(text("SELECT n FROM counter")).scalar_one()
                    session.execute(text("UPDATE counter SET n = :n"), {"n": value + 1})
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=_add) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        with database.read_scope() as session:
            # Read-modify-write in each transaction: no update lost.
            assert session.execute(text("SELECT n FROM counter")).scalar_one() == 150
        queue = db_module._write_queue(database.url)
        assert queue.enter()  # nobody left holding it
        queue.leave()
    finally:
        database.engine.dispose()


def test_an_exclusive_section_has_one_holder_across_connections(database_url: str) -> None:
    # Two Database objects stand for two worker processes.
    first, second = Database(database_url), Database(database_url)
    database = first
    try:
        with first.exclusive("job:1"):
            started = time.monotonic()
            with pytest.raises(TimeoutError), second.exclusive("job:1", timeout=0.2):
                pass
            assert time.monotonic() - started >= 0.2
            if database.is_sqlite:
                # SQLite keeps one lock file for every name: another name waits too.
                with pytest.raises(TimeoutError), second.exclusive("job:2", timeout=0.2):
                    pass
            else:
                with second.exclusive("job:2", timeout=1):  # another name is free
                    pass
        with second.exclusive("job:1", timeout=1):  # free again once let go
            pass
    finally:
        first.engine.dispose()
        second.engine.dispose()


def test_sqlite_wal_is_checkpointed_and_restarted_while_readers_come_and_go(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's own checkpoints are off (they were retried by every write while any reader
    held a snapshot); ours run every CHECKPOINT_EVERY writes, so the WAL keeps being reused."""
    monkeypatch.setattr(db_module, "CHECKPOINT_EVERY", 10)
    path = tmp_path / "wal.db"
    database = Database(f"sqlite:///{path}")
    try:
        with database.engine.begin() as conn:
            conn.execute(text("CREATE TABLE page (n INTEGER, body TEXT)"))
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0
        for n in range(300):
            with database.read_scope() as reader:  # a page reads, then records its visit
                reader.execute(text("SELECT count(*) FROM page")).scalar_one()
            with database.session_scope() as session:
                session.execute(
                    text("INSERT INTO page VALUES (:n, :body)"), {"n": n, "body": "x" * 3000}
                )
        # 300 writes of ~1 page each would leave a WAL of over 1 MB if it were never restarted.
        assert (tmp_path / "wal.db-wal").stat().st_size < 300_000
        with database.read_scope() as session:
            assert session.execute(text("SELECT count(*) FROM page")).scalar_one() == 300
    finally:
        database.engine.dispose()


def test_sqlite_wal_is_truncated_when_some_reader_always_holds_a_snapshot(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under steady load a reader is always in the WAL, so it never restarts by itself; past
    WAL_RESTART_BYTES a checkpoint waits for the readers of the moment and truncates it."""
    monkeypatch.setattr(db_module, "CHECKPOINT_EVERY", 10)
    monkeypatch.setattr(db_module, "WAL_RESTART_BYTES", 200_000)
    path = tmp_path / "busy.db"
    database = Database(f"sqlite:///{path}")
    with database.engine.begin() as conn:
        conn.execute(text("CREATE TABLE page (n INTEGER, body TEXT)"))
    stop = threading.Event()

    def read_all_the_time() -> None:
        while not stop.is_set():
            with database.read_scope() as reader:
                reader.execute(text("SELECT count(*) FROM page")).scalar_one()
                time.sleep(0.002)

    readers = [threading.Thread(target=read_all_the_time) for _ in range(2)]
    for thread in readers:
        thread.start()
    largest = 0
    try:
        for n in range(400):
            with database.session_scope() as session:
                session.execute(
                    text("INSERT INTO page VALUES (:n, :body)"), {"n": n, "body": "x" * 3000}
                )
            largest = max(largest, (tmp_path / "busy.db-wal").stat().st_size)
    finally:
        stop.set()
        for thread in readers:
            thread.join()
    try:
        # Never truncated it passes 4.5 MB; truncated it stays within a few times the limit
        # (a truncation that finds readers busy for 20 ms gives up until the next one).
        assert largest < 2_000_000
        with database.read_scope() as session:
            assert session.execute(text("SELECT count(*) FROM page")).scalar_one() == 400
    finally:
        database.engine.dispose()


def test_a_small_write_needs_no_transaction_round_trips_on_postgresql(database_url: str) -> None:
    from sqlalchemy import event

    database = Database(database_url)
    sent: list[str] = []
    event.listen(
        database.engine, "before_cursor_execute", lambda *args: sent.append(args[2].split()[0])
    )
    try:
        with database.engine.begin() as conn:
            conn.execute(text("CREATE TABLE small_write (n INTEGER)"))
        sent.clear()
        with database.small_write_scope() as session:
            session.execute(text("INSERT INTO small_write VALUES (1)"))
            dbapi = session.connection().connection.dbapi_connection
            # PostgreSQL: autocommit, so psycopg sends no BEGIN (nor COMMIT) of its own.
            assert database.is_sqlite or dbapi.autocommit
        # SQLite keeps to its queue of writers, in a transaction taken up front.
        assert sent == (["BEGIN", "INSERT"] if database.is_sqlite else ["INSERT"])
        with pytest.raises(RuntimeError), database.small_write_scope() as session:
            session.execute(text("INSERT INTO small_write VALUES (2)"))
            raise RuntimeError("after the statement")
        with database.read_scope() as session:
            kept = session.execute(text("SELECT n FROM small_write ORDER BY n")).scalars().all()
        # Autocommit: a statement stands on its own (hence "small" writes only).
        assert kept == ([1] if database.is_sqlite else [1, 2])
    finally:
        with database.engine.begin() as conn:
            conn.execute(text("DROP TABLE small_write"))
        database.engine.dispose()
