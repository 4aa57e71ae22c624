"""Database wiring: declarative base, engine, and the unit of work.

Service functions receive a ``Session`` and may flush, never commit. The web request (see
``distributor.app``) or the Celery task (``task_session``) owns the transaction.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from flask import current_app, g
from sqlalchemy import DateTime, MetaData, create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite forgets the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, _dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(dt.UTC)

    def process_result_value(self, value: dt.datetime | None, _dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dt.datetime: UTCDateTime()}


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin, so that
    # SAVEPOINTs (tests, nested units of work) behave as on PostgreSQL.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def make_engine(url: str, *, pool: bool = True) -> Engine:
    """Create an engine with the per-backend settings we rely on."""
    kwargs: dict[str, Any] = {"future": True}
    if url.startswith("sqlite"):
        kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        # Each process opens its own file handle; a pool of one file adds nothing.
        kwargs["poolclass"] = NullPool
    else:
        kwargs["pool_pre_ping"] = True
        if not pool:
            kwargs["poolclass"] = NullPool
    engine = create_engine(url, **kwargs)
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN"))
    return engine


class Database:
    """An engine plus a session factory. Tests build one bound to a single connection."""

    def __init__(self, engine: Engine | Connection, *, savepoints: bool = False) -> None:
        self.bind = engine
        options: dict[str, Any] = {"expire_on_commit": False}
        if savepoints:
            # Test mode: the test owns an outer transaction; our commits become savepoints.
            options["join_transaction_mode"] = "create_savepoint"
        self.sessionmaker = sessionmaker(bind=engine, **options)

    @property
    def engine(self) -> Engine:
        return self.bind.engine if isinstance(self.bind, Connection) else self.bind

    def session(self) -> Session:
        session: Session = self.sessionmaker()
        return session


@event.listens_for(Session, "after_commit")
def _run_after_commit_hooks(session: Session) -> None:
    hooks: list[Callable[[], None]] = session.info.pop("after_commit", [])
    for hook in hooks:
        hook()


@event.listens_for(Session, "after_rollback")
def _drop_after_commit_hooks(session: Session) -> None:
    session.info.pop("after_commit", None)


def after_commit(session: Session, hook: Callable[[], None]) -> None:
    """Run ``hook`` once the session's current transaction has committed (never on rollback)."""
    session.info.setdefault("after_commit", []).append(hook)


def get_db() -> Database:
    db: Database = current_app.extensions["distributor.db"]
    return db


def request_session() -> Session:
    """The session of the current request; the request handler commits or rolls it back."""
    if "db_session" not in g:
        g.db_session = get_db().session()
    session: Session = g.db_session
    return session


@contextmanager
def task_session() -> Iterator[Session]:
    """A unit of work for a task or CLI command: commit on success, roll back on error."""
    session = get_db().session()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
