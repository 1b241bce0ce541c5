"""What a submission becomes: one task per target, or per sweep combination."""

from __future__ import annotations

import pytest

from kawa.core.targets import TargetSpec
from kawa.core.task_states import TaskKind
from kawa.host.errors import BadRequest
from kawa.host.task_service import batch_members
from kawa.protocol.tasks import TaskSpec


def test_without_sweep_one_member_per_target_as_given() -> None:
    spec = TaskSpec(command=["echo", "span:[a,b]"], name="n", env={"A": "1"})
    targets: list[TargetSpec | None] = [TargetSpec.parse("n1"), TargetSpec.parse("n1")]
    members = batch_members(spec, targets, 10)
    assert [(str(m.target), m.command, m.name, m.env) for m in members] == [
        ("n1", ["echo", "span:[a,b]"], "n", {"A": "1"})
    ] * 2


def test_a_sweep_deals_combinations_to_the_targets_in_turn() -> None:
    spec = TaskSpec(command=["run", "span:{1..2}", "span:[x,y z]"], sweep=True, env={"A": "1"})
    targets: list[TargetSpec | None] = [TargetSpec.parse("n1"), TargetSpec.parse("n2:0")]
    members = batch_members(spec, targets, 10)
    assert [str(m.target) for m in members] == ["n1", "n2:0", "n1", "n2:0"]
    assert [m.command for m in members] == [
        ["run", "1", "x"], ["run", "1", "y z"], ["run", "2", "x"], ["run", "2", "y z"]
    ]  # fmt: skip
    assert [m.name for m in members] == [
        "sweep[1 x]",
        "sweep[1 'y z']",
        "sweep[2 x]",
        "sweep[2 'y z']",
    ]
    assert members[1].env == {"A": "1", "KAWA_SWEEP_INDEX": "1", "KAWA_SWEEP_ARGS": "1 'y z'"}


def test_long_combinations_are_cut_to_fit_a_name() -> None:
    spec = TaskSpec(command=["run", "span:[" + "v" * 300 + "]"], sweep=True, name="grid")
    (member,) = batch_members(spec, [None], 10)
    assert member.name is not None and len(member.name) == 128
    assert member.name.startswith("grid[vvv") and member.name.endswith("…")
    assert member.env["KAWA_SWEEP_ARGS"] == "v" * 300


@pytest.mark.parametrize(
    ("command", "limit", "mentions"),
    [
        (["echo", "plain"], 10, "--sweep needs a span:"),
        (["echo", "span:{1..11}"], 10, "11 combinations, more than the limit of 10"),
        (["echo", "span:[a"], 10, "span:[ is not closed"),
    ],
)
def test_bad_sweeps_are_refused(command: list[str], limit: int, mentions: str) -> None:
    with pytest.raises(BadRequest) as raised:
        batch_members(TaskSpec(command=command, sweep=True), [None], limit)
    assert mentions in str(raised.value)


def test_a_vps_cannot_sweep() -> None:
    with pytest.raises(BadRequest, match="command tasks only"):
        batch_members(TaskSpec(kind=TaskKind.VPS, sweep=True), [None], 10)
