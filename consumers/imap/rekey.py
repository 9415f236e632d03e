"""A folder whose UIDVALIDITY changed but whose messages did not: keep them, re-keyed.

Some servers renumber nothing yet hand out a new UIDVALIDITY (a restored index, a migrated
mailbox). When most stored Message-IDs are still the server's at the same UIDs, the stored
rows move to the new UIDVALIDITY (those that differ are dropped and fetched again), instead
of refetching the whole folder. Either way the change log gets one `mailbox_reset`.
"""

from __future__ import annotations

from collections.abc import Callable

from imapclient import IMAPClient

from consumers.imap.fetched import flags_of, header_fields
from consumers.imap.header_text import header_text
from consumers.mail.message_batch import FolderRef
from consumers.mail.message_store import MessageStore, Owner

MATCH_SHARE = 0.9  # of the stored messages, to re-key rather than start over
CHUNK = 1000
HEADER = b"BODY[HEADER.FIELDS (MESSAGE-ID)]"


def try_rekey(
    client: IMAPClient,
    store: MessageStore,
    ref: FolderRef,
    previous: int,
    owner: Owner,
    modseq: int,
    check_stop: Callable[[str], None],
) -> bool:
    """Re-key the folder's rows from `previous` to `ref.uidvalidity` if they still match the
    server's messages; False (nothing written) when too few do."""
    old = FolderRef(ref.user_id, ref.folder, previous)
    local = store.local_uids(old)
    if not local:
        return False
    dropped: list[int] = []
    flags: dict[int, tuple[str, ...]] = {}
    for start in range(0, len(local), CHUNK):
        check_stop(f"comparing the messages of {ref.folder!r} (new UIDVALIDITY)")
        chunk = local[start : start + CHUNK]
        server = client.fetch(chunk, [b"FLAGS", b"BODY.PEEK" + HEADER[4:]])
        ours = store.message_ids(old, chunk)
        for uid in chunk:
            theirs = _message_id(server.get(uid, {}).get(HEADER))
            if theirs is not None and theirs == _same(ours.get(uid)):
                flags[uid] = flags_of(server[uid])
            else:
                dropped.append(uid)
    if len(flags) < MATCH_SHARE * len(local):
        return False
    store.rekey(ref, owner, previous, dropped, flags, modseq)
    return True


def _message_id(head: bytes | None) -> str | None:
    return _same(header_text(header_fields(head).get("message-id"))) if head else None


def _same(value: str | None) -> str | None:
    """A Message-ID compared without its whitespace (folding differs between readers)."""
    return "".join(value.split()) or None if value else None
