"""Instances of frozen dataclasses built from their field values, without their __init__.

A frozen dataclass's __init__ sets each field through object.__setattr__. On the hot paths
(decoding every consumed event, folding and reading back every projected row) that was the
largest single cost, so the decoders and the folds fill the instance's __dict__ directly.
The values must be every field, each already of its type, in the fields' order: rows are
written positionally from their __dict__ (projections/store.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")


def frozen_from_fields(cls: type[T], values: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> T:
    """An instance of `cls` holding exactly these (name, value) pairs."""
    instance = object.__new__(cls)
    instance.__dict__.update(values)
    return instance
