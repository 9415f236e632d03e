"""One FETCH response item turned into the row the message store keeps."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from consumers.imap.header_text import header_date, header_text
from consumers.mail.message_batch import Skipped, StoredMessage

HEADER = b"BODY[HEADER.FIELDS (MESSAGE-ID SUBJECT FROM TO DATE)]"
RAW = b"BODY[]<0>"
# When this much of each message is fetched anyway, its headers are read from those bytes:
# one literal per message instead of two (imapclient's parsing is most of a fetch's cost).
HEADERS_FROM_RAW_BYTES = 64 * 1024
MAX_REASON = 500
MAX_SIZE = 2**31 - 1  # the size column is an integer; a server's bogus size is cut to it
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The five fields kept, each with its folded continuation lines. A regular expression over
# the header block costs a tenth of the email package's parser, which builds every header.
FIELD = re.compile(
    rb"^(message-id|subject|from|to|date)[ \t]*:[ \t]*(.*(?:\r?\n[ \t].*)*)",
    re.IGNORECASE | re.MULTILINE,
)


def fetch_items(raw_max_bytes: int) -> list[bytes]:
    """What to ask the server for each message: headers, flags, dates, size, raw bytes."""
    items = [b"FLAGS", b"INTERNALDATE", b"RFC822.SIZE"]
    if raw_max_bytes < HEADERS_FROM_RAW_BYTES:
        items.append(b"BODY.PEEK" + HEADER[4:])
    if raw_max_bytes > 0:
        items.append(f"BODY.PEEK[]<0.{raw_max_bytes}>".encode())
    return items


def readable(
    uids: Sequence[int], answer: dict[int, Any], raw_max_bytes: int
) -> tuple[list[StoredMessage], list[Skipped]]:
    """The batch's messages as rows, and those that cannot be made one, with the reason.

    No message's content stops the batch: headers are read by rules that always answer
    (header_text), and an answer that still cannot be read is listed, not raised.
    """
    messages: list[StoredMessage] = []
    skipped: list[Skipped] = []
    for uid in uids:
        if uid not in answer:
            continue  # expunged between the SEARCH and the FETCH
        try:
            messages.append(stored(uid, answer[uid], raw_max_bytes))
        except Exception as error:  # any one answer's shape: that message is listed, not lost
            reason = (
                f"the server's answer for it could not be read ({type(error).__name__}: {error})"
            )
            skipped.append(Skipped(uid, reason[:MAX_REASON]))
    return messages, skipped


def stored(uid: int, data: dict[bytes, Any], raw_max_bytes: int) -> StoredMessage:
    """The message to store from the server's answer for `uid`."""
    raw = data.get(RAW) if raw_max_bytes > 0 else None
    head = data.get(HEADER) if raw_max_bytes < HEADERS_FROM_RAW_BYTES else _head(raw)
    headers = header_fields(head or b"")
    size = min(int(data.get(b"RFC822.SIZE") or 0), MAX_SIZE)
    sent_at = header_date(headers.get("date"))
    received_at = data.get(b"INTERNALDATE")
    return StoredMessage(
        uid=uid,
        message_id=header_text(headers.get("message-id")),
        subject=header_text(headers.get("subject")),
        sender=header_text(headers.get("from")),
        recipients=header_text(headers.get("to")),
        sent_at=sent_at,
        # A server that gave no arrival time: the Date header, else the epoch (sorts last).
        received_at=_aware(received_at) if isinstance(received_at, datetime) else sent_at or EPOCH,
        flags=flags_of(data),
        size=size,
        raw=bytes(raw) if raw is not None else None,
        raw_truncated=raw is None or len(raw) < size,
    )


def header_fields(head: bytes) -> dict[str, bytes]:
    """Message-ID, Subject, From, To and Date by lower-case name; the first of each wins."""
    found: dict[str, bytes] = {}
    for name, value in FIELD.findall(head):
        key = name.decode().lower()
        if key not in found:
            found[key] = value
    return found


def _head(raw: bytes | None) -> bytes:
    """The header section of a raw message (all of it, if no blank line ends it)."""
    if not raw:
        return b""
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        end = raw.find(b"\n\n")
    return raw if end < 0 else raw[: end + 2]


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def flags_of(data: dict[bytes, Any]) -> tuple[str, ...]:
    """The message's flags but \\Recent, which only says which session saw it first."""
    flags = (
        f.decode("utf-8", "replace") if isinstance(f, bytes) else str(f)
        for f in data.get(b"FLAGS", ())
    )
    return tuple(sorted(f for f in flags if f.lower() != "\\recent"))
