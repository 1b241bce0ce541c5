"""``kawa sweep`` as a user types it: executables, modules and functions, serial and
parallel, output kept apart, exit codes, dry runs and bad input."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kawa.standalone import sweep as program
from tests.integration.cluster import KAWA

DEADLINE = 60.0


def kawa_sweep(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAWA_")}
    return subprocess.run(
        [*KAWA, "sweep", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=DEADLINE
    )


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "sweepmod.py").write_text(
        textwrap.dedent(
            """
            import os, sys

            def show(*args):
                print("called", args, os.environ["KAWA_SWEEP_INDEX"])

            def fail_on(*args):
                if "bad" in args:
                    raise SystemExit(3)
                print("fine", args)

            if __name__ == "__main__":
                print("module", sys.argv[1:], os.environ["KAWA_SWEEP_ARGS"])
            """
        )
    )
    return tmp_path


def test_executable_every_combination_prefixed(work: Path) -> None:
    done = kawa_sweep(
        sys.executable, "-c", "import sys; print(sys.argv[1:])", "span:{1..2}", "x", "span:[a,b c]",
        cwd=work,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "[1 a] ['1', 'x', 'a']",
        "[1 'b c'] ['1', 'x', 'b c']",
        "[2 a] ['2', 'x', 'a']",
        "[2 'b c'] ['2', 'x', 'b c']",
    ]


def test_module_and_function_targets(work: Path) -> None:
    done = kawa_sweep("sweepmod", "--lr=span:[0.1,0.01]", cwd=work)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "[0.1] module ['--lr=0.1'] 0.1",
        "[0.01] module ['--lr=0.01'] 0.01",
    ]
    done = kawa_sweep("sweepmod:show", "span:{3..1}", "k", cwd=work)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "[3] called ('3', 'k') 0",
        "[2] called ('2', 'k') 1",
        "[1] called ('1', 'k') 2",
    ]


def test_a_missing_function_or_module_is_named_before_anything_runs(work: Path) -> None:
    done = kawa_sweep("sweepmod:nothere", "span:[a]", cwd=work)
    assert done.returncode == 2
    assert "module 'sweepmod' has no function 'nothere'" in done.stderr
    done = kawa_sweep("nosuchmodule_xyz:f", "span:[a]", cwd=work)
    assert done.returncode == 2 and "cannot import module 'nosuchmodule_xyz'" in done.stderr
    done = kawa_sweep("nosuchthing_xyz", "span:[a]", cwd=work)
    assert done.returncode == 2
    assert "neither an executable on PATH nor an importable Python module" in done.stderr


def _writer(work: Path) -> Path:
    """A script that appends ``start I`` and ``end I`` to a log, and exits 1 for 'bad'."""
    script = work / "step.py"
    script.write_text(
        textwrap.dedent(
            """
            import os, sys
            def note(what):
                fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
                os.write(fd, f"{what} {sys.argv[2]}\\n".encode())
                os.close(fd)
            note("start")
            print("out", sys.argv[2]); print("err", sys.argv[2], file=sys.stderr)
            note("end")
            sys.exit(1 if sys.argv[2] == "bad" else 0)
            """
        )
    )
    return script


def test_serial_runs_one_at_a_time_in_order(work: Path) -> None:
    log = work / "log"
    done = kawa_sweep(sys.executable, str(_writer(work)), str(log), "span:{1..4}", cwd=work)
    assert done.returncode == 0, done.stderr
    assert log.read_text().split("\n")[:-1] == [
        f"{what} {i}" for i in range(1, 5) for what in ("start", "end")
    ]
    assert done.stdout.splitlines() == [f"[{i}] out {i}" for i in range(1, 5)]
    assert done.stderr.splitlines() == [f"[{i}] err {i}" for i in range(1, 5)]


def test_parallel_runs_combinations_at_the_same_time(work: Path) -> None:
    """Each of the 3 waits until all 3 have started: only a parallel run can finish."""
    barrier = textwrap.dedent(
        """
        import os, sys, time
        d = sys.argv[1]
        open(os.path.join(d, sys.argv[2]), "w").close()
        deadline = time.monotonic() + 30
        while len(os.listdir(d)) < 3:
            if time.monotonic() > deadline:
                sys.exit("not parallel")
            time.sleep(0.01)
        print("met", sys.argv[2])
        """
    )
    gate = work / "gate"
    gate.mkdir()
    done = kawa_sweep("--parallel", "3", sys.executable, "-c", barrier, str(gate), "span:[a,b,c]",
                      cwd=work)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.splitlines()) == ["[a] met a", "[b] met b", "[c] met c"]


def test_a_failure_stops_new_launches_unless_keep_going(work: Path) -> None:
    script, log = _writer(work), work / "log"
    done = kawa_sweep(sys.executable, str(script), str(log), "span:[a,bad,c]", cwd=work)
    assert done.returncode == 1
    assert "c" not in log.read_text().split()
    assert "1 of 3 combinations failed; first: [bad] exit 1; 1 not started" in done.stderr
    log.unlink()
    done = kawa_sweep("--keep-going", sys.executable, str(script), str(log), "span:[a,bad,c]",
                      cwd=work)  # fmt: skip
    assert done.returncode == 1
    assert log.read_text().split().count("end") == 3
    assert "1 of 3 combinations failed; first: [bad] exit 1" in done.stderr
    done = kawa_sweep("--keep-going", "sweepmod:fail_on", "span:[bad,ok]", cwd=work)
    assert done.returncode == 3 and "[ok] fine ('ok',)" in done.stdout


def test_output_dir_keeps_one_file_pair_per_combination(work: Path) -> None:
    script, log = _writer(work), work / "log"
    out = work / "out"
    done = kawa_sweep("--output-dir", str(out), "--parallel", "2", sys.executable, str(script),
                      str(log), "span:{1..3}", cwd=work)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "0-1.err", "0-1.out", "1-2.err", "1-2.out", "2-3.err", "2-3.out"
    ]  # fmt: skip
    assert (out / "1-2.out").read_text() == "out 2\n"
    assert (out / "2-3.err").read_text() == "err 3\n"


def test_dry_run_prints_shell_lines_that_run_the_same(work: Path) -> None:
    done = kawa_sweep("--dry-run", "echo", "span:[it's,a b]", "--x=span:{1..2}", cwd=work)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines == [shlex.join(["echo", v, f"--x={n}"]) for v in ("it's", "a b") for n in (1, 2)]
    ran = subprocess.run(["sh"], input=done.stdout, capture_output=True, text=True, check=True)
    assert ran.stdout.splitlines() == ["it's --x=1", "it's --x=2", "a b --x=1", "a b --x=2"]
    done = kawa_sweep("--dry-run", "sweepmod:fail_on", "span:[a]", cwd=work)
    assert len(done.stdout.splitlines()) == 1
    ran = subprocess.run(["sh"], input=done.stdout, cwd=work, capture_output=True, text=True)
    assert ran.stdout == "fine ('a',)\n"


@pytest.mark.parametrize(
    ("args", "mentions"),
    [
        (["echo", "span:[a,b"], "span:[ is not closed"),
        (["echo", "span:{1..}"], "expected span:{START..END}"),
        (["echo", "span:{a..z}"], "expected span:{START..END}"),
        (["echo", "span:[]"], "the list is empty"),
        (["echo", "span:{1..101}", "span:{1..100}"], "10,100 combinations"),
        (["--limit", "3", "echo", "span:{1..4}"], "limit of 3"),
        (["span:[echo,ls]", "x"], "cannot contain a span"),
    ],
)
def test_bad_input_is_an_error_before_anything_runs(
    work: Path, args: list[str], mentions: str
) -> None:
    marker = work / "ran"
    done = kawa_sweep(*args, cwd=work)
    assert done.returncode == 2
    assert mentions in done.stderr and done.stdout == ""
    assert not marker.exists()


def test_the_in_task_program_runs_without_kawa(tmp_path: Path) -> None:
    """The file alone, copied away from the package and run isolated (-I: no site, no
    PYTHONPATH), sweeps; other subcommands get a clear answer."""
    lone = tmp_path / "kawa"
    lone.write_bytes(Path(program.__file__).read_bytes())
    lone.chmod(0o755)
    run = [sys.executable, "-I", str(lone)]
    done = subprocess.run([*run, "sweep", "echo", "span:{1..2}"], capture_output=True, text=True)
    assert (done.returncode, done.stdout) == (0, "[1] 1\n[2] 2\n")
    done = subprocess.run([*run, "task", "list"], capture_output=True, text=True)
    assert done.returncode == 2
    assert "only `kawa sweep` is available inside a task" in done.stderr


def test_help_is_the_sweep_s_own(work: Path) -> None:
    done = kawa_sweep("--help", cwd=work)
    assert done.returncode == 0
    assert done.stdout.startswith("usage: kawa sweep [--parallel [N]]")
    assert "KAWA_SWEEP_INDEX" in done.stdout
