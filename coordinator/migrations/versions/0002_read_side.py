"""Read side: lease column for the reaper, status view, task history, consumer bookkeeping.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        -- The live task's lease, copied from the snapshot so the reaper finds stale
        -- tasks through an index instead of scanning every stream.
        ALTER TABLE streams ADD COLUMN live_until timestamptz;
        CREATE INDEX streams_live_until ON streams (live_until) WHERE live_until IS NOT NULL;

        CREATE TABLE sync_status (
            user_id             text PRIMARY KEY,
            task_id             text,
            is_syncing          boolean NOT NULL DEFAULT false,
            status              text NOT NULL DEFAULT 'none',
            sync_type           text,
            started_at          timestamptz,
            updated_at          timestamptz,
            lease_expires_at    timestamptz,
            progress_percentage double precision NOT NULL DEFAULT 0,
            current_stats       jsonb NOT NULL DEFAULT '{}'::jsonb,
            error_message       text,
            last_version        bigint NOT NULL DEFAULT 0
        );

        CREATE TABLE sync_tasks (
            task_id             text PRIMARY KEY,
            user_id             text NOT NULL,
            sync_type           text NOT NULL,
            status              text NOT NULL,
            started_at          timestamptz NOT NULL,
            finished_at         timestamptz,
            lease_expires_at    timestamptz,
            reuse_count         integer NOT NULL DEFAULT 0,
            progress_percentage double precision NOT NULL DEFAULT 0,
            stats               jsonb NOT NULL DEFAULT '{}'::jsonb,
            error_message       text,
            replaces_task_id    text,
            last_version        bigint NOT NULL
        );
        CREATE INDEX sync_tasks_user_recent ON sync_tasks (user_id, started_at DESC, task_id);

        -- Lag per partition as last seen by the projector, for /metrics.
        CREATE TABLE projection_lag (
            consumer_group text NOT NULL,
            topic          text NOT NULL,
            partition      integer NOT NULL,
            lag            bigint NOT NULL,
            updated_at     timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (consumer_group, topic, partition)
        );

        -- Events a webhook receiver has acknowledged: never sent to it again.
        CREATE TABLE webhook_deliveries (
            receiver     text NOT NULL,
            event_id     uuid NOT NULL,
            delivered_at timestamptz NOT NULL DEFAULT now(),
            attempts     integer NOT NULL,
            PRIMARY KEY (receiver, event_id)
        );
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE webhook_deliveries;
        DROP TABLE projection_lag;
        DROP TABLE sync_tasks;
        DROP TABLE sync_status;
        DROP INDEX streams_live_until;
        ALTER TABLE streams DROP COLUMN live_until;
        """
    )
