"""Which work a folder needs, chosen from the server's own counters (standard library only).

Each sync asks every folder's `STATUS (MESSAGES UIDNEXT UIDVALIDITY [HIGHESTMODSEQ])` and
compares it with the checkpoint the last pass left (consumers/mail/folder_checkpoints.py):

    STATUS ──> no checkpoint ─────────────────────────> NEW ───────┐
      │                                                            │ first sync,
      ├──> UIDVALIDITY differs ──> RESET: re-key (Message-IDs     │ newest first,
      │                            match) or start over ───────────┤ low-water mark
      ├──> same counters, first sync done, no walk due ─> UNCHANGED (no further command)
      ├──> only UIDNEXT and MESSAGES grew, by as much ──> NEW_MAIL ─┐
      └──> anything else ──────────────────────────────> CHANGED ──┤
                                                                   v
          EXAMINE (QRESYNC: changed flags + VANISHED in its answer)
          -> removals -> flag changes in modseq order (checkpoint per batch)
          -> fetch above the highest UID -> go on down from the low-water mark
          -> store the counters: the next sync compares with them

What each server mode sees: QRESYNC and CONDSTORE bring every flag change and expunge on
every sync (CONDSTORE compares UID sets for expunges when the counts say one happened);
a server with neither gets expunges by the same count check and a full flag walk only
when `walk_due` (SYNC_MAIL_FLAG_WALK_SECONDS) or on a full sync. docs/mail.md has the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Mode(Enum):
    """What the server offers to find changes (RFC 7162), the best one first."""

    QRESYNC = "qresync"
    CONDSTORE = "condstore"
    PLAIN = "plain"


class State(Enum):
    NEW = "new"
    RESET = "reset"
    UNCHANGED = "unchanged"
    NEW_MAIL = "new_mail"
    CHANGED = "changed"


@dataclass(frozen=True)
class ServerStatus:
    uidvalidity: int
    uidnext: int
    messages: int
    highest_modseq: int = 0  # 0: the server keeps none (no CONDSTORE)


@dataclass(frozen=True)
class Known:
    """What the checkpoint says of the folder (None fields: never synced)."""

    uidvalidity: int
    highest_uid: int
    low_uid: int
    uidnext: int
    messages: int  # -1: no completed pass yet
    highest_modseq: int
    stored: int | None = None  # rows stored, counted when the decision needs it


@dataclass(frozen=True)
class Work:
    state: State
    fetch_new: bool = False  # UIDs above the highest stored one
    first_sync: bool = False  # UIDs below the low-water mark, newest first
    modseq_changes: bool = False  # flags (and with QRESYNC expunges) since the modseq
    walk_flags: bool = False  # every stored message's flags compared
    expunge_check: bool = False  # counts compared, UID sets when they differ
    reconcile: bool = False  # every server UID against every stored one (a full sync)
    estimate: int = 0  # messages to fetch, as far as the counters tell


def decide(
    known: Known | None, server: ServerStatus, mode: Mode, *, full: bool, walk_due: bool
) -> Work:
    """The folder's state and the work it needs; `walk_due` for servers without CONDSTORE."""
    if known is None:
        return Work(State.NEW, first_sync=True, estimate=server.messages)
    if known.uidvalidity != server.uidvalidity:
        return Work(State.RESET, first_sync=True, estimate=server.messages)
    modseq = mode is not Mode.PLAIN and known.highest_modseq > 0
    walk = (mode is Mode.PLAIN and (full or walk_due)) or (
        mode is not Mode.PLAIN and not modseq  # no modseq kept yet: one walk sets it
    )
    stored_matches = known.stored is None or known.stored == server.messages
    reconcile = full and not stored_matches
    same = (
        known.messages >= 0
        and (known.uidnext, known.messages) == (server.uidnext, server.messages)
        and (mode is Mode.PLAIN or known.highest_modseq == server.highest_modseq)
    )
    first_sync = known.low_uid > 1
    stored = known.stored if known.stored is not None else known.messages
    estimate = max(0, server.messages - max(stored, 0))
    if same and not (first_sync or walk or reconcile):
        return Work(State.UNCHANGED)
    grew = server.uidnext - known.uidnext
    only_new = (
        known.messages >= 0 and grew > 0 and server.messages - known.messages == grew
    )  # as many more messages as new UIDs: nothing expunged (UIDs are never reused)
    return Work(
        State.NEW_MAIL if only_new and not same else State.CHANGED,
        fetch_new=server.uidnext > known.highest_uid + 1,
        first_sync=first_sync,
        modseq_changes=modseq and not same,
        walk_flags=walk,
        expunge_check=not only_new and not same,
        reconcile=reconcile,
        estimate=estimate,
    )
