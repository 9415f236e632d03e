"""Helpers the tests share: services, stored histories, the command loop, peers."""
