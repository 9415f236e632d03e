"""The migrations create each view with exactly the columns and types the projector writes."""

from __future__ import annotations

from sqlalchemy import Engine, text

from projections.store import STATUS_TYPES, TASK_TYPES

# information_schema's names for the types store.py writes with.
SQL_NAMES = {"timestamptz": "timestamp with time zone"}


def test_the_migrated_tables_match_the_projections_columns(engine: Engine) -> None:
    for table, types in (("sync_status", STATUS_TYPES), ("sync_tasks", TASK_TYPES)):
        with engine.connect() as conn:
            rows = conn.execute(
                text(
                    "SELECT column_name, data_type FROM information_schema.columns "
                    "WHERE table_schema = 'public' AND table_name = :table"
                ),
                {"table": table},
            ).all()
        found = {name: data_type for name, data_type in rows}
        wanted = {name: SQL_NAMES.get(kind, kind) for name, kind in types.items()}
        assert found == wanted, table
