"""Mail: the server's counters and a low-water mark per folder; a change log per user.

`mail_folders` keeps what the server said at the last pass (UIDNEXT, MESSAGES,
HIGHESTMODSEQ), so an unchanged folder costs one STATUS; `low_uid` is where the newest-first
first sync has come down to; `flags_walked_at` dates the last full flag walk (servers without
CONDSTORE). `mail_changes` is the feed `GET /mail/changes` pages, `mail_change_heads` its
per-user position counter (held while a change is written, so positions commit in order).

Revision ID: 0010
Revises: 0013
"""

from alembic import op

revision = "0010"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Folders synced before this revision are complete (low_uid 1) and have no counters yet
    # (messages -1), so their next sync takes the changes path once and stores them.
    op.execute(
        """
        ALTER TABLE mail_folders
            ADD COLUMN low_uid bigint NOT NULL DEFAULT 1,
            ADD COLUMN uidnext bigint NOT NULL DEFAULT 0,
            ADD COLUMN messages bigint NOT NULL DEFAULT -1,
            ADD COLUMN highest_modseq bigint NOT NULL DEFAULT 0,
            ADD COLUMN flags_walked_at timestamptz;
        CREATE TABLE mail_change_heads (
            user_id        text PRIMARY KEY,
            position       bigint NOT NULL,
            pruned_through bigint NOT NULL DEFAULT 0
        );
        CREATE TABLE mail_changes (
            user_id              text NOT NULL,
            position             bigint NOT NULL,
            kind                 text NOT NULL,
            folder               text NOT NULL,
            uidvalidity          bigint,
            uid                  bigint,
            previous_uidvalidity bigint,
            rekeyed              boolean,
            message_id           text,
            subject              text,
            sender               text,
            recipients           text,
            sent_at              timestamptz,
            received_at          timestamptz,
            flags                text[],
            size                 integer,
            recorded_at          timestamptz NOT NULL DEFAULT clock_timestamp(),
            PRIMARY KEY (user_id, position)
        );
        """
    )


def downgrade() -> None:
    op.execute(
        "DROP TABLE mail_changes; DROP TABLE mail_change_heads; ALTER TABLE mail_folders "
        "DROP COLUMN low_uid, DROP COLUMN uidnext, DROP COLUMN messages, "
        "DROP COLUMN highest_modseq, DROP COLUMN flags_walked_at"
    )
