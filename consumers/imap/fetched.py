"""One FETCH response item turned into the row the message store keeps."""

from __future__ import annotations

from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import parsedate_to_datetime
from typing import Any

from mail.message_store import StoredMessage

HEADER = b"BODY[HEADER.FIELDS (MESSAGE-ID SUBJECT FROM TO DATE)]"
MAX_HEADER_TEXT = 2000
_parser = BytesHeaderParser(policy=compat32)  # the default policy costs ~10x per message


def fetch_items(raw_max_bytes: int) -> list[bytes]:
    """What to ask the server for each message: headers, flags, dates, size, raw bytes."""
    items = [b"FLAGS", b"INTERNALDATE", b"RFC822.SIZE", b"BODY.PEEK" + HEADER[4:]]
    if raw_max_bytes > 0:
        items.append(f"BODY.PEEK[]<0.{raw_max_bytes}>".encode())
    return items


def stored(uid: int, data: dict[bytes, Any], raw_max_bytes: int) -> StoredMessage:
    """The message to store from the server's answer for `uid`."""
    headers = _parser.parsebytes(data.get(HEADER) or b"")
    size = int(data.get(b"RFC822.SIZE") or 0)
    raw = data.get(b"BODY[]<0>") if raw_max_bytes > 0 else None
    return StoredMessage(
        uid=uid,
        message_id=_text(headers.get("Message-ID")),
        subject=_text(headers.get("Subject")),
        sender=_text(headers.get("From")),
        recipients=_text(headers.get("To")),
        sent_at=_date(headers.get("Date")),
        received_at=_aware(data[b"INTERNALDATE"]),
        flags=flags_of(data),
        size=size,
        raw=bytes(raw) if raw is not None else None,
        raw_truncated=raw is None or len(raw) < size,
    )


def _text(value: Any) -> str | None:
    """A header as readable text: RFC 2047 words decoded, no NUL, bounded."""
    if value is None:
        return None
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
