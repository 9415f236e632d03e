"""IMAP login with an OAuth2 access token (RFC 7628): OAUTHBEARER when the server offers it,
else XOAUTH2 (Google's and Microsoft's older mechanism).

After a refused token the server sends an error challenge (JSON) and waits for the client to
end the exchange, with `\\x01` (OAUTHBEARER, RFC 7628 3.2.3) or an empty line (XOAUTH2), before
it answers NO; imapclient's own helpers send the token again instead, so the exchange is here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError


class NoOAuth2Mechanism(LoginError):  # type: ignore[misc]  # imapclient is untyped
    """The server offers neither OAUTHBEARER nor XOAUTH2."""


def mechanism(capabilities: Iterable[bytes]) -> str:
    """The mechanism to use with a server advertising these: OAUTHBEARER first."""
    offered = {bytes(c).upper() for c in capabilities}
    for name in ("OAUTHBEARER", "XOAUTH2"):
        if b"AUTH=" + name.encode() in offered:
            return name
    raise NoOAuth2Mechanism("the IMAP server offers neither OAUTHBEARER nor XOAUTH2")


def initial_response(name: str, username: str, access_token: str) -> bytes:
    if name == "OAUTHBEARER":
        # RFC 5801's GS2 header: the authorization identity with '=' and ',' escaped.
        identity = username.replace("=", "=3D").replace(",", "=2C")
        return f"n,a={identity},\x01auth=Bearer {access_token}\x01\x01".encode()
    return f"user={username}\x01auth=Bearer {access_token}\x01\x01".encode()


def authenticate(client: IMAPClient, username: str, access_token: str) -> None:
    """Log in with the token; LoginError with the server's words when it is refused."""
    name = mechanism(client.capabilities())
    answers: Iterator[bytes] = iter([initial_response(name, username, access_token)])
    end = b"\x01" if name == "OAUTHBEARER" else b""

    def respond(challenge: bytes) -> bytes:
        return next(answers, end)  # a second challenge is the server's error report

    try:
        client._command_and_check("authenticate", name, respond)
    except IMAPClientError as error:
        raise LoginError(f"{name}: {error}") from None
