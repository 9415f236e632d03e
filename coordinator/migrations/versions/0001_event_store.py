"""Event store: streams with snapshots, immutable events, outbox, idempotency keys.

Revision ID: 0001
Revises:
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE streams (
            stream_id  text PRIMARY KEY,
            user_id    text NOT NULL UNIQUE,
            version    bigint NOT NULL DEFAULT 0 CHECK (version >= 0),
            state      jsonb NOT NULL DEFAULT '{}'::jsonb,
            updated_at timestamptz NOT NULL DEFAULT now()
        );

        CREATE TABLE events (
            position       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            event_id       uuid NOT NULL UNIQUE,
            stream_id      text NOT NULL REFERENCES streams (stream_id),
            version        bigint NOT NULL CHECK (version >= 1),
            event_type     text NOT NULL,
            schema_version integer NOT NULL,
            occurred_at    timestamptz NOT NULL,
            recorded_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
            data           jsonb NOT NULL,
            metadata       jsonb NOT NULL,
            CONSTRAINT events_stream_version_key UNIQUE (stream_id, version)
        );

        -- Events are facts: the database itself refuses to change or remove them.
        CREATE FUNCTION events_are_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'events are immutable: % refused', TG_OP
                USING ERRCODE = 'restrict_violation';
        END $$;
        CREATE TRIGGER events_no_update_delete BEFORE UPDATE OR DELETE ON events
            FOR EACH ROW EXECUTE FUNCTION events_are_immutable();
        CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
            FOR EACH STATEMENT EXECUTE FUNCTION events_are_immutable();

        CREATE TABLE outbox (
            id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            event_id   uuid NOT NULL UNIQUE,
            user_id    text NOT NULL,
            payload    jsonb NOT NULL,
            created_at timestamptz NOT NULL DEFAULT clock_timestamp()
        );

        CREATE TABLE idempotency_keys (
            user_id     text NOT NULL,
            key         text NOT NULL,
            fingerprint text NOT NULL,
            response    jsonb NOT NULL,
            created_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (user_id, key)
        );
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE idempotency_keys;
        DROP TABLE outbox;
        DROP TABLE events;
        DROP FUNCTION events_are_immutable();
        DROP TABLE streams;
        """
    )
