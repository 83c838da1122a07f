"""Alembic environment: migrations run against the URL that ``api.db.upgrade`` sets."""

from alembic import context
from sqlalchemy import create_engine

from api.db import metadata

url = context.config.get_main_option("sqlalchemy.url")
assert url is not None
engine = create_engine(url)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=metadata,
                      render_as_batch=url.startswith("sqlite"))
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
