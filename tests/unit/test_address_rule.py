"""The mail host rule over every address form: the same answer on every Python version."""

from __future__ import annotations

import pytest

from consumers.mail.address_policy import public

# Each IPv6 form that carries an IPv4 address, with a public and a non-public one inside.
REFUSED = {
    # IPv4 special-purpose blocks
    "127.0.0.1": "loopback",
    "10.0.0.1": "private",
    "100.64.0.1": "shared (carrier-grade NAT)",
    "169.254.169.254": "link-local (metadata)",
    "192.0.0.8": "IETF protocol assignments",
    "192.0.2.1": "documentation",
    "192.88.99.1": "6to4 relay anycast",
    "198.18.0.1": "benchmarking",
    "224.0.0.1": "multicast",
    "240.0.0.1": "reserved",
    "255.255.255.255": "broadcast",
    "0.0.0.0": "this network",
    # IPv6 outside global unicast, or in its special blocks
    "::": "unspecified",
    "::1": "loopback",
    "fe80::1": "link-local",
    "fe80::1%1": "link-local with a zone",
    "fc00::1": "unique local",
    "fd12:3456::1": "unique local",
    "fec0::1": "site-local (deprecated)",
    "ff02::1": "multicast",
    "100::1": "discard-only",
    "5f00::1": "SRv6 SIDs",
    "2001:db8::1": "documentation",
    "3fff::1": "documentation",
    "3ffe::1": "6bone (deprecated)",
    "2001:2::1": "benchmarking",
    # IPv4-mapped and SIIT-translated: judged by the IPv4 address
    "::ffff:127.0.0.1": "mapped loopback",
    "::ffff:10.0.0.1": "mapped private",
    "::ffff:0:7f00:1": "translated loopback",
    "::ffff:0:a9fe:a9fe": "translated link-local",
    # NAT64 well-known prefix: judged by the IPv4 address
    "64:ff9b::7f00:1": "NAT64 loopback",
    "64:ff9b::a9fe:a9fe": "NAT64 link-local",
    "64:ff9b::a00:1": "NAT64 private",
    "64:ff9b::6440:1": "NAT64 shared",
    # NAT64 local-use prefix: refused whatever it carries (not globally reachable)
    "64:ff9b:1::a00:1": "local-use NAT64 private",
    "64:ff9b:1::5db8:d822": "local-use NAT64 public",
    # IPv4-compatible (deprecated): refused whatever it carries
    "::7f00:1": "compatible loopback",
    "::127.0.0.1": "compatible loopback, dotted",
    "::5db8:d822": "compatible public",
    # 6to4: judged by the IPv4 address in bits 16-47
    "2002:7f00:1::": "6to4 loopback",
    "2002:a9fe:a9fe::": "6to4 link-local",
    "2002:a00:1::1": "6to4 private",
    "2002:c000:201::": "6to4 documentation",
    # Teredo: refused whatever it carries (IETF protocol assignments)
    "2001:0:4136:e378:8000:63bf:80ff:fffe": "Teredo, client 127.0.0.1",
    "2001:0:4136:e378:8000:63bf:a2b7:dd8e": "Teredo, client 93.72.34.113",
}
ALLOWED = {
    "93.184.216.34": "public IPv4",
    "8.8.8.8": "public IPv4",
    "2606:4700::1111": "public IPv6",
    "2001:4860:4860::8888": "public IPv6 outside 2001::/23",
    "::ffff:93.184.216.34": "mapped public",
    "64:ff9b::5db8:d822": "NAT64 public (93.184.216.34)",
    "2002:5db8:d822::1": "6to4 public (93.184.216.34)",
}


@pytest.mark.parametrize("address", sorted(REFUSED), ids=lambda a: f"{a} {REFUSED[a]}")
def test_a_non_public_form_is_refused(address: str) -> None:
    assert public(address) is False


@pytest.mark.parametrize("address", sorted(ALLOWED), ids=lambda a: f"{a} {ALLOWED[a]}")
def test_a_public_form_is_allowed(address: str) -> None:
    assert public(address) is True
