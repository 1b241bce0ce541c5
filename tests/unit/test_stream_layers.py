"""The import rules of the stream-session packages (each package's docstring states
them): read from the source, so a stray import fails here rather than in review."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import kawa

SRC = Path(kawa.__file__).parent

ALLOWED = {
    "relay": ("kawa.protocol", "kawa.relay"),
    "ws": ("kawa.protocol", "kawa.relay", "kawa.ws"),
    "mux": ("kawa.protocol", "kawa.relay", "kawa.mux", "kawa.ws.channel"),
    "docker_exec": ("kawa.protocol", "kawa.relay", "kawa.mux", "kawa.docker_exec"),
}


def kawa_imports(path: Path) -> set[str]:
    """Every ``kawa`` module ``path`` imports, anywhere in it (``from kawa.x import y``
    counts as ``kawa.x.y``: ``y`` may be a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return {name for name in found if name == "kawa" or name.startswith("kawa.")}


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_a_stream_package_imports_only_the_layers_below_it(package: str) -> None:
    files = sorted((SRC / package).glob("*.py"))
    assert len(files) > 1, f"no modules found in kawa.{package}"
    seen: set[str] = set()
    for path in files:
        imported = kawa_imports(path)
        seen |= imported
        stray = {name for name in imported if not within(name, ALLOWED[package])}
        assert not stray, f"{path.name} imports {sorted(stray)}"
    assert seen, f"kawa.{package} imports nothing of Kawa's: is the walk broken?"


def test_a_stream_does_not_import_its_session() -> None:
    imported = kawa_imports(SRC / "mux" / "stream.py")
    assert "kawa.protocol.streams" in imported
    assert not any(within(name, ("kawa.mux.session",)) for name in imported), imported


def test_the_host_does_not_import_the_runner() -> None:
    files = sorted((SRC / "host").rglob("*.py"))
    assert files
    for path in files:
        stray = {n for n in kawa_imports(path) if within(n, ("kawa.runner",))}
        assert not stray, f"{path.relative_to(SRC)} imports {sorted(stray)}"
