"""Snowflake-style ids: layout, monotonicity under a hostile clock, decoding."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kawa.core.ids import KAWA_EPOCH_MS, IdGenerator, id_time, id_worker

PROPERTY = settings(max_examples=200, deadline=None, database=None)
EPOCH = KAWA_EPOCH_MS / 1000


def clock_of(times: list[float]) -> Callable[[], float]:
    """A clock that returns ``times`` in turn, then repeats the last one."""
    values: Iterator[float] = iter(times)
    last = [times[0]]

    def clock() -> float:
        last[0] = next(values, last[0])
        return last[0]

    return clock


def test_epoch_is_2024_01_01_utc() -> None:
    assert KAWA_EPOCH_MS == 1704067200000


def test_layout() -> None:
    generator = IdGenerator(worker=5, clock=lambda: EPOCH + 1.234)
    first = generator.next()
    assert first == (1234 << 22) | (5 << 12)
    assert generator.next() == first + 1
    assert id_worker(first) == 5
    assert id_time(first) == pytest.approx(EPOCH + 1.234)


def test_id_time_of_a_fresh_id() -> None:
    now = 1_750_000_000.5
    assert id_time(IdGenerator(clock=lambda: now).next()) == pytest.approx(now, abs=1e-3)


def test_sequence_overflow_borrows_the_next_millisecond() -> None:
    generator = IdGenerator(worker=1023, clock=lambda: EPOCH + 10.0)
    ids = [generator.next() for _ in range(4097)]
    assert ids == sorted(set(ids))
    assert id_time(ids[4095]) == pytest.approx(EPOCH + 10.0)
    assert id_time(ids[4096]) == pytest.approx(EPOCH + 10.001)
    assert all(id_worker(i) == 1023 for i in ids)


def test_clock_going_backwards_keeps_ids_increasing() -> None:
    generator = IdGenerator(clock=clock_of([EPOCH + 100, EPOCH + 50, EPOCH + 101]))
    a, b, c = generator.next(), generator.next(), generator.next()
    assert a < b < c
    assert id_time(b) == pytest.approx(EPOCH + 100)


def test_clock_before_the_epoch_still_gives_valid_ids() -> None:
    generator = IdGenerator(clock=lambda: 0.0)
    a, b = generator.next(), generator.next()
    assert 0 <= a < b


def test_ids_from_two_workers_differ() -> None:
    a = IdGenerator(worker=1, clock=lambda: EPOCH + 5).next()
    b = IdGenerator(worker=2, clock=lambda: EPOCH + 5).next()
    assert a != b
    assert (id_worker(a), id_worker(b)) == (1, 2)


@pytest.mark.parametrize("worker", [-1, 1024, 5000])
def test_worker_out_of_range_is_rejected(worker: int) -> None:
    with pytest.raises(ValueError, match=str(worker)):
        IdGenerator(worker=worker)


@pytest.mark.parametrize("bad", [-1, 1 << 63])
def test_id_time_rejects_non_ids(bad: int) -> None:
    with pytest.raises(ValueError, match="64-bit"):
        id_time(bad)


def test_running_past_41_bits_is_an_error() -> None:
    generator = IdGenerator(clock=lambda: EPOCH + (1 << 41) / 1000)
    with pytest.raises(OverflowError):
        generator.next()


def test_threads_never_share_an_id() -> None:
    generator = IdGenerator(clock=lambda: EPOCH + 1)
    minted: list[list[int]] = [[] for _ in range(4)]

    def work(out: list[int]) -> None:
        out.extend(generator.next() for _ in range(2000))

    threads = [threading.Thread(target=work, args=(out,)) for out in minted]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [i for out in minted for i in out]
    assert len(set(every)) == len(every) == 8000
    assert all(out == sorted(out) for out in minted)


# A hostile clock: frozen stretches, jumps back and forward, sub-millisecond jitter.
CLOCK_STEPS = st.lists(
    st.one_of(
        st.just(0.0),
        st.floats(min_value=-3600, max_value=3600, allow_nan=False),
        st.floats(min_value=-0.002, max_value=0.002, allow_nan=False),
    ),
    min_size=1,
    max_size=300,
)


@PROPERTY
@given(
    start=st.floats(min_value=EPOCH, max_value=EPOCH + 10**8, allow_nan=False),
    steps=CLOCK_STEPS,
    worker=st.integers(min_value=0, max_value=1023),
    repeats=st.integers(min_value=1, max_value=20),
)
def test_ids_strictly_increase_whatever_the_clock_does(
    start: float, steps: list[float], worker: int, repeats: int
) -> None:
    times: list[float] = []
    now = start
    for step in steps:
        now += step
        times.extend([now] * repeats)
    generator = IdGenerator(worker=worker, clock=clock_of(times))
    ids = [generator.next() for _ in times]
    assert all(a < b for a, b in itertools.pairwise(ids))
    assert all(id_worker(i) == worker for i in ids)
    assert all(0 <= i < 1 << 63 for i in ids)
    # An id never claims a time earlier than the latest clock reading seen so far.
    assert id_time(ids[-1]) >= max(times) - 0.001
