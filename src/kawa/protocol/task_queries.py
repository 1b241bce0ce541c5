"""Answers about tasks that are not tasks: counts by state, and what a submission would do."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from kawa.protocol.common import WireModel


class TaskCounts(WireModel):
    """How many tasks the caller may see, by state (states with none are left out)."""

    by_state: dict[str, int]
    total: int


class DryRunTask(WireModel):
    """What would happen to one task of a submission if it were made now."""

    target: str | None = Field(description="the task's target as given; None: auto-placed")
    node: str | None = Field(description="where it would start (or the node it waits for)")
    starts_now: bool
    message: str = Field(description="'starts now on node2' or 'waits: <why>'")


class DryRunResponse(WireModel):
    """One entry per task the submission would create, in submission order. Nothing is
    stored; the answer holds for the cluster as it was when asked."""

    tasks: list[DryRunTask]


class WaitFor(StrEnum):
    """What a long-poll on one task waits for: ``started`` (it no longer waits to start:
    it runs, or ended without running) or ``done`` (it will not move on by itself)."""

    STARTED = "started"
    DONE = "done"
