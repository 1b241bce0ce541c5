"""/api/v1/batches: a batch's tasks read together."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Path
from fastapi.responses import StreamingResponse

from kawa.host.deps import HostDep, UserDep
from kawa.host.log_service import check_stream
from kawa.host.routes.responses import BYTES
from kawa.host.routes.tasks import Word
from kawa.protocol.bounds import MAX_ID

router = APIRouter(prefix="/batches", tags=["tasks"])
BatchPath = Annotated[int, Path(ge=0, le=MAX_ID, description="a batch id")]


@router.get("/{batch_id}/logs", response_class=StreamingResponse, responses=BYTES)
async def logs(
    batch_id: BatchPath, host: HostDep, who: UserDep, stream: Word = "stdout"
) -> StreamingResponse:
    """The output of the batch's command tasks the caller may see, as it is now: each
    task that has started, oldest first, every line prefixed with ``[LABEL] `` (its
    sweep values, else its target, else its id); at most 64 MiB of whole lines."""
    check_stream(stream)
    owner = None if who.is_admin else who.user
    tasks = await asyncio.to_thread(host.batch_logs.tasks, batch_id, owner)
    body = host.batch_logs.merged(tasks, stream)
    return StreamingResponse(body, media_type="application/octet-stream")
