"""Mail: the messages a sync could not store, each with the reason (`mail_skipped`).

Revision ID: 0011
Revises: 0009
"""

from alembic import op

revision = "0011"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE mail_skipped (
            user_id     text NOT NULL,
            folder      text NOT NULL,
            uidvalidity bigint NOT NULL,
            uid         bigint NOT NULL,
            reason      text NOT NULL,
            skipped_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
            PRIMARY KEY (user_id, folder, uidvalidity, uid),
            FOREIGN KEY (user_id, folder) REFERENCES mail_folders ON DELETE CASCADE
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE mail_skipped")
