"""What completion offers where the cursor is, with the host's values stubbed (the real
host is asked in tests/integration/test_cli_completion.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kawa.cli import completer


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))


LIVE = {
    "task": ["111", "122"],
    "node": ["node1", "node2"],
    "target": ["node1", "node1:0", "node1::0"],
    "environment": ["default"],
}


def live(kind: str) -> list[str]:
    return LIVE.get(kind, [])


@pytest.mark.parametrize(
    ("words", "current", "expected"),
    [
        ([], "ta", ["task"]),
        (["task", "kill"], "1", ["111", "122"]),
        (["task", "kill"], "12", ["122"]),
        (["task", "kill", "111"], "", []),  # one id only
        (["task", "wait", "111"], "", ["111", "122"]),  # as many as wanted
        (["run", "--target"], "node1:", ["node1:0", "node1::0"]),
        (["run"], "--target=node1::", ["--target=node1::0"]),
        (["run", "--cores", "2", "--container"], "", ["default"]),
        (["run", "--", "ls"], "", []),
        (["node", "drain"], "", ["node1", "node2"]),
        (["task", "list", "--status"], "fa", ["failed"]),
        (["completion"], "", ["bash", "zsh", "fish"]),
    ],
)
def test_candidates(words: list[str], current: str, expected: list[str]) -> None:
    assert completer.candidates(words, current, live) == expected


def test_the_tree_is_cached_and_a_broken_cache_is_rebuilt(tmp_path: Path) -> None:
    first = completer.tree()
    cached = tmp_path / "kawa" / "completion-tree.json"
    assert cached.exists() and completer.tree() == first
    cached.write_text("{not json")
    assert completer.tree() == first


def test_bash_words_and_colons(capsys: pytest.CaptureFixture[str]) -> None:
    assert completer._bash_words("kawa task kill 12") == (["task", "kill"], "12")
    assert completer._bash_words("kawa task kill ") == (["task", "kill"], "")
    assert completer._bash_words("kawa run -- sh -c 'echo") == (["run", "--", "sh", "-c"], "'echo")
    assert completer.complete(["bash", "kawa task li"]) == 0
    assert capsys.readouterr().out == "list\n"
    assert completer.complete([]) == 0  # nothing to answer: silent
    assert capsys.readouterr().out == ""
