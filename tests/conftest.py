"""Test wiring: one database per test session (migrated once), a savepoint per test.

The suite runs on SQLite by default and on PostgreSQL when ``DATABASE_URL`` points at one;
a throwaway database is created on that server for the session and dropped afterwards.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.orm import Session

from distributor.accounts.models import Role, User
from distributor.accounts.services import create_user
from distributor.app import create_app
from distributor.db import Database, make_engine
from distributor.mail.transport import InMemoryTransport
from distributor.migrate import upgrade
from distributor.settings import Settings
from tests.support import live_db as live
from tests.support.forms import csrf_token
from tests.support.services import (
    flush_private_redis,
    need,
    redis_available,
    redis_url,
    start_private_redis,
    stop_private_redis,
)

# Shared fixtures that live beside their helpers: ``postfix_sink``.
pytest_plugins = ("tests.support.postfix",)

TEST_PASSWORD = "correct horse battery staple"


# -- network guard ---------------------------------------------------------------------------

_real_connect = socket.socket.connect
_LOOPBACK_NAMES = {"localhost", "ip6-localhost"}


def _is_loopback(address: Any) -> bool:
    if isinstance(address, tuple):
        host = str(address[0])
        return host.startswith("127.") or host in {"::1", *_LOOPBACK_NAMES}
    return True  # AF_UNIX paths


def _guarded_connect(self: socket.socket, address: Any) -> Any:
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_loopback(address):
        raise RuntimeError(f"test tried to reach the network beyond loopback: {address!r}")
    return _real_connect(self, address)


@pytest.fixture(autouse=True)
def _no_network_beyond_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)


# -- database per session --------------------------------------------------------------------


def _create_postgres_database(url: str) -> tuple[str, Callable[[], None]]:
    base = make_url(Settings(database_url=url).sqlalchemy_url)
    name = f"distributor_test_{uuid.uuid4().hex[:10]}"
    admin = make_engine(base.render_as_string(hide_password=False), pool=False)
    try:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        need(False, f"PostgreSQL at {base.host}:{base.port} is not reachable ({exc})")

    def drop() -> None:
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return base.set(database=name).render_as_string(hide_password=False), drop


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    configured = os.environ.get("DATABASE_URL", "")
    if configured.startswith(("postgres://", "postgresql")):
        url, drop = _create_postgres_database(configured)
        yield url
        drop()
    else:
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def settings(database_url: str, data_dir: str) -> Settings:
    return Settings(
        env="test",
        secret_key="test-secret-key-that-is-long-enough-0123456789",
        database_url=database_url,
        data_dir=data_dir,
        public_base_url="http://localhost",
        smtp_url="smtp://127.0.0.1:2",
        rate_limits_enabled=False,
    )


@pytest.fixture(scope="session")
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings.sqlalchemy_url)
    with engine.begin() as conn:
        upgrade(settings.sqlalchemy_url, conn)
    yield engine
    engine.dispose()


# -- a savepoint per test ----------------------------------------------------------------------


@pytest.fixture()
def connection(engine: Engine) -> Iterator[Connection]:
    conn = engine.connect()
    outer = conn.begin()
    yield conn
    outer.rollback()
    conn.close()


@pytest.fixture()
def db(connection: Connection) -> Database:
    return Database(connection, savepoints=True)


@pytest.fixture()
def session(db: Database) -> Iterator[Session]:
    s = db.session()
    yield s
    s.close()


@pytest.fixture()
def mail_transport() -> InMemoryTransport:
    return InMemoryTransport()


@pytest.fixture()
def app(settings: Settings, db: Database, mail_transport: InMemoryTransport) -> Flask:
    return create_app(settings, db=db, mail_transport=mail_transport)


@pytest.fixture()
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture()
def app_ctx(app: Flask) -> Iterator[Flask]:
    with app.app_context():
        yield app


# -- committed data for servers, workers and second connections ------------------------------


@pytest.fixture()
def live_db(engine: Engine) -> Iterator[Database]:
    """A database whose commits are real, so another thread, process or connection sees them;
    every row the test added is removed afterwards (``tests.support.live_db``)."""
    marks = live.mark(engine)
    yield Database(engine)
    live.remove_rows_added_since(engine, marks)


# -- factories -------------------------------------------------------------------------------


@pytest.fixture()
def make_user(session: Session) -> Callable[..., User]:
    counter = iter(range(1, 10_000))

    def make(role: Role = Role.ADMIN, *, email: str | None = None, name: str = "") -> User:
        n = next(counter)
        user = create_user(
            session,
            email=email or f"{role.value}{n}@example.org",
            name=name or f"{role.label} {n}",
            password=TEST_PASSWORD,
            role=role,
        )
        session.commit()
        return user

    return make


def login(client: FlaskClient, user: User, password: str = TEST_PASSWORD) -> None:
    """Log in through the real form, CSRF token included."""
    token = csrf_token(client, "/login")
    response = client.post(
        "/login", data={"email": user.email, "password": password, "csrf_token": token}
    )
    assert response.status_code == 302, response.get_data(as_text=True)


@pytest.fixture()
def logged_in(client: FlaskClient, make_user: Callable[..., User]) -> Callable[[Role], User]:
    def as_role(role: Role) -> User:
        user = make_user(role)
        login(client, user)
        return user

    return as_role


# -- markers follow folders ------------------------------------------------------------------

# A test's folder says what it needs: ``-m "not integration and not browser"`` can trust it.
FOLDER_MARKERS = {"integration": "integration", "browser": "browser"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    root = Path(__file__).parent
    misplaced: list[str] = []
    for item in items:
        folder = item.path.relative_to(root).parts[0] if item.path.is_relative_to(root) else ""
        wanted = FOLDER_MARKERS.get(folder)
        if wanted is not None:
            item.add_marker(wanted)
        for marker in FOLDER_MARKERS.values():
            if marker != wanted and item.get_closest_marker(marker) is not None:
                misplaced.append(f"{item.nodeid} is marked {marker} but not in tests/{marker}/")
    if misplaced:
        raise pytest.UsageError("\n".join(misplaced))


# -- a private Redis for broker tests ---------------------------------------------------------


def pytest_sessionstart() -> None:
    start_private_redis()


def pytest_sessionfinish() -> None:
    stop_private_redis()


@pytest.fixture()
def broker() -> str:
    """An empty Redis for a test that runs real workers (the session's private server)."""
    need(redis_available(), f"Redis is not reachable at {redis_url()}")
    return flush_private_redis()
