"""Fetching a folder's messages in batches, each committed with the checkpoint it moves.

New mail goes up from the highest stored UID; a first sync comes down from the top, so the
newest mail is readable after its first batch and the low-water mark follows each commit. A
batch is parsed and written while the next is fetched; at most two are held at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from imapclient import IMAPClient

from consumers.imap.fast_fetch import fetch_raw
from consumers.imap.fetched import HEADERS_FROM_RAW_BYTES, fetch_items, readable
from consumers.mail.message_batch import FolderRef
from consumers.mail.message_store import MessageStore

log = logging.getLogger("consumers.imap")


def fetch_batches(
    client: IMAPClient,
    store: MessageStore,
    ref: FolderRef,
    batches: Iterable[list[int]],
    *,
    downward: bool,
    raw_max_bytes: int,
    after_batch: Callable[[int], None],
) -> tuple[int, int]:
    """Fetch and store each batch; `after_batch(n)` follows each commit. (Messages stored,
    messages listed in mail_skipped.)"""
    items = fetch_items(raw_max_bytes)
    fast = raw_max_bytes >= HEADERS_FROM_RAW_BYTES  # headers come from the raw bytes

    def write(batch: list[int], answer: dict[int, Any]) -> tuple[int, int]:
        messages, unreadable = readable(sorted(batch), answer, raw_max_bytes)
        skipped = store.save(ref, messages, unreadable, downward=downward)
        for one in skipped:
            log.warning(
                "message not stored, listed in mail_skipped: user=%s folder=%r uid=%d: %s",
                ref.user_id,
                ref.folder,
                one.uid,
                one.reason,
            )
        return len(messages) + len(unreadable) - len(skipped), len(skipped)

    done = [0, 0]

    def committed(written: Future[tuple[int, int]]) -> None:
        stored, skipped = written.result()  # committed (or its error raised here)
        done[0] += stored
        done[1] += skipped

    with ThreadPoolExecutor(1, thread_name_prefix="mail-writer") as writer:
        writing: Future[tuple[int, int]] | None = None
        planned = 0
        for batch in batches:
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
    return done[0], done[1]
