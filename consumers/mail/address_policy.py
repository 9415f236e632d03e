"""Which addresses an account's host may lead to: public ones, or hosts the operator listed.

A user names the host; without this rule the API (`verify=true`) and the worker would connect
wherever the name points, internal services included. The host is resolved once and the
connection goes to that address (the name stays for TLS), so a second lookup cannot swap it.
"""

from __future__ import annotations

import ipaddress
import socket

from consumers.mail.imap_errors import MailProblem


class HostRefused(MailProblem):
    """The host is not one this service may connect to."""


def allowed_hosts(listed: str) -> frozenset[str]:
    """SYNC_MAIL_ALLOWED_HOSTS as a set of lower-case names, empty when not set."""
    return frozenset(h.strip().lower() for h in listed.split(",") if h.strip())


def resolve(host: str, port: int, allowed: frozenset[str]) -> str:
    """The address to connect to; HostRefused when the host or its address is not allowed.

    Listed hosts may lead anywhere (the operator's choice, e.g. a loopback Dovecot); when a list
    is set, other hosts are refused. Unlisted hosts must resolve to a public address: loopback,
    private, link-local, multicast, unspecified and reserved addresses are refused.
    """
    listed = host.lower() in allowed
    if allowed and not listed:
        raise HostRefused(f"host {host!r} is not one this service may connect to")
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise HostRefused(f"host {host!r} cannot be resolved ({error})") from None
    address = str(found[0][4][0])
    if not listed and not _public(address):
        # The address itself is not said: it would map internal names for whoever asks.
        raise HostRefused(
            f"host {host!r} does not resolve to a public address; this service connects to "
            "loopback, private, link-local, multicast or unspecified addresses only when "
            "SYNC_MAIL_ALLOWED_HOSTS names the host"
        )
    return address


def _public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast
