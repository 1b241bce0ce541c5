"""Alembic environment: runs on the connection handed over by kawa.store.database.migrate."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from kawa.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # `alembic revision --autogenerate` from a developer's shell
    url = context.config.get_main_option("sqlalchemy.url") or "sqlite:///:memory:"
    connection = create_engine(url).connect()

context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
