"""A Dovecot that speaks TLS (port `imaps`) and STARTTLS (port `imap`) with certificates of the
test suite's own CA: a good one, and on other loopback addresses the three a client must
refuse. Dovecot picks the certificate by the local address a connection came to."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from uuid import uuid4

from consumers.mail.accounts import ImapAccount, Security
from coordinator.dev.dovecot import Dovecot, start_dovecot
from coordinator.dev.embedded import free_port
from tests.support.certificates import TestCa
from tests.support.random_refs import random_user

GOOD, WRONG_NAME, EXPIRED, UNTRUSTED = "127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"
ADDRESSES = (GOOD, WRONG_NAME, EXPIRED, UNTRUSTED)
LOCAL_CONF = """\
ssl = yes
ssl_cert = <{good.cert}
ssl_key = <{good.key}
service imap-login {{
  inet_listener imap {{
    address = {addresses}
  }}
  inet_listener imaps {{
    address = {addresses}
    port = {imaps_port}
  }}
}}
"""
LOCAL_CERT = """\
local {address} {{
  ssl_cert = <{issued.cert}
  ssl_key = <{issued.key}
}}
"""


@dataclass
class TlsDovecot:
    server: Dovecot
    imaps_port: int
    ca: TestCa

    def account(self, address: str, security: Security) -> ImapAccount:
        """A fresh login reached at `address` with `security` (tls: the imaps port)."""
        name, password = random_user("tls"), uuid4().hex
        self.server.add_user(name, password)
        port = self.imaps_port if security == "tls" else self.server.port
        return ImapAccount(address, port, security, name, password)


def start_tls_dovecot(root: Path) -> TlsDovecot:
    certs = root / "certs"
    certs.mkdir(parents=True)
    ca = TestCa.create(certs)
    good = ca.issue(certs, "good", [GOOD, "localhost"])
    others = {
        WRONG_NAME: ca.issue(certs, "wrong-name", ["imap.example.test"]),
        EXPIRED: ca.issue(certs, "expired", [EXPIRED], expired=True),
        UNTRUSTED: TestCa.create(certs, "Stranger CA").issue(certs, "untrusted", [UNTRUSTED]),
    }
    imaps_port = free_port()
    conf = LOCAL_CONF.format(good=good, addresses=" ".join(ADDRESSES), imaps_port=imaps_port)
    conf += "".join(LOCAL_CERT.format(address=a, issued=i) for a, i in others.items())
    (root / "local.conf").write_text(conf)
    return TlsDovecot(start_dovecot(root), imaps_port, ca)
