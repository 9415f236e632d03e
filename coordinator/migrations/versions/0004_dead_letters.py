"""Dead letters: outbox records the broker refused for good, set aside so the relay goes on.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE dead_letters (
            id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            event_id uuid NOT NULL UNIQUE,
            user_id  text NOT NULL,
            payload  jsonb NOT NULL,
            reason   text NOT NULL,
            dead_at  timestamptz NOT NULL DEFAULT clock_timestamp()
        );
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE dead_letters")
