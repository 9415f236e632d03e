"""Alembic migrations of the event store and read models; run by `syncctl migrate`."""
