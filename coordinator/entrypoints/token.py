"""`syncctl token`: print a bearer token for trying the API."""

from __future__ import annotations

import sys
from pathlib import Path

from coordinator.entrypoints import Commands
from core.settings import Settings


def add_parser(commands: Commands) -> None:
    parser = commands.add_parser("token", help="print a bearer token for trying the API")
    parser.add_argument("user_id")
    parser.add_argument("--ttl", type=int, default=3600, help="seconds until it expires")
    parser.set_defaults(run=lambda settings, args: run(settings, args.user_id, args.ttl))


def run(settings: Settings, user_id: str, ttl: int) -> int:
    """Sign with SYNC_JWT_SECRET, else with the secret `syncctl dev` keeps."""
    from coordinator.api.auth.tokens import issue_token

    secret = settings.jwt_secret.get_secret_value()
    dev_file = Path(settings.data_dir) / "jwt_secret"
    if not secret and dev_file.exists():
        secret = dev_file.read_text().strip()
    if not secret:
        print("SYNC_JWT_SECRET is not set and no `syncctl dev` secret exists", file=sys.stderr)
        return 2
    print(issue_token(user_id, secret, ttl))
    return 0
