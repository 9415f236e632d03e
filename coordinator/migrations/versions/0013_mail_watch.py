"""IDLE watchers: who watches which account (leases), and the status view's follow-up flag.

`mail_watchers` has a row per `syncctl watch` process, whose `expires_at` it renews while it
runs; `mail_watch_leases` names the one watcher of each watched account, valid while that
watcher's row has not expired (docs/decisions/watcher-leases.md).
`sync_status.follow_up_queued`: new mail was noticed while the task runs, and an incremental
sync starts when it ends.

Revision ID: 0013
Revises: 0012
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE mail_watchers (
            watcher_id text PRIMARY KEY,
            expires_at timestamptz NOT NULL
        );
        CREATE TABLE mail_watch_leases (
            user_id    text PRIMARY KEY REFERENCES mail_accounts (user_id) ON DELETE CASCADE,
            watcher_id text NOT NULL
        );
        CREATE INDEX mail_watch_leases_watcher ON mail_watch_leases (watcher_id);
        ALTER TABLE sync_status ADD COLUMN follow_up_queued boolean NOT NULL DEFAULT false;
        """
    )


def downgrade() -> None:
    op.execute(
        "ALTER TABLE sync_status DROP COLUMN follow_up_queued; "
        "DROP TABLE mail_watch_leases; DROP TABLE mail_watchers"
    )
