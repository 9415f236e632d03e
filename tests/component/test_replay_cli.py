"""Arguments, progress and violation output of `syncctl replay`, without services."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from coordinator import cli
from coordinator.entrypoints.replay import iso_time
from coordinator.replay.output import ViolationWriter
from coordinator.replay.progress import Progress
from coordinator.replay.records import Violation
from core.settings import Settings


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("2026-01-31T09:30:00Z", datetime(2026, 1, 31, 9, 30, tzinfo=UTC)),
        ("2026-01-31T09:30:00.250+02:00", datetime(2026, 1, 31, 7, 30, 0, 250000, tzinfo=UTC)),
        ("2026-01-31 09:30", datetime(2026, 1, 31, 9, 30, tzinfo=UTC)),  # no offset: UTC
        ("2026-01-31", datetime(2026, 1, 31, tzinfo=UTC)),
    ],
)
def test_iso_times(text: str, moment: datetime) -> None:
    assert iso_time(text) == moment


@pytest.mark.parametrize(
    "argv",
    [
        ["audit", "--user", "u", "--since", "last tuesday"],
        ["audit", "--user", "u", "--until", "2026-02-30T00:00:00Z"],
        ["audit"],
        ["rebuild", "--projection", "everything"],
        ["verify", "--source", "s3"],
        ["verify", "--outbox-max-age", "soon"],
        [],
    ],
)
def test_bad_arguments_exit_2_before_touching_the_database(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.run(Settings(database_url=None), ["replay", *argv]) == 2
    assert "usage: syncctl replay" in capsys.readouterr().err


def test_help_exits_0_and_documents_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.run(Settings(database_url=None), ["replay", "--help"]) == 0
    assert "exit codes: 0 clean" in capsys.readouterr().out


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_on_a_terminal_redraws_in_place() -> None:
    out, clock = io.StringIO(), Clock()
    progress = Progress(1_000_000, out, tty=True, clock=clock)
    clock.now += 0.1
    progress.advance(1000)
    assert out.getvalue() == ""  # not yet: at most five redraws a second
    clock.now += 7.9
    progress.advance(411_000)
    assert (
        out.getvalue()
        == "\r  [##########              ]  41%  412,000/1,000,000 events  51,500 ev/s"
    )
    clock.now += 2
    assert progress.finish() == 10.0
    assert out.getvalue().endswith(
        "\r  [##########              ]  41%  412,000/1,000,000 events  41,200 ev/s\n"
    )


def test_progress_in_a_log_writes_a_line_every_few_seconds() -> None:
    out, clock = io.StringIO(), Clock()
    progress = Progress(10, out, tty=False, every_seconds=5, clock=clock)
    for _ in range(12):
        clock.now += 1
        progress.advance(1)
    progress.finish()
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and "\r" not in out.getvalue()
    assert lines[-1] == "  [########################] 100%  12/10 events  1 ev/s"


VIOLATIONS = [
    Violation("hash-chain", "UserSync-a", 2, "content does not match its hash"),
    Violation("outbox-age", "UserSync-b", None, "waited"),
]


def test_table_output() -> None:
    out = io.StringIO()
    writer = ViolationWriter(out, "table", "store")
    writer.tally.events, writer.tally.streams = 1200, 3
    for violation in VIOLATIONS:
        writer.emit(violation)
    writer.close()
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["RULE", "STREAM", "VERSION", "DETAIL"]
    assert lines[1].split(maxsplit=3) == ["hash-chain", "UserSync-a", "2", VIOLATIONS[0].detail]
    assert lines[2].split(maxsplit=3) == ["outbox-age", "UserSync-b", "-", "waited"]
    assert lines[3] == (
        "verified 1,200 events in 3 streams: 2 violations (hash-chain 1, outbox-age 1)"
    )


def test_clean_table_is_one_line_and_clean_json_is_empty() -> None:
    out = io.StringIO()
    ViolationWriter(out, "table", "kafka").close()
    assert (
        out.getvalue() == "verified 0 topic records against 0 events in 0 streams: no violations\n"
    )
    out = io.StringIO()
    ViolationWriter(out, "json", "store").close()
    body = json.loads(out.getvalue())
    assert body["violations"] == [] and body["summary"]["violations"] == 0


def test_json_output() -> None:
    out = io.StringIO()
    writer = ViolationWriter(out, "json", "store")
    for violation in VIOLATIONS:
        writer.emit(violation)
    writer.close()
    body = json.loads(out.getvalue())
    assert body["violations"] == [v.to_json() for v in VIOLATIONS]
    assert body["summary"]["by_rule"] == {"hash-chain": 1, "outbox-age": 1}


def test_time_zone_of_input_does_not_matter() -> None:
    east = datetime(2026, 1, 31, 10, 30, tzinfo=timezone(timedelta(hours=1)))
    assert iso_time(east.isoformat()) == iso_time("2026-01-31T09:30:00Z")
