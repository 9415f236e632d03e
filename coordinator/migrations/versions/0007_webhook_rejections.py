"""Events a webhook receiver rejected for good, with its answer, until re-sent.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE webhook_rejections (
            receiver text NOT NULL,
            event_id uuid NOT NULL,
            event_type text NOT NULL,
            user_id text NOT NULL,
            envelope jsonb NOT NULL,
            status_code integer,
            response_excerpt text NOT NULL,
            attempts integer NOT NULL,
            rejected_at timestamptz NOT NULL DEFAULT clock_timestamp(),
            PRIMARY KEY (receiver, event_id)
        );
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE webhook_rejections")
