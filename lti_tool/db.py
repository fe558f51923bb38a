"""Engine, sessions, and the declarative Base with a constraint naming convention.

A web request gets one session, opened lazily; the request boundary commits it when the
response is a success and rolls it back otherwise, so a refused request writes nothing.
Services only `flush()`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from flask import Flask, Response, current_app, g
from sqlalchemy import DateTime, Enum, MetaData, String, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session, mapped_column, sessionmaker
from sqlalchemy.types import TypeDecorator

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


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dt.datetime: UTCDateTime()}


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()

    # A deferred transaction that reads and then writes fails at once (SQLITE_BUSY_SNAPSHOT)
    # when another process wrote in between; take the write lock up front instead, so writers
    # queue on busy_timeout. SQLite is the single-site backend; PostgreSQL serves production.
    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        read_only = conn.get_execution_options().get("tsunagu_read_only", False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def make_engine(database_url: str) -> Engine:
    if database_url.startswith("sqlite"):
        engine = create_engine(
            database_url,
            connect_args={"check_same_thread": False, "isolation_level": None},
        )
        _tune_sqlite(engine)
        return engine
    return create_engine(database_url, pool_pre_ping=True, pool_size=5, max_overflow=5)


class Database:
    """The app's engine and session factory; one per app."""

    def __init__(self, database_url: str) -> None:
        self.url = database_url
        self.engine = make_engine(database_url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def session_scope(self) -> Iterator[Session]:
        """A unit of work outside a request (CLI, workers): commit on success, else roll back."""
        session = self.sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @contextmanager
    def read_scope(self) -> Iterator[Session]:
        """A read-only unit of work: on SQLite it takes no write lock."""
        with self.engine.connect().execution_options(tsunagu_read_only=True) as conn:
            session = Session(bind=conn)
            try:
                yield session
            finally:
                session.close()

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


def get_db() -> Database:
    db: Database = current_app.extensions["tsunagu.db"]
    return db


def get_session() -> Session:
    """The current request's session, opened on first use."""
    session: Session | None = g.get("_db_session")
    if session is None:
        session = get_db().sessions()
        g._db_session = session
        g._db_session_pending = session
    return session
