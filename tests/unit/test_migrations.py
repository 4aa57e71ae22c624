"""The migrations build exactly the schema the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from distributor.models import metadata


def test_migrations_match_models(connection: Connection) -> None:
    context = MigrationContext.configure(connection, opts={"compare_type": False})
    diff = compare_metadata(context, metadata)
    assert diff == [], f"models and migrations differ; write a migration for: {diff}"
