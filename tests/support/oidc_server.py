"""A real OpenID Connect provider for the tests: npm `oidc-provider` run by Node.

`scripts/install.sh` installs the pinned package into `.oidc/`; `tests/oidc/provider.mjs`
configures it (a client for the service, one for Dovecot's introspection, PKCE required, the
dev login page that takes any login name) and serves it on a free loopback port.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from coordinator.dev.embedded import free_port, wait_for_port
from coordinator.dev.processes import stop_processes

ROOT = Path(__file__).resolve().parents[2]
MODULES = ROOT / ".oidc" / "node_modules"
SCRIPT = ROOT / "tests" / "oidc" / "provider.mjs"
CLIENT_ID = "sync-coordinator"
INTROSPECTION_CLIENT_ID = "dovecot"


@dataclass
class OidcProvider:
    issuer: str
    process: subprocess.Popen[bytes]
    log: Path
    client_secret: str = field(repr=False)
    introspection_secret: str = field(repr=False)
    client_id: str = CLIENT_ID
    introspection_client_id: str = INTROSPECTION_CLIENT_ID

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def counts(self) -> dict[str, int]:
        """Token requests served, by grant type (`refresh_token`, ...) and by refusal
        (`refresh_token:invalid_grant`), as the provider counted them."""
        answer = httpx.get(f"{self.issuer}/_test/counts", timeout=5)
        answer.raise_for_status()
        counted: dict[str, int] = answer.json()
        return counted

    def revoke(self, token: str) -> None:
        """RFC 7009 revocation, as the service's client (the user's "remove access")."""
        answer = httpx.post(
            f"{self.issuer}/token/revocation",
            data={"token": token},
            auth=(self.client_id, self.client_secret),
            timeout=5,
        )
        answer.raise_for_status()

    def stop(self) -> None:
        stop_processes(self.process)


def start_oidc_provider(
    redirect_uris: list[str],
    *,
    access_token_seconds: int = 62,
    rotate_refresh_tokens: bool = True,
    same_as: OidcProvider | None = None,
) -> OidcProvider:
    """The provider on a free loopback port; its access tokens live `access_token_seconds`.
    `same_as`: a stopped provider's port and client secrets (a restart: new signing keys, no
    grants)."""
    node = shutil.which("node")
    if node is None or not (MODULES / "oidc-provider").is_dir():
        raise RuntimeError(
            "Node and .oidc/node_modules/oidc-provider are needed: run scripts/install.sh"
        )
    if same_as is not None:
        port = int(same_as.issuer.rsplit(":", 1)[1])
        secrets = same_as.client_secret, same_as.introspection_secret
    else:
        port, secrets = free_port(), (os.urandom(16).hex(), os.urandom(16).hex())
    config = {
        "port": port,
        "modules": str(MODULES),
        "client_id": CLIENT_ID,
        "client_secret": secrets[0],
        "redirect_uris": redirect_uris,
        "introspection_client_id": INTROSPECTION_CLIENT_ID,
        "introspection_client_secret": secrets[1],
        "access_token_seconds": access_token_seconds,
        "rotate_refresh_tokens": rotate_refresh_tokens,
    }
    log = Path(tempfile.mkstemp(prefix="sync-test-oidc-", suffix=".log")[1])
    with log.open("ab") as out:
        process = subprocess.Popen(
            [node, str(SCRIPT), json.dumps(config)], stdout=out, stderr=subprocess.STDOUT
        )
    provider = OidcProvider(f"http://127.0.0.1:{port}", process, log, secrets[0], secrets[1])
    try:
        wait_for_port(port)
    except TimeoutError:
        provider.stop()
        raise RuntimeError(f"oidc-provider did not start: {log.read_text()[-2000:]}") from None
    return provider
