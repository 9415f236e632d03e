"""The start of a sync: which folders, what each server counter says, the work each needs.

One `LIST … RETURN (STATUS …)` (RFC 5819) names every folder with its counters when the
server offers it and the account lists no folders of its own; else LIST (or the configured
folders) and a STATUS per folder. A stop is checked before each round trip.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from consumers.imap import server_commands as imap
from consumers.imap.folder_state import Known, Mode, ServerStatus, Work, decide
from consumers.mail.accounts import ImapAccount
from consumers.mail.folder_checkpoints import Checkpoint
from consumers.mail.imap_connection import MailProblem
from consumers.mail.message_batch import FolderRef
from consumers.mail.message_store import MessageStore

Plan = tuple[str, ServerStatus, Checkpoint | None, Work]


def plan_folders(
    client: IMAPClient,
    store: MessageStore,
    user: str,
    account: ImapAccount,
    mode: Mode,
    *,
    full: bool,
    walk_seconds: float,
    turned_off: frozenset[str],
    check_stop: Callable[[str], None],
) -> list[Plan]:
    """The work of every folder; folders the server no longer has are forgotten."""
    counters = None
    if account.folders is None and imap.offered(client, "LIST-STATUS", turned_off):
        counters = imap.list_with_status(client, mode)
    folders = list(counters) if counters is not None else _folders(client, account)
    known = store.checkpoints(user)
    for gone in set(known) - set(folders):
        store.drop_folder(user, gone)
    plans = []
    for folder in folders:
        check_stop(f"planning {folder!r}")
        server = counters[folder] if counters is not None else imap.status(client, folder, mode)
        plans.append((folder, server, known.get(folder), None))
    return [
        (folder, server, checkpoint, _work(store, user, folder, server, checkpoint, mode, full,
                                           walk_seconds))
        for folder, server, checkpoint, _ in plans
    ]  # fmt: skip


def _work(
    store: MessageStore,
    user: str,
    folder: str,
    server: ServerStatus,
    checkpoint: Checkpoint | None,
    mode: Mode,
    full: bool,
    walk_seconds: float,
) -> Work:
    if checkpoint is None:
        return decide(None, server, mode, full=full, walk_due=True)
    moved = (checkpoint.uidnext, checkpoint.messages) != (server.uidnext, server.messages)
    stored = None
    if not checkpoint.first_sync_done or (full and moved):
        stored = store.count(FolderRef(user, folder, checkpoint.uidvalidity))
    walked = checkpoint.flags_walked_at
    due = walked is None or (datetime.now(UTC) - walked).total_seconds() >= walk_seconds
    known = Known(
        checkpoint.uidvalidity,
        checkpoint.highest_uid,
        checkpoint.low_uid,
        checkpoint.uidnext,
        checkpoint.messages,
        checkpoint.highest_modseq,
        stored,
    )
    return decide(known, server, mode, full=full, walk_due=due)


def _folders(client: IMAPClient, account: ImapAccount) -> list[str]:
    """The configured folders, or every selectable folder the server lists."""
    if account.folders is not None:
        return list(account.folders)
    try:
        listed = client.list_folders()
    except IMAPClientError as error:
        raise MailProblem(f"the IMAP server would not list folders: {error}") from None
    return [
        name
        for flags, _, name in listed
        if not {b"\\NOSELECT", b"\\NONEXISTENT"} & {f.upper() for f in flags}
    ]
