"""Shell completion in a real bash: the script installs a completion function, which
answers commands, options and live values from a running host, and stays silent (exit
0, no traceback) when the host is down."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kawa.protocol.tasks import TaskAction, TaskSpec
from tests.integration.cluster import Cluster, eventually, free_port

BIN = str(Path(sys.executable).parent)


def bash_complete(env: dict[str, str], line: str) -> list[str]:
    """COMPREPLY of the installed function for ``line`` (cursor at its end)."""
    script = (
        'eval "$(kawa completion bash)"\n'
        f"COMP_LINE={shlex.quote(line)}; COMP_POINT=${{#COMP_LINE}}\n"
        "_kawa_complete\n"
        "printf '%s\\n' \"${COMPREPLY[@]}\"\n"
    )
    done = subprocess.run(["bash", "--norc", "-c", script], env=env, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return [w for w in done.stdout.split("\n") if w]


@pytest.fixture
def env(cluster: Cluster, tmp_path: Path) -> dict[str, str]:
    found = cluster._env(KAWA_CLIENT_URL=cluster.url, KAWA_CLIENT_TOKEN=cluster.token)
    found["PATH"] = f"{BIN}{os.pathsep}{found['PATH']}"
    found["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    return found


def test_the_script_installs_a_completion_function(env: dict[str, str]) -> None:
    done = subprocess.run(
        ["bash", "--norc", "-c", 'eval "$(kawa completion bash)"; complete -p kawa'],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.stdout.strip() == "complete -o default -F _kawa_complete kawa"
    for shell in ("zsh", "fish"):
        script = subprocess.run(["kawa", "completion", shell], env=env, capture_output=True,
                                text=True, timeout=60)  # fmt: skip
        assert script.returncode == 0 and "__complete " + shell in script.stdout
    bad = subprocess.run(["kawa", "completion", "tcsh"], env=env, capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert bad.returncode == 2 and "use one of bash, zsh, fish" in bad.stderr


def test_commands_and_options(env: dict[str, str]) -> None:
    assert {"run", "task", "node", "completion"} <= set(bash_complete(env, "kawa "))
    assert bash_complete(env, "kawa ta") == ["task"]
    assert {"submit", "list", "kill"} <= set(bash_complete(env, "kawa task "))
    assert "--max-parallel" in bash_complete(env, "kawa run --max")
    assert bash_complete(env, "kawa task list -o ") == ["wide", "json", "ids"]
    assert bash_complete(env, "kawa run -- ") == []  # the command: bash's own completion


def test_live_values_from_the_host(cluster: Cluster, env: dict[str, str]) -> None:
    with cluster.client() as c:
        [t] = c.submit(TaskSpec(command=["sleep", "300"], targets=["node2"])).tasks
        eventually(lambda: c.task(t.id).state == "running", what="task running")
        try:
            assert t.id in bash_complete(env, "kawa task kill ")
            assert t.id in bash_complete(env, f"kawa task logs {t.id[:12]}")
            assert set(bash_complete(env, "kawa node drain no")) == {"node1", "node2"}
            targets = bash_complete(env, "kawa run --target node")
            assert {"node1", "node2"} <= set(targets)
            zones = [z.id for z in c.node("node1").inventory.numa]
            if zones:  # bash splits at ':': only what follows it is offered
                assert str(zones[0]) in bash_complete(env, "kawa run --target node1:")
            started = time.perf_counter()
            bash_complete(env, "kawa task kill ")
            print(f"bash completion with a live lookup: {time.perf_counter() - started:.3f}s")
        finally:
            c.act(t.id, TaskAction.KILL)


def test_host_down_is_silent(env: dict[str, str]) -> None:
    down = dict(env, KAWA_CLIENT_URL=f"http://127.0.0.1:{free_port()}")
    started = time.perf_counter()
    assert bash_complete(down, "kawa task kill ") == []
    assert time.perf_counter() - started < 10
    done = subprocess.run(["kawa", "__complete", "bash", "kawa task kill "], env=down,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
