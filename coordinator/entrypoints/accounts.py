"""`syncctl accounts`: operators register, show and remove a user's IMAP account."""

from __future__ import annotations

import argparse
import getpass
import json
import sys

from consumers.mail.accounts import AccountStore, ImapAccount
from consumers.mail.address_policy import allowed_hosts
from consumers.mail.imap_connection import MailProblem, verify
from consumers.mail.password_box import PasswordBox
from consumers.mail.tls_policy import client_context, refuse_plaintext
from coordinator.entrypoints import Commands
from core.database import make_engine
from core.settings import Settings


def add_parser(syncctl: Commands) -> None:
    """`syncctl accounts` and its commands."""
    parser = syncctl.add_parser(
        "accounts",
        help="set, show or delete a user's IMAP account (syncctl accounts --help)",
        description=__doc__,
    )
    parser.set_defaults(run=run)
    commands = parser.add_subparsers(dest="action", required=True)
    put = commands.add_parser("set", help="register or replace USER's account")
    put.add_argument("user_id")
    put.add_argument("--host", required=True)
    put.add_argument("--port", type=int, required=True)
    put.add_argument("--security", choices=["tls", "starttls", "none"], required=True)
    put.add_argument("--username", required=True)
    put.add_argument("--folder", action="append", help="a folder to sync (repeat); default all")
    put.add_argument("--verify", action="store_true", help="log in first; exit 1 if it fails")
    put.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    show = commands.add_parser("show", help="USER's account, without the password")
    show.add_argument("user_id")
    delete = commands.add_parser("delete", help="remove USER's account and its synced mail")
    delete.add_argument("user_id")


def run(settings: Settings, args: argparse.Namespace) -> int:
    """Exit 0 on success, 1 when the login, the account or the user is not there."""
    engine = make_engine(settings.require_database_url(), pool_size=1)
    store = AccountStore(engine, PasswordBox(settings.require_mail_key()))
    try:
        if args.action == "set":
            return _set(store, args, allowed_hosts(settings.mail_allowed_hosts), settings)
        if args.action == "show":
            view = store.describe(args.user_id)
            if view is None:
                print(f"no IMAP account for {args.user_id}", file=sys.stderr)
                return 1
            shown = {**view.__dict__, "updated_at": view.updated_at.isoformat()}
            print(json.dumps(shown, default=list))
            return 0
        if not store.delete(args.user_id):
            print(f"no IMAP account for {args.user_id}", file=sys.stderr)
            return 1
        print(f"removed the IMAP account of {args.user_id} and its synced mail")
        return 0
    finally:
        engine.dispose()


def _set(
    store: AccountStore, args: argparse.Namespace, allowed: frozenset[str], settings: Settings
) -> int:
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"IMAP password of {args.username}: ")
    if not password:
        print("the password is empty", file=sys.stderr)
        return 1
    account = ImapAccount(
        args.host,
        args.port,
        args.security,
        args.username,
        password,
        tuple(args.folder) if args.folder else None,
    )
    try:
        if args.verify:  # the address rule first, then the plaintext rule, then the login
            verify(account, allowed, tls=client_context(settings.mail_ca_bundle))
        else:
            refuse_plaintext(account.host, account.port, account.security, allowed)
    except (MailProblem, ValueError) as error:  # ValueError: SYNC_MAIL_CA_BUNDLE unreadable
        print(f"not saved: {error}", file=sys.stderr)
        return 1
    store.put(args.user_id, account)
    print(f"IMAP account of {args.user_id} saved: {args.username} at {account.address()}")
    return 0
