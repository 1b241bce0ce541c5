"""A token removed from the database stops opening the API (the host re-reads checked
tokens after a bounded time instead of trusting them for ever). Real SQLite."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import delete

from kawa.host.auth import Authenticator
from kawa.host.errors import Unauthorized
from kawa.store.database import make_engine, migrate, session_factory, sqlite_url
from kawa.store.models import ApiToken


def test_a_removed_token_is_refused_after_the_recheck_time(tmp_path: Path) -> None:
    engine = make_engine(sqlite_url(tmp_path / "kawa.db"))
    migrate(engine)
    sessions = session_factory(engine)
    auth = Authenticator(sessions, "secret", recheck_after=0.2)
    token = auth.create_token("rita", "user")
    header = f"Bearer {token}"
    assert auth.user(header).user == "rita"
    with sessions.begin() as s:
        s.execute(delete(ApiToken).where(ApiToken.user == "rita"))
    deadline = time.monotonic() + 10
    while True:  # trusted from the cache at first, refused once it is read again
        try:
            auth.user(header)
        except Unauthorized as exc:
            assert "invalid token" in str(exc.detail)
            break
        assert time.monotonic() < deadline, "the removed token still opens the API"
        time.sleep(0.05)
    with pytest.raises(Unauthorized):  # and stays refused
        auth.user(header)


def test_a_checked_token_is_trusted_until_the_recheck_time(tmp_path: Path) -> None:
    engine = make_engine(sqlite_url(tmp_path / "kawa.db"))
    migrate(engine)
    sessions = session_factory(engine)
    auth = Authenticator(sessions, "secret", recheck_after=3600)
    token = auth.create_token("sam", "viewer")
    assert auth.user(f"Bearer {token}").role == "viewer"
    with sessions.begin() as s:
        s.execute(delete(ApiToken).where(ApiToken.user == "sam"))
    assert auth.user(f"Bearer {token}").role == "viewer"  # no database read per request
