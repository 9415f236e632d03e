"""The folder state machine: which work the server's counters leave, in each server mode."""

from __future__ import annotations

import pytest

from consumers.imap.folder_state import Known, Mode, ServerStatus, State, decide
from consumers.imap.uid_set import UidSet, sequence_set

SERVER = ServerStatus(uidvalidity=7, uidnext=101, messages=100, highest_modseq=500)
SYNCED = Known(7, highest_uid=100, low_uid=1, uidnext=101, messages=100, highest_modseq=500)


def known(**changes: int) -> Known:
    return Known(**{**SYNCED.__dict__, **changes})


def server(**changes: int) -> ServerStatus:
    return ServerStatus(**{**SERVER.__dict__, **changes})


@pytest.mark.parametrize("mode", list(Mode))
def test_same_counters_mean_no_further_command(mode: Mode) -> None:
    assert decide(known(), SERVER, mode, full=False, walk_due=False).state is State.UNCHANGED


@pytest.mark.parametrize(
    ("checkpoint", "status", "mode", "full", "due", "state"),
    [
        (None, SERVER, Mode.QRESYNC, False, False, State.NEW),
        (known(uidvalidity=6), SERVER, Mode.QRESYNC, False, False, State.RESET),
        (
            known(),
            server(uidnext=103, messages=102, highest_modseq=502),
            Mode.QRESYNC,
            False,
            False,
            State.NEW_MAIL,
        ),
        # Two new UIDs but one message more: one was expunged.
        (known(), server(uidnext=103, messages=101), Mode.PLAIN, False, False, State.CHANGED),
        (known(), server(highest_modseq=501), Mode.CONDSTORE, False, False, State.CHANGED),
        # Without CONDSTORE a flag change leaves the counters alone: only a walk finds it.
        (known(), server(highest_modseq=0), Mode.PLAIN, False, False, State.UNCHANGED),
        (known(), server(highest_modseq=0), Mode.PLAIN, False, True, State.CHANGED),
        (known(), server(highest_modseq=0), Mode.PLAIN, True, False, State.CHANGED),
        (known(), SERVER, Mode.QRESYNC, True, False, State.UNCHANGED),
        (known(stored=97), SERVER, Mode.QRESYNC, True, False, State.CHANGED),  # rows lost
        (known(low_uid=40), SERVER, Mode.QRESYNC, False, False, State.CHANGED),  # first sync
        (known(messages=-1), SERVER, Mode.QRESYNC, False, False, State.CHANGED),  # no pass yet
    ],
)
def test_the_state_follows_the_counters(
    checkpoint: Known | None, status: ServerStatus, mode: Mode, full: bool, due: bool, state: State
) -> None:
    assert decide(checkpoint, status, mode, full=full, walk_due=due).state is state


def test_new_mail_only_fetches_above_without_an_expunge_check() -> None:
    work = decide(
        known(), server(uidnext=104, messages=103), Mode.CONDSTORE, full=False, walk_due=False
    )
    assert (work.fetch_new, work.expunge_check, work.modseq_changes, work.estimate) == (
        True,
        False,
        True,
        3,
    )


def test_a_first_sync_left_part_way_goes_on_down() -> None:
    work = decide(known(low_uid=40, stored=61), SERVER, Mode.QRESYNC, full=False, walk_due=False)
    assert (work.first_sync, work.fetch_new, work.estimate) == (True, False, 39)


def test_modseq_modes_without_a_kept_modseq_walk_once() -> None:
    work = decide(known(highest_modseq=0), SERVER, Mode.QRESYNC, full=False, walk_due=False)
    assert work.walk_flags and not work.modseq_changes


def test_uid_sets_read_and_go_down_in_batches() -> None:
    uids = UidSet.parse(b"1:3,6,9:12")
    assert len(uids) == 8 and 6 in uids and 7 not in uids and 12 in uids and 13 not in uids
    assert list(uids.batches_down(3)) == [[12, 11, 10], [9, 6, 3], [2, 1]]
    assert list(uids.batches_down(3, first=1)) == [[12], [11, 10, 9], [6, 3, 2], [1]]
    assert list(uids.batches_up(5)) == [[1, 2, 3, 6, 9], [10, 11, 12]]
    assert UidSet.of_ranges([(5, 9), (1, 4), (20, 20)]).ranges == ((1, 9), (20, 20))
    assert sequence_set([7, 1, 2, 3, 9]) == "1:3,7,9"
    assert len(UidSet.parse("")) == 0
