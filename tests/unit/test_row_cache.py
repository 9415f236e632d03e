"""The rows a projector remembers: used only while the database shows its own write."""

from __future__ import annotations

from projections.row_cache import RowCache, Written
from projections.status_view import StatusRow


def written(user: str, version: int, xid: int) -> Written:
    return Written(StatusRow(user_id=user, status="running", last_version=version), {}, xid)


def test_an_entry_is_found_only_for_the_version_and_transaction_that_wrote_it() -> None:
    cache = RowCache()
    entry = written("u1", 7, xid=1001)
    cache.remember([entry])
    assert cache.find("u1", 7, 1001) is entry
    assert cache.find("u1", 7, 1002) is None  # someone rewrote the row at the same version
    assert cache.find("u1", 8, 1001) is None  # someone moved it on
    assert cache.find("u2", 7, 1001) is None
    newer = written("u1", 9, xid=1005)
    cache.remember([newer])
    assert cache.find("u1", 9, 1005) is newer
    assert cache.find("u1", 7, 1001) is None


def test_beyond_capacity_the_users_written_longest_ago_are_forgotten() -> None:
    cache = RowCache(capacity=3)
    cache.remember([written(u, 1, 10) for u in ("a", "b", "c")])
    cache.remember([written("a", 2, 11)])  # a written again: now the most recent
    cache.remember([written("d", 1, 12)])
    assert len(cache) == 3
    assert cache.find("b", 1, 10) is None
    assert [
        cache.find(u, v, x) is not None for u, v, x in [("c", 1, 10), ("a", 2, 11), ("d", 1, 12)]
    ] == [
        True,
        True,
        True,
    ]
    cache.clear()
    assert len(cache) == 0
