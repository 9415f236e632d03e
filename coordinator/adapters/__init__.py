"""Adapters: one package per technology, wired together in bootstrap.py."""
