"""The ``kawa`` program the runner gives every task."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from kawa.runner import task_tools
from kawa.standalone import sweep


def test_install_copies_the_standalone_program_executable(tmp_path: Path) -> None:
    program = task_tools.install(tmp_path / "tools")
    assert program == tmp_path / "tools" / "kawa"
    assert program.read_bytes() == Path(sweep.__file__).read_bytes()
    assert os.access(program, os.X_OK)
    program.write_text("stale")
    assert task_tools.install(tmp_path / "tools").read_bytes() == Path(sweep.__file__).read_bytes()
    done = subprocess.run([program, "sweep", "echo", "span:[a]"], capture_output=True, text=True)
    assert (done.returncode, done.stdout) == (0, "[a] a\n")


def test_native_path_adds_the_program_only_where_no_kawa_is(tmp_path: Path) -> None:
    program = task_tools.install(tmp_path / "tools")
    bare = tmp_path / "bin"
    bare.mkdir()
    assert task_tools.native_path(str(bare), program) == f"{program.parent}{os.pathsep}{bare}"
    own = tmp_path / "own"
    own.mkdir()
    (own / "kawa").write_text("#!/bin/sh\n")
    (own / "kawa").chmod(0o755)
    assert task_tools.native_path(str(own), program) == str(own)
    assert task_tools.native_path(str(bare), None) == str(bare)
