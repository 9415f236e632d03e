"""One folder: plan what to fetch, remove and refresh, then do it batch by batch.

Incremental: the UIDs above the checkpoint. Full: reconcile the whole folder: fetch what
is missing, refresh the flags of what is stored, remove what the server expunged. A changed
UIDVALIDITY (or a folder never synced) starts the folder over.
"""

from __future__ import annotations

import imaplib
import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from consumers.imap.fast_fetch import fetch_raw
from consumers.imap.fetched import HEADERS_FROM_RAW_BYTES, fetch_items, flags_of, readable
from mail.imap_connection import MailProblem
from mail.message_batch import FolderRef
from mail.message_store import MessageStore, Owner

log = logging.getLogger("consumers.imap")
FLAG_CHUNK = 1000  # UIDs whose flags are compared per round trip


@dataclass(frozen=True)
class FolderPlan:
    ref: FolderRef
    to_fetch: list[int]  # ascending, so the checkpoint can follow each committed batch
    stored_uids: list[int]  # server UIDs already stored: flags to refresh (full only)
    expunged: list[int]  # stored UIDs the server no longer has (full only)
    started_over: bool


@dataclass
class FolderOutcome:
    fetched: int = 0
    flags_updated: int = 0
    removed: int = 0
    skipped: int = 0  # listed in mail_skipped with the reason, not stored


def select(client: IMAPClient, folder: str, address: str) -> dict[bytes, Any]:
    """Open the folder read-only; a folder that is gone is a reason to stop, said plainly."""
    try:
        info: dict[bytes, Any] = client.select_folder(folder, readonly=True)
    except IMAPClientError as error:
        raise MailProblem(
            f"folder {folder!r} vanished from the IMAP server at {address} ({error})"
        ) from None
    return info


def plan(
    client: IMAPClient,
    store: MessageStore,
    user_id: str,
    folder: str,
    full: bool,
    owner: Owner,
) -> FolderPlan:
    info = select(client, folder, f"{owner.host}:{owner.port}")
    ref = FolderRef(user_id, folder, int(info[b"UIDVALIDITY"]))
    checkpoint = store.checkpoint(user_id, folder)
    started_over = checkpoint is None or checkpoint.uidvalidity != ref.uidvalidity
    if started_over:
        store.start_over(ref, owner)
    highest = 0 if started_over or checkpoint is None else checkpoint.highest_uid
    if int(info.get(b"EXISTS", 0)) == 0:
        server: list[int] = []
    elif full or started_over:
        server = sorted(client.search("ALL"))
    elif int(info.get(b"UIDNEXT", highest + 2)) <= highest + 1:
        server = []  # nothing arrived since the checkpoint
    else:
        # `n:*` also matches the last message when every UID is below n.
        server = sorted(u for u in client.search(["UID", f"{highest + 1}:*"]) if u > highest)
    if not (full or started_over):
        return FolderPlan(ref, server, [], [], started_over)
    local = store.local_uids(ref)
    local_set, server_set = set(local), set(server)
    return FolderPlan(
        ref,
        to_fetch=[u for u in server if u not in local_set],
        stored_uids=[u for u in server if u in local_set],
        expunged=[u for u in local if u not in server_set],
        started_over=started_over,
    )


def run(
    client: IMAPClient,
    store: MessageStore,
    folder_plan: FolderPlan,
    *,
    batch_size: int,
    raw_max_bytes: int,
    address: str,
    after_batch: Callable[[int], None],
    check_stop: Callable[[str], None],
) -> FolderOutcome:
    """Carry out the plan; `after_batch(n)` is called after each committed batch of fetches,
    `check_stop(doing)` before each round trip that fetches nothing (it raises to stop)."""
    ref = folder_plan.ref
    outcome = FolderOutcome()
    info = select(client, ref.folder, address)
    if int(info[b"UIDVALIDITY"]) != ref.uidvalidity:
        raise MailProblem(
            f"folder {ref.folder!r} changed UIDVALIDITY during the sync; the next sync "
            "fetches it again"
        )
    items = fetch_items(raw_max_bytes)
    fast = raw_max_bytes >= HEADERS_FROM_RAW_BYTES  # headers come from the raw bytes

    def write(batch: list[int], answer: dict[int, Any]) -> tuple[int, int]:
        messages, unreadable = readable(batch, answer, raw_max_bytes)
        skipped = store.save(ref, messages, unreadable)
        for one in skipped:
            log.warning(
                "message not stored, listed in mail_skipped: user=%s folder=%r uid=%d: %s",
                ref.user_id,
                ref.folder,
                one.uid,
                one.reason,
            )
        return len(messages) + len(unreadable) - len(skipped), len(skipped)

    def committed(written: Future[tuple[int, int]]) -> None:
        fetched, skipped = written.result()  # committed (or its error raised here)
        outcome.fetched += fetched
        outcome.skipped += skipped

    # A batch is parsed and written while the next is fetched; at most two are held at once.
    with ThreadPoolExecutor(1, thread_name_prefix="mail-writer") as writer:
        writing: Future[tuple[int, int]] | None = None
        planned = 0
        for batch in _chunks(folder_plan.to_fetch, batch_size):
            answer = fast and fetch_raw(client, batch, raw_max_bytes)
            if not answer:
                answer = client.fetch(batch, items)
            if writing is not None:
                committed(writing)
                after_batch(planned)
            writing, planned = writer.submit(write, batch, answer), len(batch)
        if writing is not None:
            committed(writing)
            after_batch(planned)
    for chunk in _chunks(folder_plan.stored_uids, FLAG_CHUNK):
        check_stop(f"refreshing the flags of {ref.folder!r}")
        outcome.flags_updated += _refresh_flags(client, store, ref, chunk)
    store.remove(ref, folder_plan.expunged)
    outcome.removed = len(folder_plan.expunged)
    store.touch(ref)
    return outcome


def _refresh_flags(client: IMAPClient, store: MessageStore, ref: FolderRef, uids: list[int]) -> int:
    server = {uid: flags_of(data) for uid, data in client.fetch(uids, [b"FLAGS"]).items()}
    local = store.flags_of(ref, uids)
    changed = {
        uid: flags
        for uid, flags in server.items()
        if uid in local and flags != tuple(sorted(local[uid]))
    }
    store.set_flags(ref, changed)
    return len(changed)


def _flag(flag: Any) -> str:
    return flag.decode("utf-8", "replace") if isinstance(flag, bytes) else str(flag)


def _chunks(items: Sequence[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


CONNECTION_LOST = (OSError, imaplib.IMAP4.abort)
