"""Which addresses an account's host may lead to: public ones, or hosts the operator listed.

A user names the host; without this rule the API (`verify=true`) and the worker would connect
wherever the name points, internal services included. The host is resolved once and the
connection goes to that address (the name stays for TLS), so a second lookup cannot swap it.

What is public is said by the tables below (after IANA's special-purpose address registries),
not by `ipaddress`'s `is_global`, whose answer changes between Python versions. An IPv6
address that carries an IPv4 address (mapped, translated, NAT64 well-known prefix, 6to4) is
judged by the IPv4 address it carries; the other forms are refused whatever they carry.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable
from typing import Any

from consumers.mail.imap_errors import MailProblem

IPv4, IPv6 = ipaddress.IPv4Network, ipaddress.IPv6Network
REFUSED_IPV4 = tuple(
    IPv4(net)
    for net in (
        "0.0.0.0/8",  # this network
        "10.0.0.0/8",  # private
        "100.64.0.0/10",  # shared address space (carrier-grade NAT)
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local (cloud metadata services)
        "172.16.0.0/12",  # private
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation
        "192.88.99.0/24",  # 6to4 relay anycast (deprecated)
        "192.168.0.0/16",  # private
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation
        "203.0.113.0/24",  # documentation
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, and the broadcast address
    )
)
GLOBAL_UNICAST = IPv6("2000::/3")  # every other IPv6 address is refused unless unwrapped below
REFUSED_IPV6 = tuple(
    IPv6(net)
    for net in (
        "2001::/23",  # IETF protocol assignments: Teredo 2001::/32, benchmarking, ORCHID
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation
        "3ffe::/16",  # 6bone (deprecated)
    )
)
MAPPED = IPv6("::ffff:0:0/96")  # the IPv4 address itself, as an IPv6 socket sees it
TRANSLATED = IPv6("::ffff:0:0:0/96")  # SIIT (RFC 7915)
NAT64 = IPv6("64:ff9b::/96")  # well-known prefix (RFC 6052): the last 32 bits are the IPv4
SIX_TO_FOUR = IPv6("2002::/16")  # 6to4 (RFC 3056): bits 16-47 are the IPv4
Lookup = Callable[..., list[tuple[Any, ...]]]
lookup: Lookup = socket.getaddrinfo  # the resolver; tests point a name at an address here


class HostRefused(MailProblem):
    """The host is not one this service may connect to."""


def allowed_hosts(listed: str) -> frozenset[str]:
    """SYNC_MAIL_ALLOWED_HOSTS as a set of lower-case names, empty when not set."""
    return frozenset(h.strip().lower() for h in listed.split(",") if h.strip())


def resolve(host: str, port: int, allowed: frozenset[str]) -> str:
    """The address to connect to; HostRefused when the host or its address is not allowed.

    Listed hosts may lead anywhere (the operator's choice, e.g. a loopback Dovecot); when a list
    is set, other hosts are refused. Unlisted hosts must resolve to a public address (`public`).
    """
    listed = host.lower() in allowed
    if allowed and not listed:
        raise HostRefused(f"host {host!r} is not one this service may connect to")
    try:
        found = lookup(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise HostRefused(f"host {host!r} cannot be resolved ({error})") from None
    address = str(found[0][4][0])
    if not listed and not public(address):
        # The address itself is not said: it would map internal names for whoever asks.
        raise HostRefused(
            f"host {host!r} does not resolve to a public address; this service connects to "
            "loopback, private, link-local, multicast, unspecified, reserved or deprecated "
            "addresses (nor IPv6 ones carrying such an IPv4 address) only when "
            "SYNC_MAIL_ALLOWED_HOSTS names the host"
        )
    return address


def public(address: str) -> bool:
    """Whether an unlisted host may lead to this address (the same on every Python)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv4Address):
        return not any(ip in net for net in REFUSED_IPV4)
    carried = carried_ipv4(ip)
    if carried is not None:
        return public(str(carried))
    return ip in GLOBAL_UNICAST and not any(ip in net for net in REFUSED_IPV6)


def carried_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, for the forms judged by it."""
    value = int(ip)
    if ip in MAPPED or ip in TRANSLATED or ip in NAT64:
        return ipaddress.IPv4Address(value & 0xFFFF_FFFF)
    if ip in SIX_TO_FOUR:
        return ipaddress.IPv4Address((value >> 80) & 0xFFFF_FFFF)
    return None
