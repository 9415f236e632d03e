"""Kafka adapters: the relay's idempotent publisher and topic setup."""
