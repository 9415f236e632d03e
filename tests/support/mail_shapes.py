"""Hypothesis strategies for the header shapes real mail has: encoded words (good and bad),
charset names that do not exist or are no text encoding, 8-bit junk, folded lines, NUL."""

from __future__ import annotations

import base64

from hypothesis import strategies as st

CHARSETS = st.sampled_from(
    [
        "utf-8",
        "UTF8",
        "iso-8859-1",
        "windows-1252",
        "koi8-r",
        "gb2312",
        "shift_jis",
        "ks_c_5601-1987",
        "utf-7",
        "utf-16",
        "us-ascii",
        "utf-8*en",
        "x-unknown",
        "unknown-8bit",
        "utf8mb4",
        "base64",
        "rot13",
        "idna",
        "hex",
        "",
        "?",
    ]
)
JUNK = st.binary(max_size=40)  # 8-bit junk, NUL, CR and LF included
WORD_TEXT = st.text(
    st.characters(blacklist_categories=["Cs"]), max_size=30
)  # any code point a sender may mean


@st.composite
def encoded_words(draw: st.DrawFn) -> bytes:
    """`=?charset?B|Q?payload?=`: a payload right for its encoding, or not."""
    charset = draw(CHARSETS)
    encoding = draw(st.sampled_from(["B", "b", "Q", "q"]))
    data = draw(st.one_of(JUNK, WORD_TEXT.map(lambda t: t.encode("utf-8"))))
    if encoding in "Bb":
        good = base64.b64encode(data)
        payload = draw(st.sampled_from([good, good.rstrip(b"="), b"!!notbase64", good[:-1]]))
    else:
        payload = draw(st.sampled_from([data.hex("=").upper().encode(), data, b"=Z=", b"_a_"]))
    return b"=?" + charset.encode() + b"?" + encoding.encode() + b"?" + payload + b"?="


PIECES = st.one_of(
    encoded_words(),
    JUNK,
    st.text(max_size=30).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"\r\n ", b"\r\n\t", b"\n ", b" ", b"\x00", b"=?", b"?=", b"\r\n"]),
)
HEADER_VALUES = st.lists(PIECES, max_size=12).map(b"".join)
DATES = st.one_of(
    HEADER_VALUES,
    st.builds(
        lambda d, m, y, h, z: f"Mon, {d} {m} {y} {h}:00:00 {z}".encode(),
        st.integers(-5, 99),
        st.sampled_from(["Jan", "Feb", "Dec", "Foo", ""]),
        st.integers(-1, 100_000),
        st.integers(-1, 99),
        st.sampled_from(["+0000", "-2359", "+9999", "GMT", "EST", "-0000", "junk", ""]),
    ),
)
NAMES = st.sampled_from([b"Subject", b"From", b"To", b"Message-ID", b"Date", b"subject", b"X-Junk"])


@st.composite
def header_blocks(draw: st.DrawFn) -> bytes:
    """A message's header section (duplicates, missing fields, a missing blank line) and body."""
    lines = []
    for name in draw(st.lists(NAMES, max_size=8)):
        value = draw(DATES if name == b"Date" else HEADER_VALUES)
        lines.append(name + draw(st.sampled_from([b": ", b":", b" : "])) + value)
    end = draw(st.sampled_from([b"\r\n\r\n", b"\n\n", b"\r\n", b""]))
    return b"\r\n".join(lines) + end + draw(JUNK)
