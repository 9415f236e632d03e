"""Stores kept in process memory: the same contracts as PostgreSQL's, for fast tests."""
