"""Join tokens: made by admins, traded by a new node for the runner's credentials.

Only a token's SHA-256 is stored. A token names its cluster in clear
(``kawajoin.<cluster id>.<secret>``) so a token of another cluster is told apart from a
mistyped one. A use is counted by one conditional UPDATE, so two nodes racing for the
last use of a token cannot both win it.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session, sessionmaker

from kawa.host.audit import record
from kawa.host.auth import Principal, hash_token
from kawa.host.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized
from kawa.host.views import aware
from kawa.protocol.join import (
    JOIN_TOKEN_PREFIX,
    PROTOCOL_VERSION,
    JoinAccepted,
    JoinRequest,
    JoinTokenCreate,
    JoinTokenCreated,
    JoinTokenView,
    token_cluster,
)
from kawa.store.database import writing
from kawa.store.models import JoinToken


def new_join_token(cluster_id: str) -> str:
    return f"{JOIN_TOKEN_PREFIX}.{cluster_id}.{secrets.token_hex(20)}"


def token_state(row: JoinToken, now: datetime) -> str:
    if row.revoked:
        return "revoked"
    if aware(row.expires_at) <= now:
        return "expired"
    if row.used >= row.uses:
        return "used up"
    return "valid"


def _view(row: JoinToken, now: datetime) -> JoinTokenView:
    return JoinTokenView(
        id=row.id,
        created_at=aware(row.created_at),
        expires_at=aware(row.expires_at),
        uses=row.uses,
        used=row.used,
        revoked=row.revoked,
        created_by=row.created_by,
        note=row.note,
        state=token_state(row, now),
    )


class JoinService:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        cluster_id: str,
        cluster_secret: str,
        heartbeat_interval: float,
    ) -> None:
        self.sessions = sessions
        self.cluster_id = cluster_id
        self._secret = cluster_secret
        self._heartbeat_interval = heartbeat_interval

    def create(self, spec: JoinTokenCreate, who: Principal) -> JoinTokenCreated:
        now = datetime.now(UTC)
        token = new_join_token(self.cluster_id)
        with writing(self.sessions) as s:
            row = JoinToken(
                token_hash=hash_token(token),
                created_at=now,
                expires_at=now + timedelta(seconds=spec.ttl),
                uses=spec.uses,
                used=0,
                revoked=False,
                created_by=who.user[:64],
                note=spec.note,
            )
            s.add(row)
            s.flush()
            detail = f"ttl {spec.ttl:g}s, {spec.uses} use(s)"
            record(s, who, "join_token.create", f"join token {row.id}", detail)
            return JoinTokenCreated(token=token, view=_view(row, now))

    def list(self) -> list[JoinTokenView]:
        now = datetime.now(UTC)
        with self.sessions() as s:
            return [_view(r, now) for r in s.scalars(select(JoinToken).order_by(JoinToken.id))]

    def revoke(self, token_id: int, who: Principal) -> JoinTokenView:
        with writing(self.sessions) as s:
            row = s.get(JoinToken, token_id)
            if row is None:
                raise NotFound(f"no join token with id {token_id}")
            row.revoked = True
            record(s, who, "join_token.revoke", f"join token {token_id}")
            return _view(row, datetime.now(UTC))

    def exchange(self, req: JoinRequest, address: str | None) -> JoinAccepted:
        """The runner's credentials for a valid token (one use counted), else a clear
        refusal that changes nothing."""
        if req.protocol_version != PROTOCOL_VERSION:
            older = "the joining node" if req.protocol_version < PROTOCOL_VERSION else "this host"
            raise Conflict(
                f"protocol mismatch: this host speaks Kawa protocol {PROTOCOL_VERSION}, the "
                f"joining node {req.protocol_version} ({older} is older): install the same "
                "Kawa release on both"
            )
        cluster = token_cluster(req.token)
        if cluster is None:
            raise BadRequest(
                f"not a join token: they look like {JOIN_TOKEN_PREFIX}.<cluster id>.<secret> "
                "(`kawa join-token create` on the host makes one)"
            )
        if cluster != self.cluster_id:
            raise Forbidden(
                f"this join token is for cluster {cluster}, but this host runs cluster "
                f"{self.cluster_id}: ask this cluster's admin for a token"
            )
        digest = hash_token(req.token.strip())
        now = datetime.now(UTC)
        with writing(self.sessions) as s:
            row = s.scalar(select(JoinToken).where(JoinToken.token_hash == digest))
            if row is None:
                raise Unauthorized("unknown join token (it was never made on this cluster)")
            state = token_state(row, now)
            if state != "valid":
                raise Unauthorized(_refusal(row, state))
            taken: CursorResult[tuple[()]] = s.execute(  # type: ignore[assignment]
                update(JoinToken)
                .where(
                    JoinToken.id == row.id,
                    JoinToken.used < JoinToken.uses,
                    JoinToken.revoked.is_(False),
                )
                .values(used=JoinToken.used + 1)
            )
            if taken.rowcount != 1:
                raise Unauthorized(_refusal(row, "used up"))
            who = Principal(f"join token {row.id}", "runner", None, address)
            record(s, who, "node.join", req.name, f"join token {row.id}")
        return JoinAccepted(
            cluster_id=self.cluster_id,
            cluster_secret=self._secret,
            protocol_version=PROTOCOL_VERSION,
            heartbeat_interval=self._heartbeat_interval,
        )


def _refusal(row: JoinToken, state: str) -> str:
    if state == "revoked":
        return f"join token {row.id} was revoked: ask for a new one"
    if state == "expired":
        at = aware(row.expires_at).strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"join token {row.id} expired at {at}: ask for a new one"
    return f"join token {row.id} is used up ({row.uses} of {row.uses} uses): ask for a new one"
