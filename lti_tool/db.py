"""Engine, sessions, and the declarative Base with a constraint naming convention.

A web request gets one session, opened lazily; the request boundary commits it when the
response is a success and rolls it back otherwise, so a refused request writes nothing.
Services only `flush()`.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import functools
import hashlib
import logging
import os
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from enum import StrEnum
from typing import Annotated, Any, ClassVar, TypeVar, cast

from flask import Flask, Response, current_app, g
from sqlalchemy import DateTime, Enum, MetaData, String, create_engine, event, text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.engine.interfaces import Dialect
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator

F = TypeVar("F", bound=Callable[..., Any])

log = logging.getLogger(__name__)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


intpk = Annotated[int, mapped_column(primary_key=True)]
str255 = Annotated[str, mapped_column(String(255))]
url = Annotated[str, mapped_column(String(2048))]
timestamp = Annotated[dt.datetime, mapped_column(UTCDateTime(), default=utcnow)]


def str_enum(enum_cls: type[StrEnum]) -> Enum:
    """A column type for a StrEnum, stored by value as a plain string (no native enum)."""
    return Enum(
        enum_cls,
        native_enum=False,
        create_constraint=False,
        length=20,
        values_callable=lambda cls: [member.value for member in cls],
        validate_strings=True,
    )


def per_dialect(build: Callable[[Callable[..., Any]], Any]) -> Callable[[str], Any]:
    """A statement with ON CONFLICT, built once per dialect: `build` gets that dialect's
    `insert` (PostgreSQL's or SQLite's); the result is called with a dialect name."""
    built: dict[str, Any] = {}

    def statement(dialect: str) -> Any:
        found = built.get(dialect)
        if found is None:
            insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
            found = built[dialect] = build(insert)
        return found

    return statement


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dt.datetime: UTCDateTime()}


BUSY_TIMEOUT_MS = 10000


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        # Checkpoints are ours (`WalCheckpointer`): SQLite's own, run by any commit once the
        # WAL passes 1,000 pages, is retried by every later commit while a reader holds an
        # older snapshot (most of the time under load), and made each write ~10× dearer.
        cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()

    # A deferred transaction that reads and then writes fails at once (SQLITE_BUSY_SNAPSHOT)
    # when another process wrote in between; take the write lock up front instead, after the
    # writer's turn in the queue (`QueuedWriters`). SQLite is the single-site backend;
    # PostgreSQL serves production.
    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.get_execution_options().get("tsunagu_read_only", False):
            conn.exec_driver_sql("BEGIN")
            return
        dbapi_conn = conn.connection.dbapi_connection
        if isinstance(dbapi_conn, QueuedWriters):
            dbapi_conn.queue_for_write()
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            if isinstance(dbapi_conn, QueuedWriters):
                dbapi_conn.leave_queue()
            raise


WRITE_QUEUE_TIMEOUT = 10.0
# A thread of each process checkpoints the WAL this often while the process writes, and stops
# once it has had nothing to do for CHECKPOINT_IDLE_EXIT seconds.
CHECKPOINT_INTERVAL = 0.2
CHECKPOINT_IDLE_EXIT = 5.0
# Past this size the WAL is truncated, waiting at most WAL_RESTART_WAIT_MS for readers.
WAL_RESTART_BYTES = 8 * 1024 * 1024
WAL_RESTART_WAIT_MS = 20


class WriteQueue:
    """The writers of one SQLite file: the threads of this process queue on a lock, and the
    processes on an advisory lock on a file beside the database, polled at a fine grain. A
    writer that waits longer than `WRITE_QUEUE_TIMEOUT` goes on without its turn and meets
    SQLite's own wait (so a stuck writer delays the others, never hangs them)."""

    def __init__(self, lock_path: str | None, database_path: str | None = None) -> None:
        self._threads = threading.Lock()
        self._fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600) if lock_path else None
        self.checkpointer = WalCheckpointer(database_path, self) if database_path else None

    def wrote(self) -> None:
        """A write was committed: its WAL frames are for the checkpointer to copy back."""
        if self.checkpointer is not None:
            self.checkpointer.wake()

    def enter(self) -> bool:
        deadline = time.monotonic() + WRITE_QUEUE_TIMEOUT
        if not self._threads.acquire(timeout=WRITE_QUEUE_TIMEOUT):
            return False
        if self._fd is None:
            return True
        pause = 0.0002
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() > deadline:
                    self._threads.release()
                    return False
                time.sleep(pause)
                pause = min(pause * 2, 0.002)

    def leave(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._threads.release()


# One queue of writers per database file, per process.
_WRITE_QUEUES: dict[str, WriteQueue] = {}
_WRITE_QUEUES_LOCK = threading.Lock()


class QueuedWriters(sqlite3.Connection):
    """A SQLite connection whose writers wait for their turn in the file's `WriteQueue`.

    SQLite lets one writer in at a time and makes the others poll, sleeping up to 100 ms
    between tries: under load that poll is the whole tail latency. Queued, a writer starts
    within a fraction of a millisecond of the one before it committing (threads wake on a
    lock; worker processes poll a lock file every 0.2–2 ms).
    """

    write_queue: WriteQueue | None = None
    _queued = False

    def queue_for_write(self) -> None:
        if self.write_queue is not None and not self._queued:
            self._queued = self.write_queue.enter()

    def leave_queue(self) -> None:
        if self._queued:
            self._queued = False
            assert self.write_queue is not None
            self.write_queue.leave()

    def commit(self) -> None:
        queue = self.write_queue if self._queued else None
        try:
            super().commit()
        finally:
            self.leave_queue()
        if queue is not None:
            queue.wrote()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.leave_queue()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.leave_queue()


class WalCheckpointer:
    """Copies the WAL of one SQLite file back into it, in a thread of this process with a
    connection of its own, so that no request waits on a checkpoint (SQLite's own, run by the
    commit that passes 1,000 pages of WAL, cost that request ~10 ms, and was retried by every
    later commit while a reader held an older snapshot).

    Usually PASSIVE: it waits for no one and takes no write lock, and once it has copied
    everything the next writer starts the WAL over. But under steady load some reader always
    holds a snapshot in the WAL, which then never starts over and grows without end; past
    `WAL_RESTART_BYTES` the checkpoint truncates it, in the writers' queue (it needs the write
    lock), waiting at most `WAL_RESTART_WAIT_MS` for readers. The thread starts with the first
    write and ends when the process has stopped writing."""

    def __init__(self, database_path: str, queue: WriteQueue) -> None:
        self._path = database_path
        self._queue = queue
        self._lock = threading.Lock()
        self._pending = False
        self._thread: threading.Thread | None = None
        self._pid = 0

    def wake(self) -> None:
        self._pending = True
        if self._thread is not None and self._pid == os.getpid():
            return
        with self._lock:
            if self._thread is None or self._pid != os.getpid():  # none yet, or a forked copy
                self._pid = os.getpid()
                self._thread = threading.Thread(
                    target=self._run, name="sqlite-wal-checkpoint", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        quiet = 0  # rounds since the last write
        while True:
            time.sleep(CHECKPOINT_INTERVAL)
            with self._lock:
                wrote, self._pending = self._pending, False
                quiet = 0 if wrote else quiet + 1
                if quiet * CHECKPOINT_INTERVAL >= CHECKPOINT_IDLE_EXIT:
                    self._thread = None
                    return
            if quiet > 1:
                continue
            try:
                # While the process writes: copy, and truncate when large. In its first quiet
                # round: truncate, so that no WAL is left behind.
                self.checkpoint(truncate=quiet == 1)
            except Exception:  # never let the thread die of it: the next round tries again
                log.exception("WAL checkpoint failed")

    def wal_bytes(self) -> int:
        try:
            return os.path.getsize(self._path + "-wal")
        except OSError:
            return 0

    def checkpoint(self, truncate: bool = False) -> None:
        """Copy the WAL back (PASSIVE); then, if it is large or `truncate` is asked, truncate
        it in the writers' turn, which leaves only what was written since to copy."""
        try:
            conn = sqlite3.connect(
                f"file:{urllib.parse.quote(self._path)}?mode=rw",
                uri=True,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error:
            return  # the file is gone (a test's, say): nothing to copy
        try:
            conn.execute("PRAGMA busy_timeout=0").close()
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").close()
            if not truncate and self.wal_bytes() <= WAL_RESTART_BYTES:
                return
            conn.execute(f"PRAGMA busy_timeout={WAL_RESTART_WAIT_MS}").close()
            queued = self._queue.enter()
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").close()
            finally:
                if queued:
                    self._queue.leave()
        except sqlite3.OperationalError:
            pass  # busy: a later checkpoint catches up
        finally:
            conn.close()


def _write_queue(database_url: str) -> WriteQueue:
    path = make_url(database_url).database
    on_disk = bool(path) and path != ":memory:"
    with _WRITE_QUEUES_LOCK:
        queue = _WRITE_QUEUES.get(database_url)
        if queue is None:
            queue = _WRITE_QUEUES[database_url] = WriteQueue(
                f"{path}-writers.lock" if on_disk else None, path if on_disk else None
            )
        return queue


_IN_PROCESS: dict[str, threading.Lock] = {}


@contextmanager
def _exclusive_in_process(name: str, timeout: float) -> Iterator[None]:
    with _WRITE_QUEUES_LOCK:
        lock = _IN_PROCESS.setdefault(name, threading.Lock())
    if not lock.acquire(timeout=timeout):
        raise TimeoutError(name)
    try:
        yield
    finally:
        lock.release()


def make_engine(database_url: str) -> Engine:
    if database_url.startswith("sqlite"):
        engine = create_engine(
            database_url,
            connect_args={
                "check_same_thread": False,
                "isolation_level": None,
                "factory": QueuedWriters,
            },
        )
        queue = _write_queue(database_url)

        @event.listens_for(engine, "connect")
        def _join_queue(dbapi_conn: Any, _record: Any) -> None:
            if isinstance(dbapi_conn, QueuedWriters):
                dbapi_conn.write_queue = queue

        _tune_sqlite(engine)
        return engine
    # A page may hold two connections at once (its reads, and a short write of its own, see
    # `read_only`): room for that with every thread of a worker busy.
    engine = create_engine(database_url, pool_size=5, max_overflow=10)
    _ping_when_idle(engine)
    return engine


# A pooled connection unused for this long is tested before it is handed out.
IDLE_PING_SECONDS = 10.0


def _ping_when_idle(engine: Engine) -> None:
    """SQLAlchemy's pre-ping tests every checkout: a round trip on every request. Test only
    connections that sat idle (a database restart or an idle timeout closes those); a busy
    connection is proven by its last request. A failed test makes the pool connect anew."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info["tsunagu_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("tsunagu_idle_since")
        if idle_since is None or time.monotonic() - idle_since < IDLE_PING_SECONDS:
            return
        try:
            ping(dbapi_conn)
        except Exception as exc:
            raise DisconnectionError("pooled connection failed its idle test") from exc


def ping(dbapi_conn: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("SELECT 1")
    cursor.close()
    dbapi_conn.rollback()


@contextmanager
def _committing(session: Session) -> Iterator[Session]:
    """Commit on success, else roll back; close either way."""
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


class Prepared:
    """A Core statement compiled once per dialect and run straight on a DBAPI cursor, with
    SQLAlchemy's own conversions of parameters and results (UTC datetimes, JSON, booleans).

    For the few statements that every page runs: there SQLAlchemy's work around each execution
    (~60 µs: compiled-cache lookup, execution context, result proxy, events) costs more than
    the database's own. `statement` is a statement, or a function of the dialect's name that
    builds one (see `per_dialect`). Rows come back as plain tuples, in the selected order."""

    def __init__(self, statement: Any) -> None:
        self._statement = statement
        self._plans: dict[str, _Plan] = {}

    def plan(self, dialect: Dialect) -> _Plan:
        found = self._plans.get(dialect.name)
        if found is None:
            statement = self._statement
            if callable(statement) and not hasattr(statement, "compile"):
                statement = statement(dialect.name)
            found = self._plans[dialect.name] = _Plan(statement, dialect)
        return found


class _Plan:
    def __init__(self, statement: Any, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        if compiled.post_compile_params or compiled.literal_execute_params:
            raise ValueError("a prepared statement takes no expanding (IN) parameters")
        self.sql: str = compiled.string
        self.reads = self.sql.lstrip()[:7].split(None, 1)[0].upper() in _READ_STATEMENTS
        self.positional: list[str] | None = (
            list(compiled.positiontup) if dialect.positional and compiled.positiontup else None
        )
        self.fixed: dict[str, Any] = {}
        self.binds: dict[str, Callable[[Any], Any] | None] = {}
        for name, bind in compiled.binds.items():
            self.binds[name] = bind.type._cached_bind_processor(dialect)
            if not bind.required:
                self.fixed[name] = bind.effective_value
        returned = statement.selected_columns if hasattr(statement, "selected_columns") else ()
        if not returned and getattr(statement, "_returning", None):
            returned = statement._returning
        self.results = [column.type._cached_result_processor(dialect, None) for column in returned]
        self.converts = any(self.results)
        # Known from the statement: asking the cursor (its `description`) costs psycopg the
        # building of a Column object per column, on every execution.
        self.returns_rows = bool(returned)

    def parameters(self, values: Mapping[str, Any]) -> Any:
        merged = {**self.fixed, **values} if self.fixed else values
        named = {}
        for name, process in self.binds.items():
            try:
                value = merged[name]
            except KeyError:
                raise ValueError(f"no value for parameter {name!r}") from None
            named[name] = process(value) if process is not None else value
        if self.positional is not None:
            return [named[name] for name in self.positional]
        return named

    def convert(self, row: Sequence[Any]) -> tuple[Any, ...]:
        if not self.converts:
            return tuple(row)
        return tuple(
            process(value) if process is not None else value
            for process, value in zip(self.results, row, strict=True)
        )


class Direct:
    """A pooled connection used without SQLAlchemy's per-statement machinery, for `Prepared`
    statements only (`Database.direct`, `Direct.within`). Outside `writing()` and `snapshot()`
    each statement stands alone; a DBAPI error comes out as SQLAlchemy's own (`DBAPIError`)."""

    def __init__(self, fairy: Any, dialect: Dialect, *, read_only: bool = False) -> None:
        self._fairy = fairy
        self._dbapi = fairy.dbapi_connection
        self.dialect = dialect
        self._read_only = read_only

    @classmethod
    def within(cls, session: Session) -> Direct:
        """The session's own connection, for `Prepared` statements inside its transaction
        (committed or rolled back with it; not for `writing()` or `snapshot()`). A read-only
        session's refuses to write, as the session itself does (`read_only`)."""
        connection = session.connection()
        read_only = bool(connection.get_execution_options().get("tsunagu_read_only"))
        return cls(connection.connection, connection.dialect, read_only=read_only)

    @contextmanager
    def snapshot(self) -> Iterator[Direct]:
        """Reads that must agree with each other: on SQLite one read transaction (a deferred
        BEGIN takes no lock); on PostgreSQL, in autocommit as every read-only view there,
        each statement sees what is committed when it runs."""
        if not isinstance(self._dbapi, QueuedWriters):
            yield self
            return
        self._dbapi.execute("BEGIN").close()
        try:
            yield self
        finally:
            self._dbapi.rollback()  # nothing was written: ends the read transaction

    def rows(self, prepared: Prepared, values: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        plan, fetched, _ = self._run(prepared, values)
        return [plan.convert(row) for row in fetched]

    def batch(self, *calls: tuple[Prepared, Mapping[str, Any]]) -> list[list[tuple[Any, ...]]]:
        """The rows of several statements none of which needs another's result: on PostgreSQL
        sent together and answered in one round trip (pipeline mode), on SQLite run in turn."""
        if isinstance(self._dbapi, sqlite3.Connection) or len(calls) < 2:
            return [self.rows(prepared, values) for prepared, values in calls]
        plans = [prepared.plan(self.dialect) for prepared, _ in calls]
        for plan in plans:
            if self._read_only and not plan.reads:
                raise ReadOnlyViolation(plan.sql.split(None, 1)[0])
        parameters = [
            plan.parameters(values) for plan, (_, values) in zip(plans, calls, strict=True)
        ]
        cursors: list[Any] = []
        try:
            with self._dbapi.pipeline():
                for plan, bound in zip(plans, parameters, strict=True):
                    cursors.append(self._dbapi.cursor())
                    cursors[-1].execute(plan.sql, bound)
            return [
                [plan.convert(row) for row in cursor.fetchall()] if plan.returns_rows else []
                for plan, cursor in zip(plans, cursors, strict=True)
            ]
        except self.dialect.loaded_dbapi.Error as exc:
            raise self._failed(exc, plans[0].sql, parameters[0], None) from exc
        finally:
            for cursor in cursors:
                cursor.close()

    def count(self, prepared: Prepared, values: Mapping[str, Any]) -> int:
        """Run a write; the number of rows it changed."""
        return self._run(prepared, values)[2]

    def _run(self, prepared: Prepared, values: Mapping[str, Any]) -> tuple[_Plan, list[Any], int]:
        plan = prepared.plan(self.dialect)
        if self._read_only and not plan.reads:
            raise ReadOnlyViolation(plan.sql.split(None, 1)[0])
        parameters = plan.parameters(values)
        cursor = self._dbapi.cursor()
        try:
            cursor.execute(plan.sql, parameters)
            fetched = cursor.fetchall() if plan.returns_rows else []
            changed = int(cursor.rowcount)
        except self.dialect.loaded_dbapi.Error as exc:
            raise self._failed(exc, plan.sql, parameters, cursor) from exc
        finally:
            cursor.close()
        return plan, fetched, changed

    def first(self, prepared: Prepared, values: Mapping[str, Any]) -> tuple[Any, ...] | None:
        found = self.rows(prepared, values)
        return found[0] if found else None

    @contextmanager
    def writing(self) -> Iterator[Direct]:
        """A short write, committed at the end or rolled back: on SQLite in the writers' queue
        with the write lock taken up front (see `_tune_sqlite`); on PostgreSQL each statement
        in autocommit (use it for statements that each stand on their own)."""
        if not isinstance(self._dbapi, QueuedWriters):
            yield self
            return
        self._dbapi.queue_for_write()
        try:
            self._dbapi.execute("BEGIN IMMEDIATE").close()
        except BaseException as exc:
            self._dbapi.leave_queue()
            if isinstance(exc, sqlite3.Error):
                raise self._failed(exc, "BEGIN IMMEDIATE", (), None) from exc
            raise
        try:
            yield self
            self._dbapi.commit()
        except BaseException:
            self._dbapi.rollback()
            raise

    @contextmanager
    def atomic(self) -> Iterator[Direct]:
        """Writes that are committed together at the end, or rolled back together on an error:
        on SQLite as `writing()`; on PostgreSQL one transaction on this (autocommit) connection.
        Not for a session's connection (`within`): that one commits with its session."""
        if isinstance(self._dbapi, QueuedWriters):
            with self.writing():
                yield self
            return
        errors = self.dialect.loaded_dbapi.Error
        transaction = self._dbapi.transaction()
        try:
            transaction.__enter__()
        except errors as exc:
            raise self._failed(exc, "BEGIN", (), None) from exc
        try:
            yield self
        except BaseException as exc:
            transaction.__exit__(type(exc), exc, exc.__traceback__)
            raise
        try:
            transaction.__exit__(None, None, None)
        except errors as exc:
            raise self._failed(exc, "COMMIT", (), None) from exc

    def _failed(self, exc: Exception, sql: str, parameters: Any, cursor: Any) -> DBAPIError:
        if self.dialect.is_disconnect(cast(Any, exc), self._dbapi, cursor):
            self._fairy.invalidate(exc)
        error = DBAPIError.instance(sql, parameters, exc, self.dialect.loaded_dbapi.Error)
        return cast(DBAPIError, error)


class Database:
    """The app's engine and session factory; one per app."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self.engine = make_engine(database_url)
        _refuse_writes(self.engine)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def session_scope(self) -> Iterator[Session]:
        """A unit of work outside a request (CLI, workers): commit on success, else roll back."""
        with _committing(self.sessions()) as session:
            yield session

    @contextmanager
    def direct(self) -> Iterator[Direct]:
        """A pooled connection for `Prepared` statements (see `Direct`), returned at the end.
        On PostgreSQL it runs in autocommit: no BEGIN and COMMIT round trips."""
        fairy = self.engine.raw_connection()
        postgres = not self.is_sqlite
        try:
            if postgres:
                cast(Any, fairy.dbapi_connection).autocommit = True
            yield Direct(fairy, self.engine.dialect)
        finally:
            # Back to the pool as SQLAlchemy expects it (sessions begin transactions on it);
            # a connection in an unknown state is discarded, not pooled.
            try:
                if postgres and fairy.dbapi_connection is not None:
                    fairy.dbapi_connection.autocommit = False
            except Exception as exc:
                fairy.invalidate(exc)
            fairy.close()

    @contextmanager
    def exclusive(self, name: str, timeout: float = 30.0) -> Iterator[None]:
        """Only one holder of `name` at a time, across every worker process (and thread).

        For short work that must not run twice at once but may wait on the network, so no
        transaction is held: PostgreSQL's advisory lock on a connection of its own, or on
        SQLite a lock of this process plus one lock file beside the database. Raises
        `TimeoutError` if the lock is not had within `timeout` seconds."""
        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        if not self.is_sqlite:
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                deadline = time.monotonic() + timeout
                locked = text("SELECT pg_try_advisory_lock(:k)")
                while not conn.execute(locked, {"k": key}).scalar():
                    if time.monotonic() > deadline:
                        raise TimeoutError(name)
                    time.sleep(0.05)
                try:
                    yield
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            return
        path = make_url(self.url).database
        # One lock file for every name: these sections are rare and short.
        lock_path = f"{path}-exclusive.lock" if path and path != ":memory:" else None
        with _exclusive_in_process(name, timeout):
            if lock_path is None:
                yield
                return
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                deadline = time.monotonic() + timeout
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() > deadline:
                            raise TimeoutError(name) from None
                        time.sleep(0.05)
                yield
            finally:
                os.close(fd)  # releases the lock

    @property
    def read_options(self) -> dict[str, Any]:
        """Execution options of a read-only unit of work: on SQLite a deferred transaction (no
        write lock), on PostgreSQL autocommit (no BEGIN and COMMIT round trips)."""
        if self.is_sqlite:
            return {"tsunagu_read_only": True}
        return {"tsunagu_read_only": True, "isolation_level": "AUTOCOMMIT"}

    def read_session(self) -> tuple[Session, Connection]:
        conn = self.engine.connect().execution_options(**self.read_options)
        return Session(bind=conn, expire_on_commit=False), conn

    @contextmanager
    def read_scope(self) -> Iterator[Session]:
        """A read-only unit of work (it refuses to write)."""
        session, conn = self.read_session()
        try:
            yield session
        finally:
            session.close()
            conn.close()

    def init_app(self, app: Flask) -> None:
        app.extensions["tsunagu.db"] = self

        @app.after_request
        def _commit(response: Response) -> Response:
            session: Session | None = g.pop("_db_session_pending", None)
            if session is not None and response.status_code < 400:
                session.commit()
            return response

        @app.teardown_appcontext
        def _close(_exc: BaseException | None) -> None:
            session: Session | None = g.pop("_db_session", None)
            if session is not None:
                session.close()
            conn: Connection | None = g.pop("_db_read_conn", None)
            if conn is not None:
                conn.close()


def get_db() -> Database:
    db: Database = current_app.extensions["tsunagu.db"]
    return db


def get_session() -> Session:
    """The current request's session, opened on first use (read-only in `read_only` views)."""
    session: Session | None = g.get("_db_session")
    if session is None:
        if g.get("_db_read_only"):
            session, g._db_read_conn = get_db().read_session()
        else:
            session = get_db().sessions()
        g._db_session = session
        g._db_session_pending = session
    return session


def read_only(view: F) -> F:
    """The view only reads: its request's session takes no write lock (SQLite) and sends no
    BEGIN or COMMIT (PostgreSQL). A write from it is refused (`ReadOnlyViolation`)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        g._db_read_only = True
        return view(*args, **kwargs)

    return cast(F, wrapper)


_READ_STATEMENTS = frozenset({"SELECT", "WITH", "BEGIN"})


class ReadOnlyViolation(RuntimeError):
    """A read-only unit of work tried to write."""


def _refuse_writes(engine: Engine) -> None:
    @event.listens_for(engine, "before_cursor_execute")
    def _check(
        conn: Any, _cursor: Any, statement: str, _params: Any, context: Any, _many: bool
    ) -> None:
        if (
            context is not None
            and context.execution_options.get("tsunagu_read_only")
            and statement.lstrip()[:7].split(None, 1)[0].upper() not in _READ_STATEMENTS
        ):
            raise ReadOnlyViolation(statement.split(None, 1)[0])
