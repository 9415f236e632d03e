"""An OAuth2 account's access token for the worker, refreshed once however many ask.

The grant's row is locked (SELECT ... FOR UPDATE) for the whole check-refresh-save, so across
processes one worker refreshes and the others, once they get the row, find the new token; a
rotated refresh token is saved in that same transaction, so it is never spent twice (a provider
that sees a rotated-out refresh token again revokes the whole grant). `invalid_grant` marks the
grant `reauth_required`; nothing calls the provider for it again until the user reconnects.
Why a row lock held across an HTTP call: docs/decisions/oauth2-refresh-lock.md.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from sqlalchemy import Engine, text

from consumers.mail.database import database_errors
from consumers.mail.imap_errors import MailProblem
from consumers.mail.oauth2_client import OAuth2Client, ProviderRefused, ProviderUnreachable
from consumers.mail.oauth2_tokens import lock_grant, mark_reauth_required, save_refresh
from consumers.mail.password_box import PasswordBox

log = logging.getLogger("consumers.mail.access_tokens")
REFRESH_MARGIN_SECONDS = 60.0  # refresh when fewer remain: a sync's login must not race expiry
LOCK_TIMEOUT = text("SET LOCAL lock_timeout = '30s'")  # another worker's refresh, bounded


class ReauthRequired(MailProblem):
    """The provider no longer honours the grant: the user must connect the mailbox again."""


class RefreshFailed(MailProblem):
    """The provider could not be asked now (unreachable, or another error): try a later sync."""


class AccessTokens:
    def __init__(
        self,
        engine: Engine,
        box: PasswordBox,
        clients: Mapping[str, OAuth2Client],
        public_url: str = "",
    ) -> None:
        self._engine = engine
        self._box = box
        self._clients = clients
        self._public_url = public_url.rstrip("/")

    def current(self, user_id: str, refused: str | None = None) -> str:
        """An access token with over a minute to live; `refused`: the server turned this one
        down (revoked early?), so it is refreshed whatever its expiry says."""
        reauth: str | None = None
        with database_errors(), self._engine.begin() as conn:
            conn.execute(LOCK_TIMEOUT)
            grant = lock_grant(conn, self._box, user_id)
            if grant is None:
                raise MailProblem("no OAuth2 grant is stored for this account; connect it again")
            if grant.state == "reauth_required":
                raise ReauthRequired(self._expired(grant.provider, grant.state_reason))
            fresh = grant.remaining_seconds > REFRESH_MARGIN_SECONDS
            if grant.access_token is not None and grant.access_token != refused and fresh:
                return grant.access_token
            client = self._clients.get(grant.provider)
            if client is None:
                raise RefreshFailed(f"the OAuth2 provider {grant.provider!r} is not configured")
            try:
                tokens = client.refresh(grant.refresh_token)
            except ProviderRefused as error:
                if error.error != "invalid_grant":
                    raise RefreshFailed(
                        f"{client.provider.title} refused to refresh the access token: {error}"
                    ) from None
                reauth = f"{client.provider.title} said {error}"
                mark_reauth_required(conn, user_id, reauth)
            except ProviderUnreachable as error:
                raise RefreshFailed(f"{error}; the next sync tries again") from None
            else:
                save_refresh(conn, self._box, user_id, tokens, grant.refresh_token)
                log.info(
                    "access token refreshed for %s (refresh token %s)",
                    user_id,
                    "rotated" if tokens.refresh_token else "kept",
                )
                return tokens.access_token
        log.warning("OAuth2 grant of %s expired: %s", user_id, reauth)
        raise ReauthRequired(self._expired(grant.provider, reauth))

    def _expired(self, provider: str, reason: str | None) -> str:
        where = f"{self._public_url}/accounts/oauth2/{provider}/start"
        said = f" ({reason})" if reason else ""
        return f"the mailbox connection expired: reconnect it at {where}{said}"
