"""How the service talks TLS to IMAP servers: always verified, and plaintext only where listed.

Certificates are checked against the system's trust store, or against SYNC_MAIL_CA_BUNDLE
when it is set (a PEM file that replaces it: an operator with a private CA lists it there,
with the public roots too if the service also reaches public servers). Verification and the
host name check are never turned off. A failed check is said the way a person can act on it:
a wrong name, an expired certificate and an unknown authority each have their own reason.
`security: none` sends the password in the clear, so it is refused unless
SYNC_MAIL_ALLOWED_HOSTS lists the host (a loopback or internal server the operator chose).
"""

from __future__ import annotations

import ssl
from pathlib import Path

from consumers.mail.imap_errors import MailProblem, TlsFailed

# OpenSSL's X509_V_ERR_* codes, as ssl.SSLCertVerificationError.verify_code carries them.
NAME_MISMATCH = {62, 64}  # host name, IP address
EXPIRED, NOT_YET_VALID = 10, 9
UNTRUSTED = {2, 18, 19, 20, 21}  # no issuer found, self-signed, unable to verify the leaf


class PlaintextRefused(MailProblem):
    """`security: none` to a host the operator has not listed."""


def client_context(ca_bundle: str = "") -> ssl.SSLContext:
    """A verifying client context: the system's roots, or only those of `ca_bundle`.

    Raises ValueError with the reason when the bundle cannot be read (checked at start).
    """
    if not ca_bundle:
        context = ssl.create_default_context()
    else:
        if not Path(ca_bundle).is_file():
            raise ValueError(f"SYNC_MAIL_CA_BUNDLE {ca_bundle!r} is not a readable file")
        try:
            context = ssl.create_default_context(cafile=ca_bundle)
        except ssl.SSLError as error:
            raise ValueError(
                f"SYNC_MAIL_CA_BUNDLE {ca_bundle!r} holds no PEM certificate ({error})"
            ) from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def refuse_plaintext(host: str, port: int, security: str, allowed: frozenset[str]) -> None:
    """PlaintextRefused for `none` unless the operator listed the host."""
    if security == "none" and host.lower() not in allowed:
        raise PlaintextRefused(
            f"security 'none' would send the password to {host}:{port} unencrypted; use "
            "'tls' (usually port 993) or 'starttls' (usually port 143). Plaintext is allowed "
            "only to hosts the operator lists in SYNC_MAIL_ALLOWED_HOSTS"
        )


def tls_failure(error: ssl.SSLError, host: str, address: str) -> TlsFailed:
    """The reason a person can act on for a failed handshake with `host` at `address`."""
    said = getattr(error, "verify_message", None) or str(error)
    code = getattr(error, "verify_code", None)
    whose = f"the certificate of the IMAP server at {address}"
    if code in NAME_MISMATCH:
        return TlsFailed(
            f"{whose} is not valid for the name {host!r} ({said}); register the host by a name "
            "its certificate lists (the provider's documented server name, not an alias or "
            "an address)"
        )
    if code == EXPIRED:
        return TlsFailed(
            f"{whose} has expired ({said}); the server's operator must renew it, or the "
            "system clock here is wrong"
        )
    if code == NOT_YET_VALID:
        return TlsFailed(f"{whose} is not valid yet ({said}); check the clocks of both sides")
    if code in UNTRUSTED:
        return TlsFailed(
            f"{whose} is not signed by an authority this service trusts ({said}); if the "
            "server uses a private or self-signed certificate, this service's operator can "
            "trust its CA through SYNC_MAIL_CA_BUNDLE"
        )
    if isinstance(error, ssl.SSLCertVerificationError):
        return TlsFailed(f"{whose} was refused ({said})")
    return TlsFailed(
        f"TLS with the IMAP server at {address} failed ({said}); check the port and the "
        "security setting (tls, starttls or none)"
    )
