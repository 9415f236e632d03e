"""The IMAP commands a folder pass needs that imapclient does not offer as such.

STATUS with HIGHESTMODSEQ, EXAMINE with the QRESYNC or CONDSTORE parameter (its answer
carries changed flags and `VANISHED (EARLIER)`), `UID FETCH … (CHANGEDSINCE m)` and
`UID SEARCH RETURN (ALL)` (ESEARCH, a compact UID set). They go through imapclient's
imaplib connection (`IMAPClient._imap`, as fast_fetch.py does); imapclient's own parser reads
the FETCH lines.
"""

from __future__ import annotations

import imaplib
import re
from dataclasses import dataclass, field
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError
from imapclient.imap_utf7 import decode as decode_utf7
from imapclient.imapclient import as_pairs
from imapclient.response_parser import parse_fetch_response, parse_response

from consumers.imap.fetched import flags_of
from consumers.imap.folder_state import Mode, ServerStatus
from consumers.imap.uid_set import UidSet
from consumers.mail.imap_connection import MailProblem

ALL = re.compile(rb"\bALL ([0-9:,]+)")


@dataclass(frozen=True)
class Change:
    uid: int
    flags: tuple[str, ...]
    modseq: int


@dataclass(frozen=True)
class Selected:
    """The EXAMINE answer: the folder's counters, and with QRESYNC what changed."""

    uidvalidity: int
    uidnext: int
    exists: int
    highest_modseq: int
    changes: list[Change] = field(default_factory=list)
    vanished: UidSet = field(default_factory=lambda: UidSet(()))


def server_mode(client: IMAPClient, turned_off: frozenset[str]) -> Mode:
    """The best change tracking the server offers and the settings allow. QRESYNC is enabled
    by the first EXAMINE (`examine`), so a sync of unchanged folders never spends the round
    trip; STATUS HIGHESTMODSEQ needs no ENABLE."""
    offered = {c.decode().upper() for c in client.capabilities()} - turned_off
    if {"QRESYNC", "ENABLE"} <= offered:
        return Mode.QRESYNC
    if "CONDSTORE" in offered:
        return Mode.CONDSTORE  # the first CHANGEDSINCE or STATUS HIGHESTMODSEQ enables it
    return Mode.PLAIN


def offered(client: IMAPClient, capability: str, turned_off: frozenset[str]) -> bool:
    """Whether the server offers it and the settings do not turn it off (ESEARCH,
    LIST-STATUS)."""
    found = {c.decode().upper() for c in client.capabilities()} - turned_off
    return capability in found


def status(client: IMAPClient, folder: str, mode: Mode) -> ServerStatus:
    try:
        found = client.folder_status(folder, _status_items(mode))
    except IMAPClientError as error:
        raise MailProblem(f"folder {folder!r} vanished from the IMAP server ({error})") from None
    return _server_status(found)


def list_with_status(client: IMAPClient, mode: Mode) -> dict[str, ServerStatus] | None:
    """Every selectable folder and its counters in one round trip (LIST-STATUS, RFC 5819);
    None when an answer is of a shape read here (the caller then LISTs and asks STATUS)."""
    imap = client._imap
    imap.untagged_responses = {}
    returned = f"RETURN (STATUS ({' '.join(_status_items(mode))}))"
    try:
        kind, _ = imap._simple_command("LIST", '""', '"*"', returned)
    except imaplib.IMAP4.error:
        return None
    listed = imap.untagged_responses.pop("LIST", [])
    statuses = imap.untagged_responses.pop("STATUS", [])
    if kind != "OK" or not all(isinstance(x, bytes) for x in listed + statuses):
        return None
    counters = {}
    for line in statuses:
        name, items = parse_response([line])
        counters[_folder_name(client, name)] = _server_status(dict(as_pairs(items)))
    found = {}
    for flags, _, name in client._proc_folder_list(listed):
        if not {b"\\NOSELECT", b"\\NONEXISTENT"} & {f.upper() for f in flags}:
            if name not in counters:
                return None
            found[name] = counters[name]
    return found


def _status_items(mode: Mode) -> list[str]:
    items = ["MESSAGES", "UIDNEXT", "UIDVALIDITY"]
    return [*items, "HIGHESTMODSEQ"] if mode is not Mode.PLAIN else items


def _server_status(found: dict[bytes, Any]) -> ServerStatus:
    return ServerStatus(
        int(found[b"UIDVALIDITY"]),
        int(found[b"UIDNEXT"]),
        int(found[b"MESSAGES"]),
        int(found.get(b"HIGHESTMODSEQ", 0)),
    )


def _folder_name(client: IMAPClient, name: Any) -> str:
    if isinstance(name, int):
        return str(name)
    decoded: str = decode_utf7(name) if client.folder_encode else name.decode()
    return decoded


def examine(
    client: IMAPClient, folder: str, mode: Mode, since: tuple[int, int, str] | None
) -> Selected:
    """Open the folder read-only; `since` = (UIDVALIDITY, modseq, known UIDs) asks a QRESYNC
    server for the flags changed and the UIDs expunged since that modseq in the same answer."""
    imap = client._imap
    if mode is Mode.QRESYNC and not getattr(imap, "qresync_enabled", False):
        # ENABLE is only valid before the first SELECT/EXAMINE of the session (RFC 5161).
        if b"QRESYNC" not in map(bytes.upper, client.enable("QRESYNC")):
            raise MailProblem("the IMAP server offered QRESYNC but would not enable it")
        imap.qresync_enabled = True
    imap.untagged_responses = {}
    args = [client._normalise_folder(folder)]
    if mode is Mode.QRESYNC and since is not None:
        args.append(f"(QRESYNC ({since[0]} {since[1]} {since[2]}))")
    elif mode is not Mode.PLAIN:
        args.append("(CONDSTORE)")
    try:
        kind, data = imap._simple_command("EXAMINE", *args)
    except imaplib.IMAP4.error as error:
        kind, data = "NO", [str(error).encode()]
    if kind != "OK":
        imap.state = "AUTH"
        reason = b" ".join(d for d in data if isinstance(d, bytes)).decode(errors="replace")
        raise MailProblem(f"folder {folder!r} vanished from the IMAP server ({reason})")
    imap.state, imap.is_readonly = "SELECTED", True  # what imaplib's own select() sets
    fetched = imap.untagged_responses.pop("FETCH", [])
    vanished = imap.untagged_responses.pop("VANISHED", [])
    info = client._process_select_response(imap.untagged_responses)
    return Selected(
        int(info[b"UIDVALIDITY"]),
        int(info.get(b"UIDNEXT", 0)),
        int(info.get(b"EXISTS", 0)),
        int(info.get(b"HIGHESTMODSEQ", 0)),
        _changes(fetched),
        UidSet.of_ranges(
            span
            for line in vanished
            if line.upper().startswith(b"(EARLIER)")
            for span in UidSet.parse(line[len(b"(EARLIER)") :]).ranges
        ),
    )


def changed_since(client: IMAPClient, uids: str, modseq: int) -> list[Change]:
    """Flags of the messages in `uids` changed after `modseq` (CONDSTORE)."""
    imap = client._imap
    kind, data = imap.uid("FETCH", uids, "(UID FLAGS)", f"(CHANGEDSINCE {modseq})")
    if kind != "OK":
        raise MailProblem(f"the IMAP server refused FETCH CHANGEDSINCE: {data!r}")
    return _changes(data)


def flags(client: IMAPClient, uids: str) -> dict[int, tuple[str, ...]]:
    """Every message's flags in `uids` (the walk of servers without CONDSTORE)."""
    kind, data = client._imap.uid("FETCH", uids, "(UID FLAGS)")
    if kind != "OK":
        raise MailProblem(f"the IMAP server refused FETCH FLAGS: {data!r}")
    parsed = parse_fetch_response([d for d in data if d], True, True)
    return {int(uid): flags_of(item) for uid, item in parsed.items()}


def search(client: IMAPClient, low: int, high: int | None, compact: bool) -> UidSet:
    """The UIDs from `low` to `high` (None: the highest there is) the folder holds."""
    span = f"{low}:{'*' if high is None else high}"
    imap = client._imap
    if compact:
        imap.untagged_responses.pop("ESEARCH", None)
        kind, _ = imap.uid("SEARCH", "RETURN", "(ALL)", "UID", span)
        answer = b" ".join(imap.untagged_responses.pop("ESEARCH", []))
        found = ALL.search(answer)
        uids = UidSet.parse(found[1]) if found else UidSet(())
    else:
        kind, data = imap.uid("SEARCH", "UID", span)
        uids = UidSet.of(int(u) for u in b" ".join(d for d in data if d).split())
    if kind != "OK":
        raise MailProblem(f"the IMAP server refused UID SEARCH {span}")
    # `n:*` also matches the last message when every UID is below n.
    return UidSet.of_ranges(
        (max(a, low), b if high is None else min(b, high))
        for a, b in uids.ranges
        if b >= low and (high is None or a <= high)
    )


def _changes(data: list[Any]) -> list[Change]:
    parsed = parse_fetch_response([d for d in data if d], True, True)
    return [
        Change(int(uid), flags_of(item), int(item.get(b"MODSEQ", (0,))[0]))
        for uid, item in parsed.items()
        if b"FLAGS" in item
    ]
