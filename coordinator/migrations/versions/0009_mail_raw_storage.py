"""Raw messages stored as they come, in their row when they fit.

Compressing them cost the database more CPU per batch than everything else a sync does
(mail bodies are often compressed already), and a message of a few KB moved to TOAST chunks
costs a second table and index write.

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE mail_messages ALTER COLUMN raw SET STORAGE EXTERNAL; "
        "ALTER TABLE mail_messages SET (toast_tuple_target = 8160)"
    )


def downgrade() -> None:
    op.execute(
        "ALTER TABLE mail_messages ALTER COLUMN raw SET STORAGE EXTENDED; "
        "ALTER TABLE mail_messages RESET (toast_tuple_target)"
    )
