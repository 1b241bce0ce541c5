#!/usr/bin/env python3
"""``kawa sweep``: run a command once for every combination of its ``span:`` arguments.

This one file is both the sweep of the installed CLI and the ``kawa`` program the
runner puts into every task (``/usr/local/bin/kawa`` in containers, on the PATH of
native tasks), so it uses only the standard library and imports nothing of kawa.

Spans (any number, in any argument, also inside a larger argument):

- ``span:{START..END}`` -- the integers from START to END, both included; counts down
  when START > END (``span:{3..1}`` is 3 2 1, ``span:{-1..1}`` is -1 0 1).
- ``span:{START..END..STEP}`` -- every STEP-th of them (STEP > 0).
- ``span:[a,b,c]`` -- the items as written (spaces are kept). A backslash takes the
  next character literally: ``\\,`` a comma, ``\\]`` a bracket, ``\\\\`` a backslash.
- ``\\span:`` -- a literal ``span:`` that is not a span.

Combinations follow the spans from left to right, the last span changing fastest.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, BinaryIO

DEFAULT_LIMIT = 10_000
"""Most combinations one sweep may have unless a larger limit is asked for."""

_MARK = "span:"
_RANGE = re.compile(r"(-?\d+)\.\.(-?\d+)(?:\.\.(\d+))?")


class SweepError(ValueError):
    """Bad sweep input; the message says what is wrong and where."""


# -- expansion (pure) ------------------------------------------------------------------


@dataclass(frozen=True)
class Span:
    """One ``span:`` as written and the values it stands for."""

    text: str
    values: range | tuple[str, ...]
    """A range for ``{START..END}`` (not materialised: its size is checked first)."""

    @property
    def size(self) -> int:
        return len(self.values)

    def items(self) -> list[str]:
        return [str(v) for v in self.values]


@dataclass(frozen=True)
class Combination:
    """One point of a sweep: its index in sweep order, span values and argument list."""

    index: int
    values: tuple[str, ...]
    argv: tuple[str, ...]

    @property
    def label(self) -> str:
        """The span values, shell-quoted: how output and task names show the combination."""
        return shlex.join(self.values)


@dataclass(frozen=True)
class Sweep:
    """Arguments with their spans taken out: each argument is a tuple of literal text
    (str) and span positions (int)."""

    template: tuple[tuple[str | int, ...], ...]
    spans: tuple[Span, ...]

    @property
    def count(self) -> int:
        """How many combinations (1 when there is no span)."""
        return math.prod(s.size for s in self.spans)

    def check_limit(self, limit: int = DEFAULT_LIMIT) -> None:
        if self.count <= limit:
            return
        sizes = " x ".join(str(s.size) for s in self.spans)
        shape = f" ({sizes})" if len(self.spans) > 1 else ""
        raise SweepError(
            f"the sweep has {self.count:,} combinations{shape}, more than the limit of {limit:,}"
        )

    def combinations(self) -> Iterator[Combination]:
        lists = [s.items() for s in self.spans]
        for index, values in enumerate(itertools.product(*lists)):
            argv = tuple(
                "".join(values[p] if isinstance(p, int) else p for p in arg)
                for arg in self.template
            )
            yield Combination(index, tuple(values), argv)


def parse(argv: Sequence[str]) -> Sweep:
    """Find the spans of ``argv``; :class:`SweepError` names any malformed one."""
    spans: list[Span] = []
    template = tuple(_parse_argument(arg, spans) for arg in argv)
    return Sweep(template, tuple(spans))


def expand(argv: Sequence[str], limit: int = DEFAULT_LIMIT) -> list[Combination]:
    """Every combination of ``argv``'s spans, in sweep order (checked against ``limit``)."""
    sweep = parse(argv)
    sweep.check_limit(limit)
    return list(sweep.combinations())


def _parse_argument(arg: str, spans: list[Span]) -> tuple[str | int, ...]:
    parts: list[str | int] = []
    literal: list[str] = []
    i = 0
    while i < len(arg):
        if arg.startswith("\\" + _MARK, i):
            literal.append(_MARK)
            i += len(_MARK) + 1
        elif arg.startswith(_MARK, i) and arg[i + len(_MARK) : i + len(_MARK) + 1] in ("{", "["):
            span, i = _parse_span(arg, i)
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(len(spans))
            spans.append(span)
        else:
            literal.append(arg[i])
            i += 1
    if literal or not parts:
        parts.append("".join(literal))
    return tuple(parts)


def _parse_span(arg: str, start: int) -> tuple[Span, int]:
    """The span starting at ``arg[start]`` and the index just after it."""
    opener = arg[start + len(_MARK)]
    body = start + len(_MARK) + 1
    if opener == "{":
        end = arg.find("}", body)
        if end < 0:
            raise SweepError(f"{arg!r}: span:{{ is not closed (missing '}}')")
        text = arg[start : end + 1]
        return Span(text, _range(text, arg[body:end])), end + 1
    items: list[str] = []
    current: list[str] = []
    i = body
    while i < len(arg):
        char = arg[i]
        if char == "\\":
            if i + 1 == len(arg):
                raise SweepError(f"{arg!r}: a backslash ends the argument inside span:[")
            current.append(arg[i + 1])
            i += 2
            continue
        if char in ",]":
            items.append("".join(current))
            current = []
            if char == "]":
                text = arg[start : i + 1]
                return Span(text, _items(text, items)), i + 1
        else:
            current.append(char)
        i += 1
    raise SweepError(f"{arg!r}: span:[ is not closed (missing ']'; write \\] for a bracket)")


def _range(text: str, body: str) -> range:
    found = _RANGE.fullmatch(body)
    if found is None:
        raise SweepError(
            f"{text}: expected span:{{START..END}} or span:{{START..END..STEP}} "
            "with whole numbers, e.g. span:{1..5}"
        )
    first, last = int(found[1]), int(found[2])
    step = int(found[3]) if found[3] is not None else 1
    if step == 0:
        raise SweepError(f"{text}: the step must be at least 1")
    if first <= last:
        return range(first, last + 1, step)
    return range(first, last - 1, -step)


def _items(text: str, items: list[str]) -> tuple[str, ...]:
    if items == [""]:
        raise SweepError(f"{text}: the list is empty")
    for n, item in enumerate(items, 1):
        if not item:
            raise SweepError(f"{text}: item {n} is empty")
    return tuple(items)


# -- targets ---------------------------------------------------------------------------

_NAME = r"[A-Za-z_]\w*"
_MODULE = re.compile(rf"{_NAME}(?:\.{_NAME})*")
_FUNCTION = re.compile(rf"({_NAME}(?:\.{_NAME})*):({_NAME})")
_CHECK = """import importlib, sys
module, function = sys.argv[1], sys.argv[2:3]
try:
    found = importlib.import_module(module)
except Exception as exc:
    print(f"cannot import module {module!r}: {exc}")
    sys.exit(3)
if function and not callable(getattr(found, function[0], None)):
    print(f"module {module!r} has no function {function[0]!r}")
    sys.exit(3)
"""


def resolve_target(target: str, python: str = sys.executable) -> list[str]:
    """The command line that runs TARGET (the expanded arguments follow it).

    An executable (a path, or a name on PATH) runs as is; otherwise ``module`` runs as
    ``python -m module`` and ``module:function`` is called with the arguments as strings.
    """
    if _MARK in target:
        raise SweepError(f"the target {target!r} cannot contain a span; spans go in its arguments")
    called = _FUNCTION.fullmatch(target)
    if called is not None:
        module, function = called[1], called[2]
        _check_python(python, module, function)
        call = f"import sys; from {module} import {function} as target; target(*sys.argv[1:])"
        return [python, "-c", call]
    if "/" in target:
        path = Path(target)
        if not path.is_file():
            raise SweepError(f"the target {target} does not exist")
        if not os.access(path, os.X_OK):
            raise SweepError(f"the target {target} is not executable (chmod +x it, or use python3)")
        return [target]
    if shutil.which(target) is not None:
        return [target]
    if _MODULE.fullmatch(target):
        _check_python(python, target, None, f"{target!r} is neither an executable on PATH nor")
        return [python, "-m", target]
    raise SweepError(f"the target {target!r} is not an executable on PATH")


def _check_python(python: str, module: str, function: str | None, lead: str = "") -> None:
    """Import ``module`` in ``python`` (from the current directory, as ``-m`` does)."""
    argv = [python, "-c", _CHECK, module, *([function] if function else [])]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = (done.stdout.strip() or done.stderr.strip()).splitlines()
        why = lines[-1] if lines else f"{python} exited with {done.returncode}"
        if lead:
            raise SweepError(f"{lead} an importable Python module ({why})")
        raise SweepError(f"{module}:{function}: {why}")


# -- local execution -------------------------------------------------------------------


@dataclass
class Options:
    command: list[str] = field(default_factory=list)
    parallel: int = 1
    dry_run: bool = False
    keep_going: bool = False
    output_dir: Path | None = None
    limit: int = DEFAULT_LIMIT
    help: bool = False


USAGE = """usage: kawa sweep [--parallel [N]] [--dry-run] [--keep-going] [--output-dir DIR]
                  [--limit N] TARGET ARGS...

Run TARGET once for every combination of the span: arguments in ARGS.
TARGET is an executable, a Python module (run as python -m MODULE) or
MODULE:FUNCTION (called with the arguments as strings).

  span:{1..3}        1 2 3          span:{3..1}   3 2 1
  span:{0..10..5}    0 5 10         span:[a,b]    a b
  in an item of span:[...], a backslash escapes a comma, bracket or backslash

options (before TARGET):
  --parallel [N]     run N combinations at once (default: one per CPU)
  --dry-run          print each command line, shell-quoted, and run nothing
  --keep-going       go on after a failure (default: start no new combination)
  --output-dir DIR   write each combination's stdout/stderr to files in DIR
                     instead of prefixing the lines with the combination
  --limit N          refuse sweeps of more than N combinations (default 10000)

Each run gets KAWA_SWEEP_INDEX (0, 1, ...) and KAWA_SWEEP_ARGS (its span values,
shell-quoted). The exit code is 0 only if every combination succeeded."""


def parse_options(argv: Sequence[str]) -> Options:
    """Options up to TARGET; everything from TARGET on is the command, untouched."""
    opts = Options()
    args = list(argv)
    while args and args[0].startswith("-"):
        arg = args.pop(0)
        name, eq, value = arg.partition("=")
        if arg == "--":
            break
        if arg in ("-h", "--help"):
            opts.help = True
        elif name in ("--parallel", "-p"):
            if eq:
                opts.parallel = _count(name, value)
            elif args and args[0].isdigit():
                opts.parallel = _count(name, args.pop(0))
            else:
                opts.parallel = _cpus()
        elif arg == "--dry-run":
            opts.dry_run = True
        elif arg == "--keep-going":
            opts.keep_going = True
        elif name in ("--output-dir", "--limit"):
            if not eq:
                if not args:
                    raise SweepError(f"{name} needs a value")
                value = args.pop(0)
            if name == "--limit":
                opts.limit = _count(name, value)
            else:
                opts.output_dir = Path(value)
        else:
            raise SweepError(f"unknown option {arg!r} (options go before TARGET; see --help)")
    opts.command = args
    if not args and not opts.help:
        raise SweepError("no TARGET given: kawa sweep [OPTIONS] TARGET ARGS...")
    return opts


def _cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _count(name: str, text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise SweepError(f"{name} takes a whole number of at least 1, got {text!r}")
    return int(text)


@dataclass
class _Outcome:
    combination: Combination
    code: int | None = None
    """None: not started (an earlier combination failed)."""


class LocalRun:
    """Runs combinations as subprocesses, at most ``parallel`` at once, keeping each
    one's output apart: prefixed lines on our stdout/stderr, or files in ``output_dir``."""

    def __init__(
        self,
        prefix: Sequence[str],
        parallel: int = 1,
        keep_going: bool = False,
        output_dir: Path | None = None,
        stdout: BinaryIO | None = None,
        stderr: BinaryIO | None = None,
    ) -> None:
        self.prefix = list(prefix)
        self.parallel = parallel
        self.keep_going = keep_going
        self.output_dir = output_dir
        self.stdout = stdout or sys.stdout.buffer
        self.stderr = stderr or sys.stderr.buffer
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._procs: set[subprocess.Popen[bytes]] = set()

    def run(self, combinations: Sequence[Combination]) -> int:
        """Run them all; 0 if every one succeeded, else the first failure's exit code."""
        if self.output_dir is not None:
            self.output_dir.mkdir(parents=True, exist_ok=True)
        width = len(str(max(len(combinations) - 1, 0)))
        outcomes = [_Outcome(c) for c in combinations]
        try:
            with ThreadPoolExecutor(max_workers=self.parallel) as pool:
                list(pool.map(lambda o: self._one(o, width), outcomes))
        except KeyboardInterrupt:
            self._stop.set()
            for proc in list(self._procs):
                proc.kill()
            raise
        return self._summary(outcomes)

    def _one(self, outcome: _Outcome, width: int) -> None:
        if self._stop.is_set():
            return
        combo = outcome.combination
        env = dict(os.environ)
        env.update(KAWA_SWEEP_INDEX=str(combo.index), KAWA_SWEEP_ARGS=combo.label)
        argv = [*self.prefix, *combo.argv]
        if self.output_dir is not None:
            stem = self.output_dir / f"{combo.index:0{width}d}{_slug(combo.values)}"
            with open(f"{stem}.out", "wb") as out, open(f"{stem}.err", "wb") as err:
                outcome.code = self._spawn(argv, env, out, err, None)
            self._write(self.stdout, f"[{combo.label}] exit {outcome.code} -> {stem}.out\n")
        else:
            outcome.code = self._spawn(
                argv, env, subprocess.PIPE, subprocess.PIPE, f"[{combo.label}] ".encode()
            )
        if outcome.code != 0 and not self.keep_going:
            self._stop.set()

    def _spawn(
        self,
        argv: list[str],
        env: dict[str, str],
        out: BinaryIO | int,
        err: BinaryIO | int,
        tag: bytes | None,
    ) -> int:
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env)
        except OSError as exc:
            self._write(self.stderr, f"kawa sweep: cannot run {shlex.join(argv)}: {exc}\n")
            return 127
        self._procs.add(proc)
        try:
            if tag is not None:
                assert proc.stdout is not None and proc.stderr is not None
                side = threading.Thread(target=self._copy, args=(proc.stderr, self.stderr, tag))
                side.start()
                self._copy(proc.stdout, self.stdout, tag)
                side.join()
            code = proc.wait()
        finally:
            self._procs.discard(proc)
        return 128 - code if code < 0 else code

    def _copy(self, source: IO[bytes], sink: BinaryIO, tag: bytes) -> None:
        for line in iter(source.readline, b""):
            with self._lock:
                sink.write(tag + line + (b"" if line.endswith(b"\n") else b"\n"))
                sink.flush()
        source.close()

    def _write(self, sink: BinaryIO, text: str) -> None:
        with self._lock:
            sink.write(text.encode())
            sink.flush()

    def _summary(self, outcomes: list[_Outcome]) -> int:
        failed = [o for o in outcomes if o.code not in (0, None)]
        skipped = sum(1 for o in outcomes if o.code is None)
        if not failed and not skipped:
            return 0
        first = failed[0] if failed else None
        parts = [f"{len(failed)} of {len(outcomes)} combinations failed"]
        if first is not None:
            parts.append(f"first: [{first.combination.label}] exit {first.code}")
        if skipped:
            parts.append(f"{skipped} not started")
        self._write(self.stderr, "kawa sweep: " + "; ".join(parts) + "\n")
        code = first.code if first is not None and first.code is not None else 1
        return code if 0 < code < 256 else 1


def _slug(values: Sequence[str]) -> str:
    text = re.sub(r"[^\w.=+-]+", "_", "_".join(values)).strip("_")[:60]
    return f"-{text}" if text else ""


def main(argv: Sequence[str]) -> int:
    """``kawa sweep ARGV``: the exit code (2 for bad input, before anything runs)."""
    try:
        opts = parse_options(argv)
        if opts.help:
            print(USAGE)
            return 0
        target, *args = opts.command
        sweep = parse(args)
        sweep.check_limit(opts.limit)
        prefix = resolve_target(target)
        combinations = list(sweep.combinations())
        if opts.dry_run:
            for combo in combinations:
                print(shlex.join([*prefix, *combo.argv]))
            return 0
        run = LocalRun(prefix, opts.parallel, opts.keep_going, opts.output_dir)
        return run.run(combinations)
    except SweepError as exc:
        print(f"kawa sweep: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def in_task_main(argv: Sequence[str]) -> int:
    """The ``kawa`` of a task: only ``kawa sweep`` is there."""
    if argv and argv[0] == "sweep":
        return main(argv[1:])
    print(
        "kawa: only `kawa sweep` is available inside a task "
        "(this is the in-task sweep program, not the full kawa CLI)",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(in_task_main(sys.argv[1:]))
