"""The mail tables' own way to the database: an engine, and driver errors said one way.

`mail` is used by the API and by the worker, so it does not reach into the coordinator's
adapters; its one error type is the coordinator's port error, so the API answers 503.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy import Engine, create_engine
from sqlalchemy import exc as sa_exc

from core.store_errors import StoreUnavailable


class MailStoreUnavailable(StoreUnavailable):
    """The database holding accounts and messages cannot be reached or timed out."""


def mail_engine(url: str, pool_size: int) -> Engine:
    """A fixed-size pool, connections kept (as the coordinator's engines are)."""
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=5,
        pool_recycle=600,
        connect_args={"connect_timeout": 3},
    )


@contextmanager
def database_errors() -> Iterator[None]:
    """Connection failures and timeouts as MailStoreUnavailable; anything else as it is."""
    try:
        yield
    except (psycopg.OperationalError, sa_exc.OperationalError) as error:
        raise MailStoreUnavailable(f"mail database unavailable: {error}") from error
    except (sa_exc.TimeoutError, sa_exc.InterfaceError) as error:
        raise MailStoreUnavailable(f"mail database unavailable: {error}") from error
