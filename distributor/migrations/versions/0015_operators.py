"""operators: dispatch bookkeeping and audience work at a million journalists

Revision ID: 0015
Revises: 0014

``sends.dispatched_at`` lets the dispatch sweep tell a send whose batch tasks wait in the
broker (behind busy workers or a slow relay) from one whose tasks were lost, so it stops
enqueueing batch tasks every few seconds while long batches run.

On PostgreSQL, ``distributor_address_hash(text)`` is the suppression list's key
(sha256 of the trimmed, lower-cased address, hex) declared IMMUTABLE, which it is for a
UTF8 database (``convert_to`` is only STABLE because the target encoding could change), so
``journalists`` can be indexed on it: finding the suppressed among a release's audience
then probes the index once per suppression instead of hashing every matched address.

``ix_tracking_events_human`` (journalist, time) over human events only serves the staff
list's engagement filters.

``ix_subscriptions_beat_status`` gains ``journalist_id``, so "who follows these beats"
(the audience breakdown, the freeze) is an index-only scan.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from distributor.db import UTCDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


ADDRESS_HASH_FUNCTION = """
CREATE OR REPLACE FUNCTION distributor_address_hash(address text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE COST 1000
AS $$ SELECT encode(sha256(convert_to(lower(trim(address)), 'UTF8')), 'hex') $$
"""


def upgrade() -> None:
    with op.batch_alter_table("sends", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dispatched_at", UTCDateTime(), nullable=True))
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.drop_index("ix_subscriptions_beat_status")
        batch_op.create_index(
            "ix_subscriptions_beat_status", ["beat_id", "status", "journalist_id"], unique=False
        )
    with op.batch_alter_table("tracking_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_tracking_events_human",
            ["journalist_id", "occurred_at"],
            unique=False,
            postgresql_where=sa.text("is_machine IS FALSE"),
            sqlite_where=sa.text("is_machine IS FALSE"),
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(ADDRESS_HASH_FUNCTION)
        op.execute(
            "CREATE INDEX ix_journalists_address_hash "
            "ON journalists (distributor_address_hash(email_normalized))"
        )


def downgrade() -> None:
    with op.batch_alter_table("tracking_events", schema=None) as batch_op:
        batch_op.drop_index("ix_tracking_events_human")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_journalists_address_hash")
        op.execute("DROP FUNCTION IF EXISTS distributor_address_hash(text)")
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.drop_index("ix_subscriptions_beat_status")
        batch_op.create_index("ix_subscriptions_beat_status", ["beat_id", "status"], unique=False)
    with op.batch_alter_table("sends", schema=None) as batch_op:
        batch_op.drop_column("dispatched_at")
