"""Alembic environment: runs on the connection handed over by ``dlq._db.migrate``."""

from alembic import context
from sqlalchemy import create_engine

from dlq._db import SQLModel

target_metadata = SQLModel.metadata
connection = context.config.attributes.get("connection")

if connection is None:
    # `alembic -x url=...` from the command line
    url = context.get_x_argument(as_dictionary=True).get("url")
    if not url:
        raise SystemExit("usage: alembic -x url=<database URL> upgrade head")
    engine = create_engine(url)
    with engine.begin() as connection:
        context.configure(
            connection=connection, target_metadata=target_metadata, render_as_batch=True
        )
        context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    context.run_migrations()
