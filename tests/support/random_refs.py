"""Random ids instead of cleanup: tests share a database and never collide."""

from uuid import uuid4


def random_user(prefix: str = "user") -> str:
    return f"{prefix}-{uuid4().hex[:12]}"


def random_name(prefix: str) -> str:
    return f"{prefix}_{uuid4().hex[:10]}"
