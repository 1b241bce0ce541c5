"""A fresh PostgreSQL database per test on the suite's server (KAWA_TEST_POSTGRES_URL,
which scripts/test.sh starts): missing, such a test fails under CI=true, else skips."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

from kawa.store.advisory_lock import libpq_url


def postgres_url() -> str:
    """The suite's PostgreSQL server URL, or fail (CI) / skip (elsewhere)."""
    url = os.environ.get("KAWA_TEST_POSTGRES_URL")
    if url:
        return url
    problem = "KAWA_TEST_POSTGRES_URL is not set (scripts/test.sh starts a PostgreSQL)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{problem}; CI=true: PostgreSQL tests must run")
    pytest.skip(problem)


@contextmanager
def fresh_database() -> Iterator[str]:
    """The URL of a new, empty database on that server, dropped afterwards."""
    server = libpq_url(postgres_url())
    name = "kawa_" + secrets.token_hex(6)
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = server.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
