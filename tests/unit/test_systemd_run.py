"""The command lines of native tasks: ``systemd-run --scope`` where systemd is PID 1, and
the wrapper both paths share."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from kawa.protocol.runner_api import RunTask
from kawa.runner.native_command import (
    WRAPPER,
    RunAs,
    inner_command,
    read_status,
    systemd_run_command,
    task_environment,
    unit_name,
    wrapped,
)
from tests.support import run_order

STATUS = Path("/var/lib/kawa-runner/native/42.status")


def order(**fields: Any) -> RunTask:
    return run_order(**{"command": ["python3", "train.py", "--lr", "0.1"], "native": True} | fields)


def split(argv: list[str]) -> tuple[list[str], list[str]]:
    """(systemd-run options, the command after ``--``)."""
    cut = argv.index("--")
    return argv[:cut], argv[cut + 1 :]


def properties(options: list[str]) -> list[str]:
    return [options[i + 1] for i, o in enumerate(options) if o == "-p"]


def test_scope_unit_cores_and_memory() -> None:
    options, command = split(
        systemd_run_command(order(cores=4, memory=4_000_000_000), status_file=STATUS)
    )
    assert options[:2] == ["systemd-run", "--scope"]
    assert options[options.index("--unit") + 1] == "kawa-42"
    assert "--slice=kawa.slice" in options
    assert properties(options) == ["CPUQuota=400%", "MemoryMax=4000000000", "MemorySwapMax=0"]
    assert command[:3] == ["/bin/sh", "-c", WRAPPER]
    assert command[3:6] == ["kawa-native", str(STATUS), "0"]  # systemd places it: no procs
    assert command[6:] == ["python3", "train.py", "--lr", "0.1"]


def test_cpuset_and_numa_node() -> None:
    options, _ = split(
        systemd_run_command(order(cores=2, cpuset=[9, 8, 8], numa=1), status_file=STATUS)
    )
    assert properties(options) == ["CPUQuota=200%", "AllowedCPUs=8,9", "AllowedMemoryNodes=1"]


def test_no_limits_asked_none_set() -> None:
    options, _ = split(systemd_run_command(order(cores=0), status_file=STATUS))
    assert properties(options) == []


def test_workdir_is_an_option_and_env_never_on_the_command_line() -> None:
    secret = {"API_TOKEN": "s3cret-value"}
    argv = systemd_run_command(order(workdir="/data/run 1", env=secret), status_file=STATUS)
    options, _ = split(argv)
    assert "--working-directory=/data/run 1" in options
    assert not any("s3cret" in a for a in argv)  # /proc/PID/cmdline is world-readable
    env = task_environment(order(env=secret), "node1", user=None, local_temp=Path("/scratch"))
    assert env["API_TOKEN"] == "s3cret-value"
    assert env["KAWA_TASK_ID"] == "42" and env["KAWA_NODE"] == "node1"
    assert env["KAWA_LOCAL_TEMP"] == "/scratch"
    assert "PATH" in env


def test_environment_is_not_the_runners(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAWA_RUNNER_CLUSTER_SECRET", "runner-only")
    env = task_environment(order(env={"KAWA_TASK_ID": "forged"}), "n", user=None)
    assert "KAWA_RUNNER_CLUSTER_SECRET" not in env
    assert env["KAWA_TASK_ID"] == "42"  # the runner's values win over the order's


def test_numactl_and_user_wrap_the_command() -> None:
    user = RunAs("alice", 1000, 1000, "/home/alice")
    options, command = split(
        systemd_run_command(order(numa=1), status_file=STATUS, user=user, numactl="numactl")
    )
    assert command[6:] == [
        *("numactl", "--cpunodebind=1", "--membind=1"),
        *("setpriv", "--reuid=1000", "--regid=1000", "--init-groups", "--"),
        *("python3", "train.py", "--lr", "0.1"),
    ]
    assert not any(o.startswith("--uid") for o in options)  # the wrapper stays root
    env = task_environment(order(), "n", user=user)
    assert (env["HOME"], env["USER"]) == ("/home/alice", "alice")


def test_numactl_only_for_a_numa_target() -> None:
    assert inner_command(order(), numactl="numactl") == ["python3", "train.py", "--lr", "0.1"]


def test_unit_names_are_safe() -> None:
    assert unit_name("7301234567890123456") == "kawa-7301234567890123456"
    assert unit_name("a/b c") == "kawa-a_b_c"


def test_the_wrapper_joins_runs_and_keeps_the_exit_status(tmp_path: Path) -> None:
    joined, status = tmp_path / "procs", tmp_path / "status"
    joined.touch()
    argv = wrapped(status, [joined], ["sh", "-c", "echo ran; exit 5"])
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout) == (5, "ran\n")
    assert joined.read_text().strip().isdigit()  # the wrapper wrote its own pid
    assert read_status(status) == 5


def test_the_wrapper_refuses_to_run_outside_its_group(tmp_path: Path) -> None:
    status, ran = tmp_path / "status", tmp_path / "ran"
    argv = wrapped(status, [tmp_path / "no" / "procs"], ["touch", str(ran)])
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert done.returncode == 125 and "cannot join cgroup" in done.stderr
    assert not ran.exists()
    assert read_status(status) is None
