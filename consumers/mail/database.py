"""The mail tables' driver errors said one way (their engine is core.database.make_engine).

Its one error type is the core's StoreUnavailable, so the API answers 503.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy import exc as sa_exc

from core.store_errors import StoreUnavailable


class MailStoreUnavailable(StoreUnavailable):
    """The database holding accounts and messages cannot be reached or timed out."""


@contextmanager
def database_errors() -> Iterator[None]:
    """Connection failures and timeouts as MailStoreUnavailable; anything else as it is."""
    try:
        yield
    except (psycopg.OperationalError, sa_exc.OperationalError) as error:
        raise MailStoreUnavailable(f"mail database unavailable: {error}") from error
    except (sa_exc.TimeoutError, sa_exc.InterfaceError) as error:
        raise MailStoreUnavailable(f"mail database unavailable: {error}") from error
