"""Bringing a stored folder's flags and deletions up to the server's.

Removals go first and move no checkpoint; then the flag changes, in modseq order, a batch
per transaction that also moves the folder's modseq checkpoint to the batch's highest, so a
sync that dies resumes with CHANGEDSINCE from there. A VANISHED answer only says what went
since a modseq, which is why removals are committed before that modseq moves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from imapclient import IMAPClient

from consumers.imap import server_commands as imap
from consumers.imap.server_commands import Change
from consumers.imap.uid_set import UidSet, sequence_set
from consumers.mail.message_batch import FolderRef
from consumers.mail.message_store import MessageStore

FLAG_BATCH = 500  # flag changes per committed batch
WALK_CHUNK = 1000  # UIDs whose flags are compared per round trip (the walk)


def remove(store: MessageStore, ref: FolderRef, uids: Iterable[int]) -> int:
    """Delete what the server expunged, in batches; how many were stored."""
    removed, batch = 0, []
    for uid in uids:
        batch.append(uid)
        if len(batch) == WALK_CHUNK:
            removed += store.remove(ref, batch)
            batch = []
    return removed + store.remove(ref, batch)


def apply_in_modseq_order(
    store: MessageStore, ref: FolderRef, changes: Sequence[Change], span: tuple[int, int]
) -> int:
    """Apply flag changes of stored messages (UIDs in `span`); rows changed."""
    low, high = span
    ordered = sorted((c for c in changes if low <= c.uid <= high), key=lambda c: c.modseq)
    changed = 0
    for start in range(0, len(ordered), FLAG_BATCH):
        batch = ordered[start : start + FLAG_BATCH]
        after = ordered[start + FLAG_BATCH] if start + FLAG_BATCH < len(ordered) else None
        # One STORE gives many messages the same modseq: a batch ending inside such a group
        # vouches only for the modseqs below it.
        done = batch[-1].modseq if after is None else min(batch[-1].modseq, after.modseq - 1)
        changed += store.set_flags(ref, {c.uid: c.flags for c in batch}, modseq=done)
    return changed


def expunged(
    client: IMAPClient, store: MessageStore, ref: FolderRef, span: tuple[int, int], compact: bool
) -> list[int]:
    """Stored UIDs in `span` the server no longer has: one UID SEARCH, one set comparison."""
    low, high = span
    if high < low:
        return []
    server = imap.search(client, low, high, compact)
    return [uid for uid in store.local_uids(ref, low, high) if uid not in server]


def walk_flags(
    client: IMAPClient,
    store: MessageStore,
    ref: FolderRef,
    span: tuple[int, int],
    check_stop: Callable[[str], None],
) -> int:
    """Compare every stored message's flags with the server's; rows changed."""
    low, high = span
    changed = 0
    local = store.local_uids(ref, low, high)
    for start in range(0, len(local), WALK_CHUNK):
        check_stop(f"refreshing the flags of {ref.folder!r}")
        chunk = local[start : start + WALK_CHUNK]
        server = imap.flags(client, sequence_set(chunk))
        ours = store.flags_of(ref, chunk)
        differ = {u: f for u, f in server.items() if u in ours and f != tuple(sorted(ours[u]))}
        changed += store.set_flags(ref, differ)
    return changed


def missing(
    client: IMAPClient, store: MessageStore, ref: FolderRef, span: tuple[int, int], compact: bool
) -> tuple[UidSet, list[int]]:
    """A full sync's reconciliation of `span`: server UIDs not stored, stored UIDs gone."""
    low, high = span
    server = imap.search(client, low, high, compact) if high >= low else UidSet(())
    local = store.local_uids(ref, low, high)
    local_set = set(local)
    absent = UidSet.of(u for u in server if u not in local_set)
    return absent, [u for u in local if u not in server]
