"""Mail: the IMAP account each user syncs, per-folder checkpoints and the synced messages.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE mail_accounts (
            user_id    text PRIMARY KEY,
            host       text NOT NULL,
            port       integer NOT NULL,
            security   text NOT NULL,
            username   text NOT NULL,
            password   bytea NOT NULL,  -- a Fernet token, never the password itself
            folders    text[],          -- NULL: every selectable folder
            updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
        );
        CREATE TABLE mail_folders (
            user_id        text NOT NULL,
            folder         text NOT NULL,
            uidvalidity    bigint NOT NULL,
            highest_uid    bigint NOT NULL,  -- every UID up to it is stored (the checkpoint)
            last_synced_at timestamptz NOT NULL DEFAULT clock_timestamp(),
            PRIMARY KEY (user_id, folder)
        );
        CREATE TABLE mail_messages (
            user_id       text NOT NULL,
            folder        text NOT NULL,
            uidvalidity   bigint NOT NULL,
            uid           bigint NOT NULL,
            message_id    text,
            subject       text,
            sender        text,
            recipients    text,
            sent_at       timestamptz,
            received_at   timestamptz NOT NULL,
            flags         text[] NOT NULL,
            size          integer NOT NULL,
            raw           bytea,
            raw_truncated boolean NOT NULL,
            PRIMARY KEY (user_id, folder, uidvalidity, uid)
        );
        CREATE INDEX mail_messages_newest
            ON mail_messages (user_id, received_at DESC, folder DESC, uid DESC);
        CREATE INDEX mail_messages_newest_in_folder
            ON mail_messages (user_id, folder, received_at DESC, uid DESC);
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE mail_messages; DROP TABLE mail_folders; DROP TABLE mail_accounts")
