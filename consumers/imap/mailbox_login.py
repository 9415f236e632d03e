"""Logging in for a sync: with the password, or with an OAuth2 access token that is refreshed
when due (under the grant's lock, `consumers/mail/access_tokens.py`) and once more when the
server refuses it (revoked before it expired)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from imapclient import IMAPClient

from consumers.mail.access_tokens import AccessTokens
from consumers.mail.accounts import ImapAccount
from consumers.mail.imap_connection import LoginRefused, MailProblem


class MailboxLogin:
    def __init__(
        self, connect: Callable[[ImapAccount], IMAPClient], tokens: AccessTokens | None
    ) -> None:
        self._connect = connect
        self._tokens = tokens

    def __call__(self, account: ImapAccount, user_id: str) -> IMAPClient:
        """A logged-in client; MailProblem (ReauthRequired for a grant the provider no longer
        honours) when there is none."""
        if account.auth != "oauth2":
            return self._connect(account)
        if self._tokens is None:
            raise MailProblem("this worker has no OAuth2 providers configured")
        token = self._tokens.current(user_id)
        try:
            return self._connect(replace(account, password=token))
        except LoginRefused:
            token = self._tokens.current(user_id, refused=token)
        return self._connect(replace(account, password=token))
