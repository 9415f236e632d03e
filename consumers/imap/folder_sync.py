"""One folder's pass, following the work folder_state.decide chose (its docstring draws the
states): EXAMINE, then removals, flag changes, new mail, the first sync's way down, and the
server's counters stored last.
"""

from __future__ import annotations

import imaplib
from collections.abc import Callable
from dataclasses import dataclass

from imapclient import IMAPClient

from consumers.imap import folder_changes as changes
from consumers.imap import server_commands as imap
from consumers.imap.folder_fetch import fetch_batches
from consumers.imap.folder_state import Mode, ServerStatus, State, Work
from consumers.imap.rekey import try_rekey
from consumers.imap.uid_set import UidSet
from consumers.mail.folder_checkpoints import Checkpoint
from consumers.mail.imap_connection import MailProblem
from consumers.mail.message_batch import FolderRef
from consumers.mail.message_store import MessageStore, Owner

FIRST_BATCH = 50  # messages in a first sync's first batch


@dataclass(frozen=True)
class Session:
    """What every folder pass of one sync shares."""

    client: IMAPClient
    store: MessageStore
    user_id: str
    owner: Owner
    mode: Mode
    compact: bool  # ESEARCH: UID sets come back as ranges
    batch_size: int
    raw_max_bytes: int
    check_stop: Callable[[str], None]  # raises to stop; called before round trips
    after_batch: Callable[[int], None]  # messages committed (progress, and the stop check)
    correct_total: Callable[[int], None]  # the counters' estimate was off by this much


@dataclass
class FolderOutcome:
    fetched: int = 0
    flags_updated: int = 0
    removed: int = 0
    skipped: int = 0  # listed in mail_skipped with the reason, not stored
    started_over: bool = False
    rekeyed: bool = False


def sync_folder(
    s: Session, folder: str, server: ServerStatus, known: Checkpoint | None, work: Work
) -> FolderOutcome:
    outcome = FolderOutcome()
    if work.state is State.UNCHANGED:
        return outcome  # no command; the executor records the time for all such folders
    s.check_stop(f"syncing {folder!r}")
    ref = FolderRef(s.user_id, folder, server.uidvalidity)
    since = None
    if work.modseq_changes and known is not None and known.highest_uid >= known.low_uid:
        since = (known.uidvalidity, known.highest_modseq, f"{known.low_uid}:{known.highest_uid}")
    selected = imap.examine(s.client, folder, s.mode, since)
    if selected.uidvalidity != server.uidvalidity:
        raise MailProblem(
            f"folder {folder!r} changed UIDVALIDITY during the sync; the next sync fetches it again"
        )
    if work.state is State.RESET and known is not None:
        modseq = selected.highest_modseq
        outcome.rekeyed = try_rekey(
            s.client, s.store, ref, known.uidvalidity, s.owner, modseq, s.check_stop
        )
    if work.state is State.NEW or (work.state is State.RESET and not outcome.rekeyed):
        previous = known.uidvalidity if known is not None else None
        top = selected.uidnext - 1
        s.store.start_over(ref, s.owner, top, previous, selected.highest_modseq)
        known, outcome.started_over = Checkpoint(ref.uidvalidity, top, top + 1), True
    else:
        known = s.store.checkpoint(s.user_id, folder)
        assert known is not None and known.uidvalidity == ref.uidvalidity
        _bring_changes(s, ref, known, selected, work, outcome)
    up = UidSet(())
    if work.fetch_new or work.reconcile or outcome.rekeyed:
        up = _to_fetch_up(s, ref, known, outcome, reconcile=work.reconcile or outcome.rekeyed)
    down = UidSet(())
    if known.low_uid > 1:
        down = imap.search(s.client, 1, known.low_uid - 1, s.compact)
    s.correct_total(len(up) + len(down) - work.estimate)
    for todo, downward in ((up, False), (down, True)):  # newest first: new mail, then older
        if len(todo):
            # A first sync's first batch is small: the newest mail is listed sooner.
            batches = (
                todo.batches_down(s.batch_size, FIRST_BATCH)
                if downward
                else (todo.batches_up(s.batch_size))
            )
            fetched, skipped = fetch_batches(
                s.client, s.store, ref, batches, downward=downward,
                raw_max_bytes=s.raw_max_bytes, after_batch=s.after_batch,
            )  # fmt: skip
            outcome.fetched += fetched
            outcome.skipped += skipped
    if known.low_uid > 1:
        s.store.first_sync_done(ref)
    walked = work.walk_flags or outcome.started_over or outcome.rekeyed  # flags fresh
    s.store.finish_pass(ref, selected.uidnext, selected.exists, selected.highest_modseq, walked)
    return outcome


def _bring_changes(
    s: Session,
    ref: FolderRef,
    known: Checkpoint,
    selected: imap.Selected,
    work: Work,
    outcome: FolderOutcome,
) -> None:
    span = (known.low_uid, known.highest_uid)
    gone = list(selected.vanished)
    if work.expunge_check or (work.walk_flags and s.mode is Mode.PLAIN):
        s.check_stop(f"looking for expunged messages in {ref.folder!r}")
        gone += changes.expunged(s.client, s.store, ref, span, s.compact)
    outcome.removed += changes.remove(s.store, ref, gone)
    found = selected.changes
    if work.modseq_changes and s.mode is Mode.CONDSTORE and known.highest_uid >= known.low_uid:
        s.check_stop(f"asking for the flags changed in {ref.folder!r}")
        found = imap.changed_since(s.client, f"{span[0]}:{span[1]}", known.highest_modseq)
    outcome.flags_updated += changes.apply_in_modseq_order(s.store, ref, found, span)
    if work.walk_flags:
        outcome.flags_updated += changes.walk_flags(s.client, s.store, ref, span, s.check_stop)


def _to_fetch_up(
    s: Session, ref: FolderRef, known: Checkpoint, outcome: FolderOutcome, reconcile: bool
) -> UidSet:
    """Messages above the highest stored UID and, reconciling, any stored one missing (the
    stored ones the server no longer has are removed now)."""
    high = known.highest_uid
    new = imap.search(s.client, high + 1, None, s.compact)
    if not reconcile:
        return new
    absent, extra = changes.missing(s.client, s.store, ref, (known.low_uid, high), s.compact)
    outcome.removed += changes.remove(s.store, ref, extra)
    return UidSet.of_ranges(absent.ranges + new.ranges)


CONNECTION_LOST = (OSError, imaplib.IMAP4.abort)
