"""OAuth2 mail accounts: the account's kind and provider, its sealed tokens, pending connects.

Revision ID: 0012
Revises: 0011
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE mail_accounts
            ADD COLUMN auth text NOT NULL DEFAULT 'password',  -- 'password' or 'oauth2'
            ADD COLUMN provider text,                           -- the OAuth2 provider's name
            ALTER COLUMN password DROP NOT NULL;
        CREATE TABLE mail_oauth2_tokens (
            user_id           text PRIMARY KEY
                              REFERENCES mail_accounts (user_id) ON DELETE CASCADE,
            provider          text NOT NULL,
            refresh_token     bytea NOT NULL,  -- Fernet tokens under SYNC_MAIL_KEY, never plain
            access_token      bytea,
            access_expires_at timestamptz,
            state             text NOT NULL DEFAULT 'connected',  -- or 'reauth_required'
            state_reason      text,
            refreshes         integer NOT NULL DEFAULT 0,
            updated_at        timestamptz NOT NULL DEFAULT clock_timestamp()
        );
        CREATE TABLE mail_oauth2_flows (
            state_hash    text PRIMARY KEY,  -- sha256 of `state` and the browser's binding cookie
            user_id       text NOT NULL,
            provider      text NOT NULL,
            code_verifier bytea NOT NULL,    -- sealed like the tokens
            nonce         text NOT NULL,
            expires_at    timestamptz NOT NULL
        );
        CREATE INDEX mail_oauth2_flows_expiry ON mail_oauth2_flows (expires_at);
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE mail_oauth2_flows;
        DROP TABLE mail_oauth2_tokens;
        DELETE FROM mail_accounts WHERE auth <> 'password';
        ALTER TABLE mail_accounts DROP COLUMN provider, DROP COLUMN auth,
            ALTER COLUMN password SET NOT NULL;
        """
    )
