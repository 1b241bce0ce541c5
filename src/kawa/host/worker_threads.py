"""The worker threads that run the host's database work, off the event loop.

Routes that only touch the database are plain functions, which FastAPI runs in anyio's
threadpool; services hand their database steps to ``asyncio.to_thread``. Both pools are
sized here, once the loop runs, and the event bus learns which loop serves subscribers.
Python runs one thread at a time: every busy worker takes turns with the event loop, so
the pools are kept small and the rest of the calls wait for a thread. A full pass of
the garbage collector stops every thread, the loop's too, whichever thread starts it:
what exists once the host has started (modules, models, routes) is left out of them."""

from __future__ import annotations

import asyncio
import gc
import sys
from concurrent.futures import ThreadPoolExecutor

import anyio.to_thread

from kawa.host.events import EventBus

SWITCH_INTERVAL = 0.001
"""Seconds a busy thread keeps the interpreter before another may take it (Python's
default is 0.005). The loop answers a request in well under a millisecond; behind a
worker thread busy with a heartbeat or a scheduling pass it would wait up to the whole
interval each time it needs the interpreter back, which is what a listing's slowest
answers were made of under load."""
GC_THRESHOLDS = (50_000, 20, 20)
"""Allocations before the garbage collector's youngest pass, and passes of each
generation before the next one's (Python's default is 700, 10, 10). With the default, a
500-node host ran a full pass some 46 times in a two-minute benchmark, each stopping
every thread for 50 to 800 ms; with these, once. What cyclic garbage waits meanwhile is
bounded by the first number of objects."""


def bind_worker_threads(bus: EventBus, threads: int) -> None:
    """Size both pools to ``threads``, bind ``bus`` to the running loop, keep what
    exists now out of the garbage collector's passes, make those passes rarer and shorten
    the switch interval."""
    loop = asyncio.get_running_loop()
    anyio.to_thread.current_default_thread_limiter().total_tokens = threads
    loop.set_default_executor(ThreadPoolExecutor(threads, thread_name_prefix="kawa-db"))
    bus.bind(loop)
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    sys.setswitchinterval(SWITCH_INTERVAL)
