"""The ``kawa`` every task gets: the standalone sweep program (:mod:`kawa.standalone.sweep`).

The runner copies it into a directory of its own at start. Containers see that file,
read-only, at :data:`IN_CONTAINER`; native tasks find the directory on their PATH when
the node has no ``kawa`` of its own. Either way ``kawa sweep …`` works inside a task
whose image or node has python3 but not kawa.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from kawa.standalone import sweep

IN_CONTAINER = "/usr/local/bin/kawa"


def install(directory: Path) -> Path:
    """Put the program at ``directory/kawa`` (mode 0755, replaced atomically when it
    changed); its path."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)
    program = Path(sweep.__file__).read_bytes()
    target = directory / "kawa"
    if not target.is_file() or target.read_bytes() != program:
        staged = directory / ".kawa.new"
        staged.write_bytes(program)
        staged.chmod(0o755)
        staged.replace(target)
    return target


def native_path(path: str, program: Path | None) -> str:
    """A native task's PATH: the program's directory first, only if ``path`` has no kawa."""
    if program is None or shutil.which("kawa", path=path) is not None:
        return path
    return f"{program.parent}{os.pathsep}{path}"
