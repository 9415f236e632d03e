"""Tamper evidence: a hash chain over each stream's events, the stream row keeps its head.

Revision ID: 0003
Revises: 0002
"""

import json

import sqlalchemy as sa
from alembic import op

from core.domain.hash_chain import GENESIS, chain_hash

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE events ADD COLUMN prev_hash text, ADD COLUMN hash text")
    op.execute(f"ALTER TABLE streams ADD COLUMN last_hash text NOT NULL DEFAULT '{GENESIS}'")
    _backfill()
    op.execute("ALTER TABLE events ALTER COLUMN prev_hash SET NOT NULL")
    op.execute("ALTER TABLE events ALTER COLUMN hash SET NOT NULL")


def _backfill() -> None:
    """Chain events recorded before this migration (the immutability trigger paused)."""
    bind = op.get_bind()
    bind.execute(sa.text("ALTER TABLE events DISABLE TRIGGER events_no_update_delete"))
    rows = bind.execute(
        sa.text(
            "SELECT position, event_id, stream_id, version, event_type, schema_version, "
            "occurred_at, data, metadata FROM events ORDER BY stream_id, version"
        )
    )
    heads: dict[str, str] = {}
    for row in rows.all():
        previous = heads.get(row.stream_id, GENESIS)
        digest = chain_hash(
            previous,
            event_id=str(row.event_id),
            stream_id=row.stream_id,
            version=row.version,
            event_type=row.event_type,
            schema_version=row.schema_version,
            occurred_at=row.occurred_at,
            data=row.data if isinstance(row.data, dict) else json.loads(row.data),
            metadata=row.metadata if isinstance(row.metadata, dict) else json.loads(row.metadata),
        )
        bind.execute(
            sa.text("UPDATE events SET prev_hash = :p, hash = :h WHERE position = :pos"),
            {"p": previous, "h": digest, "pos": row.position},
        )
        heads[row.stream_id] = digest
    for stream_id, head in heads.items():
        bind.execute(
            sa.text("UPDATE streams SET last_hash = :h WHERE stream_id = :s"),
            {"h": head, "s": stream_id},
        )
    bind.execute(sa.text("ALTER TABLE events ENABLE TRIGGER events_no_update_delete"))


def downgrade() -> None:
    op.execute("ALTER TABLE streams DROP COLUMN last_hash")
    op.execute("ALTER TABLE events DROP COLUMN hash, DROP COLUMN prev_hash")
