"""API tokens (users) and the cluster secret (runners)."""

from __future__ import annotations

import getpass
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from kawa.host.audit import record
from kawa.host.errors import Unauthorized
from kawa.store.database import writing
from kawa.store.models import ApiToken

ROLES = ("viewer", "user", "admin")


@dataclass(frozen=True)
class Principal:
    """Who asks: the token's user and role, the token's id (None without a token: the
    host's own CLI) and the caller's address (``local`` for that CLI)."""

    user: str
    role: str
    token_id: int | None = None
    address: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def local_principal() -> Principal:
    """Someone with the host's database at hand (``kawa init token``, ``kawa up``)."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no login name for this uid
        name = "unknown"
    return Principal(name, "local", None, "local")


def new_token() -> str:
    return "kawa_" + secrets.token_urlsafe(32)


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def bearer(header: str | None) -> str:
    if not header or not header.startswith("Bearer ") or not header[7:].strip():
        raise Unauthorized("missing credentials: send 'Authorization: Bearer <token>'")
    return header[7:].strip()


RECHECK_AFTER = 10.0
"""Seconds a checked token is trusted before the database is asked again."""
CACHE_MAX = 10_000
"""Checked tokens kept at most (the cache starts over when full)."""


class Authenticator:
    """Checks user tokens against the database and runner calls against the secret."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        cluster_secret: str,
        recheck_after: float = RECHECK_AFTER,
    ) -> None:
        if not cluster_secret:
            raise ValueError("the host needs a cluster_secret")
        self._sessions = sessions
        self._secret = cluster_secret.encode()
        self.recheck_after = recheck_after
        self._cache: dict[str, tuple[float, Principal]] = {}
        """Token hash -> (when it was read, who it is): a token removed from the database
        stops working within ``recheck_after`` seconds."""

    def create_token(
        self, user: str, role: str, token: str | None = None, by: Principal | None = None
    ) -> str:
        """A new token for ``user`` (recorded in the audit log as made ``by``, default:
        whoever runs this process on the host)."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
        token = token or new_token()
        with writing(self._sessions) as s:
            row = ApiToken(
                token_hash=hash_token(token), user=user, role=role, created_at=datetime.now(UTC)
            )
            s.add(row)
            s.flush()
            record(s, by or local_principal(), "token.create", user, f"token {row.id}, role {role}")
        return token

    def tokens(self) -> list[tuple[int, str, str, datetime]]:
        """Every API token as (id, user, role, created at), oldest first; never the
        token itself (only its hash is stored)."""
        with self._sessions() as s:
            rows = s.execute(
                select(ApiToken.id, ApiToken.user, ApiToken.role, ApiToken.created_at)
                .order_by(ApiToken.id)
            ).all()
        return [(r.id, r.user, r.role, r.created_at) for r in rows]

    def revoke_token(self, token_id: int, by: Principal | None = None) -> tuple[str, str]:
        """Remove token ``token_id`` (audited as done ``by``, default: whoever runs this
        process on the host); its (user, role). A host that checked it lately goes on
        accepting it for at most ``recheck_after`` seconds. ``LookupError`` when there
        is no such token."""
        with writing(self._sessions) as s:
            row = s.get(ApiToken, token_id)
            if row is None:
                raise LookupError(f"no API token with id {token_id}")
            user, role = row.user, row.role
            s.delete(row)
            what = f"token {token_id}, role {role}"
            record(s, by or local_principal(), "token.revoke", user, what)
        return user, role

    def known(self, header: str | None) -> Principal | None:
        """The token's owner when checked lately (no database read), else None."""
        cached = self._cache.get(hash_token(bearer(header)))
        if cached is not None and time.monotonic() - cached[0] < self.recheck_after:
            return cached[1]
        return None

    def user(self, header: str | None) -> Principal:
        digest = hash_token(bearer(header))
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and now - cached[0] < self.recheck_after:
            return cached[1]
        with self._sessions() as s:
            row = s.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
        if row is None:
            self._cache.pop(digest, None)
            raise Unauthorized("invalid token")
        if len(self._cache) >= CACHE_MAX:
            self._cache.clear()
        found = Principal(row.user, row.role, row.id)
        self._cache[digest] = (now, found)
        return found

    def runner(self, header: str | None) -> None:
        if not hmac.compare_digest(bearer(header).encode(), self._secret):
            raise Unauthorized("invalid cluster secret")
