"""The host's threads and garbage collector, as set once its loop runs."""

from __future__ import annotations

import asyncio
import gc
import sys

import anyio.to_thread

from kawa.host.events import EventBus
from kawa.host.worker_threads import GC_THRESHOLDS, SWITCH_INTERVAL, bind_worker_threads


def test_binding_sizes_the_pools_and_tunes_the_interpreter() -> None:
    thresholds, interval = gc.get_threshold(), sys.getswitchinterval()

    async def bind() -> tuple[float, int]:
        bind_worker_threads(EventBus(), 3)
        tokens = anyio.to_thread.current_default_thread_limiter().total_tokens
        return sys.getswitchinterval(), int(tokens)

    try:
        sys.setswitchinterval(0.005)  # Python's defaults, whatever ran before in this process
        gc.set_threshold(700, 10, 10)
        switch, tokens = asyncio.run(bind())
        assert tokens == 3
        assert switch == SWITCH_INTERVAL < 0.005
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
        sys.setswitchinterval(interval)
