"""Task history: why each task started (SyncStarted's reason, upcast for version 1 events).

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Rows projected before this column are filled the way version 1 events are upcast.
    op.execute(
        """
        ALTER TABLE sync_tasks ADD COLUMN start_reason text;
        UPDATE sync_tasks SET start_reason = CASE WHEN replaces_task_id IS NULL
            THEN 'first_click' ELSE 'replaced_expired' END;
        """
    )


def downgrade() -> None:
    op.execute("ALTER TABLE sync_tasks DROP COLUMN start_reason")
