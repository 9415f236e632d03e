"""Batches folded per user: one row write per user per batch, redelivery and gaps included."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import replace

import pytest
from sqlalchemy import Engine, text

from core.database import make_engine
from core.domain.events import (
    Envelope,
    FullSyncQueued,
    SyncCompleted,
    SyncExpired,
    SyncProgressed,
    SyncReused,
)
from core.kafka.event_source import Delivery
from projections.batches import apply_batch
from projections.store import ProjectionStore
from tests.integration.test_projector import (
    ProjectorThread,
    committed,
    event_count,
    fold_views,
    projected_views,
    random_workload,
    start_relay,
    stored_views,
    wait_for,
)
from tests.support.command_loop import command_store, run
from tests.support.random_refs import random_name, random_user

# Every row the views write, as the database sees it: an upsert its guard turns away
# writes nothing and fires nothing.
COUNT_WRITES = """
CREATE TABLE view_writes (view text NOT NULL, key text NOT NULL);
CREATE FUNCTION count_view_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO view_writes VALUES (TG_TABLE_NAME, TG_ARGV[0] || ':' ||
        CASE TG_TABLE_NAME WHEN 'sync_status' THEN NEW.user_id ELSE NEW.task_id END);
    RETURN NULL;
END $$;
CREATE TRIGGER status_written AFTER INSERT OR UPDATE ON sync_status
    FOR EACH ROW EXECUTE FUNCTION count_view_write('status');
CREATE TRIGGER task_written AFTER INSERT OR UPDATE ON sync_tasks
    FOR EACH ROW EXECUTE FUNCTION count_view_write('task');
"""


@pytest.fixture
def writes(database_url: str) -> Iterator[Engine]:
    """The test's own database, counting row writes to the views."""
    engine = make_engine(database_url, pool_size=4)
    with engine.begin() as conn:
        conn.exec_driver_sql(COUNT_WRITES)
    yield engine
    engine.dispose()


def taken_writes(engine: Engine) -> Counter[str]:
    """Writes since the last call, by view and key."""
    with engine.begin() as conn:
        rows = conn.execute(text("DELETE FROM view_writes RETURNING view, key")).all()
    return Counter(f"{view}/{key}" for view, key in rows)


def touched(envelopes: list[Envelope]) -> Counter[str]:
    """One write per user and one per task these events are about."""
    users = {e.user_id for e in envelopes}
    tasks = {e.data.task_id for e in envelopes}
    return Counter(
        [f"sync_status/status:{u}" for u in users] + [f"sync_tasks/task:{t}" for t in tasks]
    )


def deliveries(envelopes: list[Envelope]) -> list[Delivery]:
    return [Delivery(0, offset, e) for offset, e in enumerate(envelopes)]


def interleaved(streams: list[list[Envelope]]) -> list[Envelope]:
    """Round robin over users, each user's events in order, as on a topic."""
    longest = max(len(s) for s in streams)
    return [s[i] for i in range(longest) for s in streams if i < len(s)]


def test_a_batch_writes_one_row_per_user_and_task_however_many_events(
    writes: Engine, database_url: str
) -> None:
    users = [random_user() for _ in range(5)]
    random_workload(writes, users, commands=200, seed=17)
    store = command_store(writes)
    streams = [run(store.read_stream(user)) for user in users]
    assert all(len(s) >= 8 for s in streams)
    taken_writes(writes)
    projections = ProjectionStore(database_url)
    try:
        assert apply_batch(projections, deliveries(interleaved(streams))) == sum(map(len, streams))
    finally:
        projections.close()
    assert projected_views(writes, users) == stored_views(writes, users)
    # One write per user and per task touched, not one per event.
    assert taken_writes(writes) == touched([e for s in streams for e in s])


def test_redelivered_and_late_events_change_nothing_and_gaps_fill_from_the_store(
    writes: Engine, database_url: str
) -> None:
    a, b, c = users = [random_user() for _ in range(3)]
    random_workload(writes, users, commands=120, seed=23)
    store = command_store(writes)
    events = {user: run(store.read_stream(user)) for user in users}
    assert all(len(e) >= 9 for e in events.values())
    taken_writes(writes)
    projections = ProjectionStore(database_url)
    try:
        # a: 1..5 in order; b: 4..6 with 1..3 missing; c: 2 with 1 missing.
        first = interleaved([events[a][:5], events[b][3:6], events[c][1:2]])
        assert apply_batch(projections, deliveries(first)) == 5 + 6 + 2
        applied = events[a][:5] + events[b][:6] + events[c][:2]
        assert projected_views(writes, users) == fold_views(applied)
        assert taken_writes(writes) == touched(applied)
        # The same batch again, b's late 1..3 and a's next three: only a's three are new.
        second = first + events[b][:3] + events[a][5:8]
        assert apply_batch(projections, deliveries(second)) == 3
        assert taken_writes(writes) == touched(events[a][5:8])
        # Everything, shuffled by user, redelivered twice in one batch.
        everything = interleaved(list(events.values()))
        new = len(everything) - 8 - 6 - 2
        assert apply_batch(projections, deliveries(everything + everything)) == new
    finally:
        projections.close()
    assert projected_views(writes, users) == stored_views(writes, users)


def test_a_backlog_is_applied_in_batches_folded_per_user(
    writes: Engine, database_url: str, kafka_bootstrap: str
) -> None:
    topic, group = random_name("events"), random_name("group")
    users = [random_user() for _ in range(4)]
    relay = start_relay(writes, database_url, kafka_bootstrap, topic)
    try:
        random_workload(writes, users, commands=240, seed=29)
        wait_for(lambda: _outbox_empty(writes), what="the relay")
    finally:
        relay.close()
    total = event_count(writes)
    taken_writes(writes)
    projector = ProjectorThread(database_url, kafka_bootstrap, topic, group)
    try:
        expected = stored_views(writes, users)
        wait_for(lambda: projected_views(writes, users) == expected, what="the backlog")
        wait_for(lambda: committed(kafka_bootstrap, topic, group) == total, what="offsets")
    finally:
        projector.close()
    assert projector.projector.applied == total
    # A backlog arrives many events per user to a poll: far fewer row writes than events.
    status_writes = sum(n for key, n in taken_writes(writes).items() if key.startswith("sync_s"))
    assert len(users) <= status_writes < total / 4


def _outbox_empty(engine: Engine) -> bool:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM outbox")).scalar_one()) == 0


def test_rows_changed_by_another_writer_are_read_again_not_taken_from_memory(
    writes: Engine, database_url: str
) -> None:
    edited, taken_over, untouched = users = [random_user() for _ in range(3)]
    random_workload(writes, users, commands=150, seed=31)
    store = command_store(writes)
    events = {user: run(store.read_stream(user)) for user in users}
    assert all(len(e) >= 12 for e in events.values())
    # The edited user's next event leaves error_message alone (no start, failure or cancel).
    keeps = (SyncReused, SyncProgressed, SyncCompleted, SyncExpired, FullSyncQueued)
    cut = next(n for n, e in enumerate(events[edited]) if n >= 4 and isinstance(e.data, keeps))
    projections, other = ProjectionStore(database_url), ProjectionStore(database_url)
    try:
        first = interleaved([events[edited][:cut], events[taken_over][:4], events[untouched][:4]])
        assert apply_batch(projections, deliveries(first)) == cut + 8
        assert len(projections.written) == 3  # remembered, so the next batch reads less

        # An operator's edit that keeps last_version: the next event folds onto the row the
        # database holds, as it would in a projector that remembers nothing.
        with writes.begin() as conn:
            conn.execute(
                text("UPDATE sync_status SET error_message = 'edited' WHERE user_id = :u"),
                {"u": edited},
            )
        # Another projector holds a partition for a while (a rebalance) and goes further.
        assert apply_batch(other, deliveries(events[taken_over][4:8])) == 4

        # Back here: the taken-over user's 5..8 arrive again, with what is new.
        second = interleaved(
            [events[edited][cut : cut + 1], events[taken_over][4:10], events[untouched][4:9]]
        )
        assert apply_batch(projections, deliveries(second)) == 1 + 2 + 5
    finally:
        projections.close()
        other.close()
    row = projected_views(writes, [edited])[0][edited]
    assert row.error_message == "edited"
    assert row == replace(fold_views(events[edited][: cut + 1])[0][edited], error_message="edited")
    done = events[taken_over][:10] + events[untouched][:9]
    assert projected_views(writes, users[1:]) == fold_views(done)
