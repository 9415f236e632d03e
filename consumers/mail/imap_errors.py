"""What can stop a login or a sync, each with the reason a person can act on."""

from __future__ import annotations


class MailProblem(Exception):
    """The sync cannot go on; the message is the reason shown to the user."""


class LoginRefused(MailProblem):
    """The server answered and refused these credentials."""


class Unreachable(MailProblem):
    """No connection after the bounded retries."""


class TlsFailed(MailProblem):
    """The TLS handshake failed: wrong port, wrong security setting or a bad certificate."""
