"""The outbox relay: moves committed events from PostgreSQL to Kafka."""
