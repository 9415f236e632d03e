"""Status view: whether a full sync waits behind the running incremental one.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE sync_status ADD COLUMN full_sync_queued boolean NOT NULL DEFAULT false")


def downgrade() -> None:
    op.execute("ALTER TABLE sync_status DROP COLUMN full_sync_queued")
