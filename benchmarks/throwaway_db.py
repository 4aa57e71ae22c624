"""A throwaway PostgreSQL database for a benchmark run: created on the server, dropped after."""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.engine import make_url

from distributor.db import make_engine
from distributor.settings import Settings


def _admin_url(server_url: str) -> str:
    base = make_url(Settings(database_url=server_url).sqlalchemy_url)
    return base.render_as_string(hide_password=False)


def create_database(
    server_url: str, prefix: str, *, exact: bool = False, template: str | None = None
) -> tuple[str, str]:
    """Create ``<prefix>_<random>`` (or ``prefix`` itself when ``exact``) on the server of
    ``server_url``, empty or as a copy of ``template``; return (its URL, its name)."""
    name = prefix if exact else f"{prefix}_{uuid.uuid4().hex[:8]}"
    # A file-level copy (PostgreSQL 15+) beats replaying a large template through the WAL.
    copy = f' TEMPLATE "{template}" STRATEGY FILE_COPY' if template else ""
    admin = make_engine(_admin_url(server_url), pool=False)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"{copy}'))
    admin.dispose()
    url = make_url(_admin_url(server_url)).set(database=name).render_as_string(hide_password=False)
    return url.replace("postgresql+psycopg://", "postgresql://"), name


def database_exists(server_url: str, name: str) -> bool:
    admin = make_engine(_admin_url(server_url), pool=False)
    with admin.connect() as conn:
        found = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
        exists = found.first() is not None
    admin.dispose()
    return exists


def drop_database(server_url: str, name: str) -> None:
    admin = make_engine(_admin_url(server_url), pool=False)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
