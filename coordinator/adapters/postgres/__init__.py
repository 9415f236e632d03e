"""PostgreSQL adapters: event store, outbox and the relay's leader lock."""
