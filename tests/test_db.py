"""The engine's pool: a connection the database dropped while it sat idle is replaced before
a request uses it, without a test round trip on every checkout of a busy connection."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Integer,
    MetaData,
    Table,
    bindparam,
    create_engine,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.exc import IntegrityError

from lti_tool import db as db_module
from lti_tool.db import Database, Direct, Prepared, UTCDateTime


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
    held a snapshot); ours run in a thread of their own while the process writes, which keeps
    the WAL near WAL_RESTART_BYTES and truncates it once writing stops."""
    monkeypatch.setattr(db_module, "CHECKPOINT_INTERVAL", 0.002)
    monkeypatch.setattr(db_module, "CHECKPOINT_IDLE_EXIT", 0.1)
    monkeypatch.setattr(db_module, "WAL_RESTART_BYTES", 100_000)
    path = tmp_path / "wal.db"
    database = Database(f"sqlite:///{path}")
    try:
        with database.engine.begin() as conn:
            conn.execute(text("CREATE TABLE page (n INTEGER, body TEXT)"))
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 0

        def visit(n: int) -> int:
            with database.read_scope() as reader:  # a page reads, then records its visit
                reader.execute(text("SELECT count(*) FROM page")).scalar_one()
            with database.session_scope() as session:
                session.execute(
                    text("INSERT INTO page VALUES (:n, :body)"), {"n": n, "body": "x" * 3000}
                )
            return (tmp_path / "wal.db-wal").stat().st_size

        for n in range(300):
            wal = visit(n)
        # 300 writes would leave a WAL of over 1 MB if it were never truncated. The thread
        # truncates it while the writes go on; on a busy machine it may have lost its turn
        # for a moment, so the writes go on (up to 5 s) until its next truncation shows.
        written, deadline = 300, time.monotonic() + 5
        while wal >= 300_000 and time.monotonic() < deadline:
            wal = visit(written)
            written += 1
        assert wal < 300_000

        def checkpointers() -> int:
            return sum(t.name == "sqlite-wal-checkpoint" for t in threading.enumerate())

        deadline = time.monotonic() + 5
        while checkpointers() and time.monotonic() < deadline:
            time.sleep(0.01)
        # Writing stopped: the WAL was truncated, and then the thread ended.
        assert (tmp_path / "wal.db-wal").stat().st_size == 0 and checkpointers() == 0
        with database.read_scope() as session:
            assert session.execute(text("SELECT count(*) FROM page")).scalar_one() == written
    finally:
        database.engine.dispose()


def test_sqlite_wal_is_truncated_when_some_reader_always_holds_a_snapshot(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under steady load a reader is always in the WAL, so it never restarts by itself; past
    WAL_RESTART_BYTES a checkpoint waits for the readers of the moment and truncates it."""
    monkeypatch.setattr(db_module, "CHECKPOINT_INTERVAL", 0.002)
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


_ROWS = Table(
    "direct_row",
    MetaData(),
    Column("id", Integer, primary_key=True),
    Column("at", UTCDateTime()),
    Column("answers", JSON),
    Column("done", Boolean),
)


@pytest.fixture
def rows_table(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    _ROWS.create(database.engine)
    try:
        yield database
    finally:
        _ROWS.drop(database.engine)
        database.engine.dispose()


def test_prepared_statements_read_what_sqlalchemy_reads(rows_table: Database) -> None:
    """Straight on the DBAPI cursor, values still pass through SQLAlchemy's conversions: aware
    UTC datetimes, JSON, booleans (SQLite stores them as text and integers)."""
    at = dt.datetime(2026, 11, 27, 3, 4, 5, 678000, tzinfo=dt.timezone(dt.timedelta(hours=9)))
    insert_row = Prepared(
        insert(_ROWS).values(
            id=bindparam("id"), at=bindparam("at"), answers=bindparam("answers"), done=True
        )
    )
    with rows_table.direct() as conn, conn.writing():
        conn.rows(insert_row, {"id": 1, "at": at, "answers": {"q1": [0, 2]}})
    row_of = Prepared(select(_ROWS).where(_ROWS.c.id == bindparam("id")))
    with rows_table.direct() as conn:
        found = conn.first(row_of, {"id": 1})
        assert conn.first(row_of, {"id": 2}) is None
    with rows_table.read_scope() as session:
        through_sqlalchemy = tuple(session.execute(select(_ROWS)).one())
    assert found == through_sqlalchemy == (1, at, {"q1": [0, 2]}, True)
    assert found is not None and found[1].tzinfo is not None
    with pytest.raises(ValueError, match="expanding"):
        Prepared(select(_ROWS).where(_ROWS.c.id.in_([1, 2]))).plan(rows_table.engine.dialect)
    with pytest.raises(ValueError, match="'id'"), rows_table.direct() as conn:
        conn.rows(row_of, {})


def test_a_direct_write_is_one_statement_and_its_errors_are_sqlalchemys(
    rows_table: Database,
) -> None:
    sent: list[str] = []
    # The DBAPI connection's own trace: what really goes to the database.
    insert_row = Prepared(insert(_ROWS).values(id=bindparam("id")))
    with rows_table.direct() as conn:
        raw = conn._dbapi
        if rows_table.is_sqlite:
            raw.set_trace_callback(lambda sql: sent.append(sql.split()[0].upper()))
        with conn.writing():
            conn.rows(insert_row, {"id": 1})
        if rows_table.is_sqlite:
            raw.set_trace_callback(None)
            # SQLite keeps to its queue of writers, in a transaction taken up front.
            assert sent == ["BEGIN", "INSERT", "COMMIT"]
        else:
            # PostgreSQL: autocommit, so psycopg sends no BEGIN (nor COMMIT) of its own.
            assert raw.autocommit
        # A unique violation comes out as SQLAlchemy's IntegrityError, as from a session.
        with pytest.raises(IntegrityError), conn.writing():
            conn.rows(insert_row, {"id": 1})
        with pytest.raises(RuntimeError), conn.writing():
            conn.rows(insert_row, {"id": 2})
            raise RuntimeError("after the statement")
        # The queue of writers was left each time: a further write goes straight in.
        started = time.monotonic()
        with conn.writing():
            conn.rows(insert_row, {"id": 3})
        assert time.monotonic() - started < 1
    with rows_table.read_scope() as session:
        kept = session.execute(select(_ROWS.c.id).order_by(_ROWS.c.id)).scalars().all()
    # SQLite rolled the failed write back; on PostgreSQL each statement stands on its own.
    assert kept == ([1, 3] if rows_table.is_sqlite else [1, 2, 3])


def test_a_direct_connection_goes_back_to_the_pool_as_sessions_expect_it(
    rows_table: Database,
) -> None:
    """On PostgreSQL a direct connection runs in autocommit; given back, it must begin
    transactions again, or a session's rollback would undo nothing."""
    for failing in (False, True):
        with contextlib.suppress(RuntimeError), rows_table.direct() as conn:
            used = conn._dbapi
            if failing:
                raise RuntimeError("inside")
        with rows_table.sessions() as session:
            session.execute(insert(_ROWS).values(id=10))
            assert session.connection().connection.dbapi_connection is used
            session.rollback()
        with rows_table.read_scope() as session:
            assert session.execute(select(_ROWS.c.id)).scalars().all() == []


def test_direct_reads_in_a_snapshot_and_within_a_sessions_transaction(
    rows_table: Database,
) -> None:
    count = Prepared(select(func.count()).select_from(_ROWS))
    insert_row = Prepared(insert(_ROWS).values(id=bindparam("id")))
    with rows_table.direct() as conn, conn.snapshot():
        assert conn.first(count, {}) == (0,)
        with rows_table.direct() as other, other.writing():
            other.rows(insert_row, {"id": 1})
        # SQLite: one read transaction, so the page's reads agree with each other. PostgreSQL
        # reads in autocommit (as every read-only view there): each sees what is committed.
        assert conn.first(count, {}) == ((0,) if rows_table.is_sqlite else (1,))
    with rows_table.sessions() as session:
        session.execute(insert(_ROWS).values(id=2))
        # Within the session: its own uncommitted row is seen, so it is its transaction.
        assert Direct.within(session).first(count, {}) == (2,)
        session.rollback()
    with rows_table.direct() as conn:
        assert conn.first(count, {}) == (1,)


def test_a_read_only_sessions_connection_refuses_direct_writes(rows_table: Database) -> None:
    from lti_tool.db import ReadOnlyViolation

    insert_row = Prepared(insert(_ROWS).values(id=bindparam("id")))
    with rows_table.read_scope() as session:
        reader = Direct.within(session)
        assert reader.first(Prepared(select(func.count()).select_from(_ROWS)), {}) == (0,)
        with pytest.raises(ReadOnlyViolation):
            reader.rows(insert_row, {"id": 1})
    with rows_table.sessions() as session:
        Direct.within(session).rows(insert_row, {"id": 2})
        session.commit()
    with rows_table.direct() as conn:
        assert conn.rows(Prepared(select(_ROWS.c.id)), {}) == [(2,)]


def test_a_batch_reads_what_its_statements_read_one_by_one(
    rows_table: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL the statements of a batch go out together (pipeline mode): one round
    trip, the same rows and conversions as each on its own; a failing one raises as any."""
    at = dt.datetime(2026, 11, 27, 3, 4, 5, tzinfo=dt.UTC)
    insert_row = Prepared(
        insert(_ROWS).values(id=bindparam("id"), at=bindparam("at"), answers=bindparam("answers"))
    )
    with rows_table.direct() as conn, conn.writing():
        for n in (1, 2, 3):
            conn.rows(insert_row, {"id": n, "at": at, "answers": {"n": n}})
    row_of = Prepared(select(_ROWS).where(_ROWS.c.id == bindparam("id")))
    ids_above = Prepared(select(_ROWS.c.id).where(_ROWS.c.id > bindparam("id")))
    calls = [(row_of, {"id": 2}), (ids_above, {"id": 1}), (row_of, {"id": 9})]
    with rows_table.direct() as conn:
        pipelines: list[object] = []
        if not rows_table.is_sqlite:
            connection_class = type(conn._dbapi)
            pipeline = connection_class.pipeline

            def counted(self: Any) -> Any:
                pipelines.append(self)
                return pipeline(self)

            monkeypatch.setattr(connection_class, "pipeline", counted)
        batched = conn.batch(*calls)
        assert len(pipelines) == (0 if rows_table.is_sqlite else 1)
        one_by_one = [conn.rows(prepared, values) for prepared, values in calls]
        assert batched == one_by_one == [[(2, at, {"n": 2}, None)], [(2,), (3,)], []]
        with pytest.raises(IntegrityError):
            conn.batch((row_of, {"id": 1}), (insert_row, {"id": 1, "at": at, "answers": None}))
        # The connection is usable after the failure.
        assert conn.batch((ids_above, {"id": 2}), (row_of, {"id": 9})) == [[(3,)], []]


def test_an_atomic_block_commits_together_or_not_at_all(rows_table: Database) -> None:
    insert_row = Prepared(insert(_ROWS).values(id=bindparam("id")))
    ids = Prepared(select(_ROWS.c.id).order_by(_ROWS.c.id))
    with rows_table.direct() as conn:
        with conn.atomic():
            conn.rows(insert_row, {"id": 1})
            conn.rows(insert_row, {"id": 2})
        with pytest.raises(IntegrityError), conn.atomic():
            conn.rows(insert_row, {"id": 3})
            conn.rows(insert_row, {"id": 1})  # a unique violation: 3 goes with it
        with pytest.raises(RuntimeError), conn.atomic():
            conn.rows(insert_row, {"id": 4})
            raise RuntimeError("after the statement")
        assert conn.rows(ids, {}) == [(1,), (2,)]
        # The connection (autocommit on PostgreSQL) is as before: a write stands on its own.
        with conn.writing():
            conn.rows(insert_row, {"id": 5})
    with rows_table.read_scope() as session:
        assert session.execute(select(_ROWS.c.id).order_by(_ROWS.c.id)).scalars().all() == [
            1,
            2,
            5,
        ]
