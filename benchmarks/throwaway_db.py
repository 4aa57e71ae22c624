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


def create_database(server_url: str, prefix: str) -> tuple[str, str]:
    """Create ``<prefix>_<random>`` on the server of ``server_url``; return (its URL, its name)."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = make_engine(_admin_url(server_url), pool=False)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = make_url(_admin_url(server_url)).set(database=name).render_as_string(hide_password=False)
    return url.replace("postgresql+psycopg://", "postgresql://"), name


def drop_database(server_url: str, name: str) -> None:
    admin = make_engine(_admin_url(server_url), pool=False)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()
