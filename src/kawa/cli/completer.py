"""Shell completion answers: ``kawa __complete SHELL …`` prints the words that fit
where the cursor is (the scripts of ``kawa completion`` ask it; no typer imported).

Answers must be quick and never break the shell: the command tree (commands, options,
which take values) is read from the CLI once and cached (rebuilt when the CLI's source
changes); live values (task ids, VPS ids, node names, ``--target`` forms, environment
names) come from the host through the standard-library client with a short timeout.
Any failure (no configuration, host down, a bug) gives no candidates, silently, exit 0.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

SHELLS = ("bash", "zsh", "fish")
HOST_TIMEOUT = 0.5
"""Seconds a completion waits for the host before giving up (silently)."""

# what a value of an argument or option is, by the parameter's name
_KINDS = {
    "task_id": "task",
    "task_ids": "task",
    "vps_id": "vps",
    "node": "node",
    "target": "target",
    "container": "environment",
    "status": "state",
    "output": "output",
    "network": "network",
    "role": "role",
    "shell": "shell",
}
_STATIC = {
    "state": ["pending", "assigning", "running", "paused", "completed", "failed", "killed",
              "oom_killed", "timed_out", "lost", "stopped", "removed"],
    "output": ["wide", "json", "ids"],
    "network": ["host", "bridge"],
    "role": ["viewer", "user", "admin"],
    "shell": list(SHELLS),
}  # fmt: skip


# -- the command tree ----------------------------------------------------------------
def _kind(param: Any, path: list[str]) -> str | None:
    if param.name == "name" and path[:1] == ["container"] and param.param_type_name != "option":
        return "environment"
    return _KINDS.get(param.name or "")


def _tree_of(command: Any, path: list[str]) -> dict[str, Any]:
    options: dict[str, str | None] = {}
    args: list[list[Any]] = []
    for p in command.params:
        if p.param_type_name == "option":
            kind = None if getattr(p, "is_flag", False) else (_kind(p, path) or "value")
            for name in [*p.opts, *p.secondary_opts]:
                options[name] = kind
        elif p.param_type_name == "argument":
            args.append([_kind(p, path), p.nargs == -1])
    options["--help"] = None
    commands = {
        name: _tree_of(sub, [*path, name])
        for name, sub in sorted(getattr(command, "commands", {}).items())
        if not getattr(sub, "hidden", False)
    }
    return {"options": options, "args": args, "commands": commands}


def build_tree() -> dict[str, Any]:
    """Every command's subcommands, options (with the kind of value each takes, None
    for flags) and arguments, read from the CLI itself."""
    from typer.main import get_command

    from kawa.cli.main import build_app

    return _tree_of(get_command(build_app()), [])


def _source_key() -> str:
    """Changes whenever a CLI module does (so the cached tree follows upgrades)."""
    here = os.path.dirname(os.path.abspath(__file__))
    parts = []
    with os.scandir(here) as entries:
        for e in entries:
            if e.name.endswith(".py"):
                st = e.stat()
                parts.append(f"{e.name}:{st.st_mtime_ns}:{st.st_size}")
    return ";".join(sorted(parts)) + f"|{sys.version_info[:2]}"


def _cache_path() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "kawa", "completion-tree.json")


def tree() -> dict[str, Any]:
    """The command tree, from the cache when it matches this CLI, else built and cached."""
    key, path = _source_key(), _cache_path()
    try:
        with open(path, encoding="utf-8") as f:
            cached = json.load(f)
        if cached.get("key") == key:
            return dict(cached["tree"])
    except (OSError, ValueError, AttributeError):
        pass
    built = build_tree()
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"key": key, "tree": built}, f)
        os.replace(tmp, path)
    except OSError:
        pass
    return built


# -- answering -----------------------------------------------------------------------
def candidates(words: list[str], current: str, live: Any = None) -> list[str]:
    """What may stand at ``current`` after ``words`` (the words after ``kawa``)."""
    node = tree()
    position = 0
    expect: str | None = None  # the kind of value the previous option takes
    for word in words:
        if expect is not None:
            expect = None
            continue
        if word == "--":
            return []  # the command: the shell's own completion
        if word in node["commands"] and position == 0:
            node = node["commands"][word]
            continue
        if word.startswith("-"):
            if "=" not in word and node["options"].get(word) is not None:
                expect = node["options"][word]
            continue
        position += 1
    if expect is not None:
        return _values(expect, current, live)
    if current.startswith("-"):
        if "=" in current:
            name, _, value = current.partition("=")
            kind = node["options"].get(name)
            return [f"{name}={v}" for v in _values(kind, value, live)] if kind else []
        return [o for o in node["options"] if o.startswith(current)]
    if node["commands"]:
        return [c for c in node["commands"] if c.startswith(current)]
    args = node["args"]
    if not args:
        return []
    kind, many = args[min(position, len(args) - 1)]
    if position >= len(args) and not many:
        return []
    return _values(kind, current, live)


def _values(kind: str | None, current: str, live: Any) -> list[str]:
    if kind in _STATIC:
        found = _STATIC[kind]
    elif kind in ("task", "vps", "node", "target", "environment"):
        try:
            found = (live or _live)(kind)
        except Exception:  # the host down, refused, no configuration: nothing
            found = []
    else:
        found = []
    return [v for v in found if v.startswith(current)]


def _get(path: str, query: str = "") -> Any:
    """``GET API_PREFIX + path`` on the configured host with a short timeout: the decoded
    answer, or None when there is no token or the client needs the full loader. Plain
    sockets (:mod:`kawa.cli.lite`): no httpx, no pydantic; errors raise."""
    from kawa.cli import lite

    creds = lite._plain_client_config() or lite.credentials()
    if not creds.token or not lite.usable(creds, several=True):
        return None
    quick = creds._replace(timeout=min(creds.timeout, HOST_TIMEOUT))
    return lite.call(quick, "GET", path, query=query)


LIVE_TASKS = 50
"""The newest tasks (or VPSs) offered: a shell shows no more than a screenful anyway."""


def _live(kind: str) -> list[str]:
    """Values from the host (nothing when it cannot be asked)."""
    if kind in ("task", "vps"):
        wanted = "vps" if kind == "vps" else "command"
        found = _get("/tasks", f"kind={wanted}&limit={LIVE_TASKS}") or []
        tasks = [t for t in found if t.get("kind") == wanted]
        names = [t["id"] for t in tasks]
        if kind == "vps":
            names += [t["name"] for t in tasks if t.get("name")]
        return [str(n) for n in names]
    if kind == "environment":
        return sorted({str(v["name"]) for v in _get("/environments/tarballs") or []})
    nodes = _get("/nodes") or []
    if kind == "node":
        return [str(n["name"]) for n in nodes]
    targets: list[str] = []
    for n in nodes:
        name, inventory = str(n["name"]), n.get("inventory", {})
        targets.append(name)
        targets += [f"{name}:{z['id']}" for z in inventory.get("numa", [])]
        targets += [f"{name}::{g['index']}" for g in inventory.get("gpus", [])]
    return targets


def _bash_words(line: str) -> tuple[list[str], str]:
    """The words of a bash command line up to the cursor, and the one being typed."""
    import shlex

    lexer = shlex.shlex(line, posix=True, punctuation_chars=False)
    lexer.whitespace_split = True
    words: list[str] = []
    try:
        words.extend(lexer)
    except ValueError:  # an open quote: the word being typed starts at it
        words = line.split()
    current = "" if not line or line[-1].isspace() else (words.pop() if words else "")
    return words[1:], current


def complete(argv: list[str]) -> int:
    """``kawa __complete SHELL …``: print the candidates, one a line; always exit 0."""
    try:
        shell, rest = argv[0], argv[1:]
        if shell == "bash":
            words, current = _bash_words(rest[0] if rest else "")
        else:
            words, current = rest[:-1], rest[-1] if rest else ""
        found = candidates(words, current)
        if shell == "bash" and ":" in current:  # bash splits words at ':'
            cut = current.rsplit(":", 1)[0] + ":"
            found = [f[len(cut) :] for f in found if f.startswith(cut)]
        sys.stdout.write("".join(f"{f}\n" for f in found))
    except Exception:  # never a traceback in the user's shell
        pass
    return 0
