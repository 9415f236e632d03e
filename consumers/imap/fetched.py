"""One FETCH response item turned into the row the message store keeps."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.utils import parsedate_to_datetime
from typing import Any

from consumers.mail.message_batch import StoredMessage

HEADER = b"BODY[HEADER.FIELDS (MESSAGE-ID SUBJECT FROM TO DATE)]"
RAW = b"BODY[]<0>"
# When this much of each message is fetched anyway, its headers are read from those bytes:
# one literal per message instead of two (imapclient's parsing is most of a fetch's cost).
HEADERS_FROM_RAW_BYTES = 64 * 1024
MAX_HEADER_TEXT = 2000
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


def stored(uid: int, data: dict[bytes, Any], raw_max_bytes: int) -> StoredMessage:
    """The message to store from the server's answer for `uid`."""
    raw = data.get(RAW) if raw_max_bytes > 0 else None
    head = data.get(HEADER) if raw_max_bytes < HEADERS_FROM_RAW_BYTES else _head(raw)
    headers = header_fields(head or b"")
    size = int(data.get(b"RFC822.SIZE") or 0)
    return StoredMessage(
        uid=uid,
        message_id=_text(headers.get("message-id")),
        subject=_text(headers.get("subject")),
        sender=_text(headers.get("from")),
        recipients=_text(headers.get("to")),
        sent_at=_date(headers.get("date")),
        received_at=_aware(data[b"INTERNALDATE"]),
        flags=flags_of(data),
        size=size,
        raw=bytes(raw) if raw is not None else None,
        raw_truncated=raw is None or len(raw) < size,
    )


def header_fields(head: bytes) -> dict[str, str]:
    """Message-ID, Subject, From, To and Date by lower-case name; the first of each wins."""
    found: dict[str, str] = {}
    for name, value in FIELD.findall(head):
        key = name.decode().lower()
        if key not in found:
            found[key] = value.decode("utf-8", "replace").strip()
    return found


def _head(raw: bytes | None) -> bytes:
    """The header section of a raw message (all of it, if no blank line ends it)."""
    if not raw:
        return b""
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        end = raw.find(b"\n\n")
    return raw if end < 0 else raw[: end + 2]


def _text(value: Any) -> str | None:
    """A header as readable text: RFC 2047 words decoded, no NUL, bounded."""
    if value is None:
        return None
    if isinstance(value, str) and value.isascii() and "=?" not in value:
        return " ".join(value.replace("\x00", "").split())[:MAX_HEADER_TEXT]  # the usual case
    try:
        text = str(make_header(decode_header(str(value))))
    except (ValueError, LookupError, UnicodeError):
        text = str(value)
    text = " ".join(text.replace("\x00", "").split())
    text = text.encode("utf-8", "replace").decode("utf-8")  # no lone surrogates
    return text[:MAX_HEADER_TEXT]


def _date(value: Any) -> datetime | None:
    if value is None:
        return None
    try:
        return _aware(parsedate_to_datetime(str(value)))
    except (TypeError, ValueError, IndexError):
        return None


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def flags_of(data: dict[bytes, Any]) -> tuple[str, ...]:
    """The message's flags but \\Recent, which only says which session saw it first."""
    flags = (
        f.decode("utf-8", "replace") if isinstance(f, bytes) else str(f)
        for f in data.get(b"FLAGS", ())
    )
    return tuple(sorted(f for f in flags if f.lower() != "\\recent"))
