"""Alembic environment: the URL comes from the Config built by `syncctl migrate`."""

from alembic import context
from sqlalchemy import create_engine

url = context.config.get_main_option("sqlalchemy.url")
assert url, "syncctl migrate sets sqlalchemy.url"
engine = create_engine(url)
with engine.connect() as connection:
    # Two processes migrating at once (two test runs, two `syncctl dev`) take turns.
    connection.exec_driver_sql("SELECT pg_advisory_lock(7204185)")
    connection.commit()
    context.configure(connection=connection, transactional_ddl=True)
    with context.begin_transaction():
        context.run_migrations()
    connection.exec_driver_sql("SELECT pg_advisory_unlock(7204185)")
    connection.commit()
engine.dispose()
