"""The database every side shares: engine construction and the translation of driver errors
into the store errors (core/store_errors.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg.errors
from sqlalchemy import Engine, create_engine, make_url
from sqlalchemy import exc as sa_exc

from core.store_errors import ConcurrencyConflict, StoreBusy, StoreUnavailable

STREAM_VERSION_CONSTRAINT = "events_stream_version_key"


def make_engine(url: str, pool_size: int = 20) -> Engine:
    """A fixed-size pool: no overflow, so connections are kept rather than churned.

    No pre-ping round trip per checkout: a connection broken by a server restart fails
    its command once (503, retry) and the pool invalidates it.
    """
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=5,
        pool_recycle=600,
        connect_args={"connect_timeout": 3},
    )


@contextmanager
def translated_errors() -> Iterator[None]:
    """Turn driver errors into StoreBusy, StoreUnavailable or ConcurrencyConflict."""
    try:
        yield
    except psycopg.errors.UniqueViolation as error:
        # Raised by the command path's psycopg cursor, not wrapped by SQLAlchemy.
        if error.diag.constraint_name == STREAM_VERSION_CONSTRAINT:
            raise ConcurrencyConflict(str(error)) from error
        raise
    except psycopg.errors.LockNotAvailable as error:
        raise StoreBusy("the user's stream is locked by another command") from error
    except psycopg.OperationalError as error:
        raise StoreUnavailable("database unavailable") from error
    except sa_exc.IntegrityError as error:
        constraint = getattr(getattr(error.orig, "diag", None), "constraint_name", None)
        if constraint == STREAM_VERSION_CONSTRAINT:
            raise ConcurrencyConflict(str(error.orig)) from error
        raise
    except sa_exc.OperationalError as error:
        if isinstance(error.orig, psycopg.errors.LockNotAvailable):
            raise StoreBusy("the user's stream is locked by another command") from error
        raise StoreUnavailable("database unavailable") from error
    except (sa_exc.TimeoutError, sa_exc.InterfaceError) as error:
        raise StoreUnavailable("database unavailable") from error


def libpq_url(sqlalchemy_url: str) -> str:
    """The same database as a plain libpq URL, for a dedicated psycopg connection."""
    url = make_url(sqlalchemy_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)
