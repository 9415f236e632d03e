"""Header values as readable text, whatever a message holds: nothing here raises.

Real mail is full of headers the `email` package refuses (its `decode_header` raises on an
encoded word whose payload is not base64), so the few headers kept are read here by rules
that always answer:

- the bytes are UTF-8; any byte that is not (8-bit junk, an old client's Latin-1) reads as
  U+FFFD, so an undecodable part shows as such;
- an RFC 2047 encoded word (`=?charset?B|Q?text?=`) is decoded in its charset; one that
  cannot be (payload not base64, a charset no codec knows, a charset that is not a text
  encoding) is kept as written, and an unknown charset's bytes are read as UTF-8;
- NUL (which PostgreSQL text cannot hold) and other control characters become spaces,
  whitespace is collapsed, and the result is cut to MAX_HEADER_TEXT characters.

The raw message is stored beside these fields, so nothing that could not be read is lost.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

MAX_HEADER_TEXT = 2000
# Input beyond this is not decoded at all: a 100 KB header line costs no more than this.
MAX_HEADER_INPUT = 8 * MAX_HEADER_TEXT
ENCODED_WORD = re.compile(r"=\?([^?\s]{1,75})\?([bBqQ])\?([^?\s]*)\?=")
# Whitespace between two encoded words is not part of the text (RFC 2047, section 6.2).
BETWEEN_WORDS = re.compile(r"(\?=)\s+(?==\?)")
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def header_text(value: bytes | str | None) -> str | None:
    """The header's value as bounded, storable text (None stays None)."""
    if value is None:
        return None
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    text = text[:MAX_HEADER_INPUT]
    if "=?" in text:
        text = ENCODED_WORD.sub(_decoded_word, BETWEEN_WORDS.sub(r"\1", text))
    text = " ".join(CONTROL.sub(" ", text).split())
    # No lone surrogates (a codec given surrogateescape bytes, say): PostgreSQL refuses them.
    text = text.encode("utf-8", "replace").decode("utf-8")
    return text[:MAX_HEADER_TEXT]


def _decoded_word(word: re.Match[str]) -> str:
    charset, encoding, payload = word.group(1), word.group(2).upper(), word.group(3)
    if encoding == "B":
        try:
            data = base64.b64decode(payload + "=" * (-len(payload) % 4), validate=True)
        except (binascii.Error, ValueError):
            return word.group(0)  # not base64: shown as written
    else:
        data = binascii.a2b_qp(payload.encode("utf-8", "replace"), header=True)
    return _in_charset(data, charset.split("*", 1)[0])  # `utf-8*en`: RFC 2231 language


def _in_charset(data: bytes, charset: str) -> str:
    try:
        known = codecs.lookup(charset)
    except LookupError:
        known = None
    if known is None or not getattr(known, "_is_text_encoding", True):
        return data.decode("utf-8", "replace")  # `unknown-8bit`, `utf8mb4`, `base64` ...
    try:
        return data.decode(known.name, "replace")
    except Exception:  # a codec may fail in ways of its own (idna, say): read it as UTF-8
        return data.decode("utf-8", "replace")


def header_date(value: bytes | str | None) -> datetime | None:
    """The Date header in UTC, or None when it is missing or no date a reader could load."""
    text = header_text(value)
    if not text:
        return None
    try:
        moment = parsedate_to_datetime(text)
        # In UTC, so a date every reader can load back (9999-12-31 -2359 is past year 9999).
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None  # `Date: yesterday`, year 99999, an offset of +9999 ...
