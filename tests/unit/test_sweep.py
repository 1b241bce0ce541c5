"""Sweep expansion: spans, order, positions, quoting, limits and bad input."""

from __future__ import annotations

import ast
import itertools
import math
import shlex
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kawa.core import sweep as core_sweep
from kawa.core.sweep import DEFAULT_LIMIT, SweepError, expand, parse
from kawa.standalone import sweep as program

PROPERTY = settings(max_examples=200, deadline=None, database=None)


def argvs(argv: list[str]) -> list[list[str]]:
    return [list(c.argv) for c in expand(argv)]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["a", "b"], [["a", "b"]]),
        (["span:{1..3}"], [["1"], ["2"], ["3"]]),
        (["span:{3..1}"], [["3"], ["2"], ["1"]]),
        (["span:{-1..1}"], [["-1"], ["0"], ["1"]]),
        (["span:{1..-1}"], [["1"], ["0"], ["-1"]]),
        (["span:{-3..-5}"], [["-3"], ["-4"], ["-5"]]),
        (["span:{4..4}"], [["4"]]),
        (["span:{0..10..5}"], [["0"], ["5"], ["10"]]),
        (["span:{10..0..4}"], [["10"], ["6"], ["2"]]),
        (["span:[a,b,c]"], [["a"], ["b"], ["c"]]),
        (["span:[a b, c]"], [["a b"], [" c"]]),
        ([r"span:[a\,b,c]"], [["a,b"], ["c"]]),
        ([r"span:[x\]y,\[z]"], [["x]y"], ["[z"]]),
        ([r"span:[back\\slash]"], [["back\\slash"]]),
        (["span:[[a,b]"], [["[a"], ["b"]]),
        (["--lr=span:[0.1,0.01]"], [["--lr=0.1"], ["--lr=0.01"]]),
        (["run_span:{1..2}.txt"], [["run_1.txt"], ["run_2.txt"]]),
        (["span:{1..2}x"], [["1x"], ["2x"]]),
        (["span:{1..2}span:[a,b]"], [["1a"], ["1b"], ["2a"], ["2b"]]),
        (
            ["span:{1..2}", "fixed", "span:[a,b]"],
            [["1", "fixed", "a"], ["1", "fixed", "b"], ["2", "fixed", "a"], ["2", "fixed", "b"]],
        ),
        ([r"\span:[a,b]"], [["span:[a,b]"]]),
        (["span:", "lifespan:3", "span:(1)"], [["span:", "lifespan:3", "span:(1)"]]),
        ([""], [[""]]),
        ([], [[]]),
    ],
)
def test_expansion(argv: list[str], expected: list[list[str]]) -> None:
    assert argvs(argv) == expected


def test_combinations_carry_index_values_and_a_quoted_label() -> None:
    combos = expand(["train", "span:[a b,c]", "--seed=span:{1..2}"])
    assert [c.index for c in combos] == [0, 1, 2, 3]
    assert combos[0].values == ("a b", "1")
    assert combos[0].label == "'a b' 1"
    assert shlex.split(combos[0].label) == ["a b", "1"]
    assert combos[3].argv == ("train", "c", "--seed=2")


@pytest.mark.parametrize(
    ("argv", "mentions"),
    [
        (["span:[a,b"], "span:[ is not closed"),
        (["span:[a,b\\]"], "span:[ is not closed"),
        (["span:[a\\"], "backslash ends the argument"),
        (["span:{1..3"], "span:{ is not closed"),
        (["span:{1..}"], "span:{1..}: expected span:{START..END}"),
        (["span:{..3}"], "expected span:{START..END}"),
        (["span:{a..z}"], "span:{a..z}: expected"),
        (["span:{1.5..3}"], "whole numbers"),
        (["span:{1..3..0}"], "step must be at least 1"),
        (["span:{1..3..-1}"], "expected span:{START..END}"),
        (["span:{}"], "expected"),
        (["span:[]"], "span:[]: the list is empty"),
        (["span:[a,,b]"], "item 2 is empty"),
        (["span:[a,]"], "item 2 is empty"),
        (["ok", "x=span:[a,b"], "'x=span:[a,b'"),
    ],
)
def test_bad_spans_are_named(argv: list[str], mentions: str) -> None:
    with pytest.raises(SweepError) as raised:
        parse(argv)
    assert mentions in str(raised.value)


def test_limit_is_checked_before_anything_is_expanded() -> None:
    sweep = parse(["span:{1..100000000000}", "span:[a,b]"])  # never materialised
    assert sweep.count == 200_000_000_000
    with pytest.raises(SweepError, match=r"200,000,000,000 combinations .* limit of 10,000"):
        sweep.check_limit()
    assert len(expand(["span:{1..100}", "span:{1..100}"])) == DEFAULT_LIMIT
    with pytest.raises(SweepError, match="10,001 combinations"):
        expand(["span:{1..10001}"])
    with pytest.raises(SweepError, match="limit of 5"):
        expand(["span:{1..6}"], limit=5)


def test_no_span_is_one_combination() -> None:
    sweep = parse(["echo", "hi"])
    assert sweep.spans == () and sweep.count == 1


# -- properties ------------------------------------------------------------------------

_item = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1)
_list_span = st.lists(_item, min_size=1, max_size=4)
_range_span = st.tuples(st.integers(-5, 5), st.integers(-5, 5))
_span = st.one_of(_list_span, _range_span)


def _write(span: list[str] | tuple[int, int]) -> str:
    if isinstance(span, tuple):
        return f"span:{{{span[0]}..{span[1]}}}"
    escaped = [item.replace("\\", "\\\\").replace(",", "\\,").replace("]", "\\]") for item in span]
    return "span:[" + ",".join(escaped) + "]"


def _values(span: list[str] | tuple[int, int]) -> list[str]:
    if isinstance(span, tuple):
        a, b = span
        return [str(v) for v in (range(a, b + 1) if a <= b else range(a, b - 1, -1))]
    return span


@PROPERTY
@given(st.lists(st.tuples(st.text(max_size=3), _span), max_size=4))
def test_count_is_the_product_and_every_combination_appears_once(
    pieces: list[tuple[str, list[str] | tuple[int, int]]],
) -> None:
    literal_safe = [(text.replace("\\", "/").replace("span:", "s"), span) for text, span in pieces]
    argv = [text + _write(span) for text, span in literal_safe]
    combos = expand(argv, limit=10**6)
    sizes = [len(_values(span)) for _, span in literal_safe]
    assert len(combos) == math.prod(sizes) == parse(argv).count
    expected = [
        [text + value for (text, _), value in zip(literal_safe, values, strict=True)]
        for values in itertools.product(*(_values(s) for _, s in literal_safe))
    ]
    assert [list(c.argv) for c in combos] == expected
    assert len({c.values for c in combos}) == len({tuple(v) for v in expected})


@PROPERTY
@given(_list_span)
def test_escaped_items_come_back_exactly(items: list[str]) -> None:
    assert [c.values[0] for c in expand([_write(items)])] == items


# -- the standalone program ------------------------------------------------------------


def test_core_names_are_the_standalone_program_s() -> None:
    for name in ("parse", "expand", "Sweep", "Span", "Combination", "SweepError"):
        assert getattr(core_sweep, name) is getattr(program, name)


def test_standalone_program_imports_only_the_standard_library() -> None:
    source = Path(program.__file__).read_text()
    tree = ast.parse(source)
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported, "the walk found no imports at all"
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported
    assert source.startswith("#!/usr/bin/env python3\n")


@pytest.mark.parametrize(
    ("argv", "mentions"),
    [
        ([], "no TARGET given"),
        (["--parallel", "0", "echo"], "at least 1"),
        (["--parallel=x", "echo"], "'x'"),
        (["--bogus", "echo"], "unknown option '--bogus'"),
        (["--limit"], "--limit needs a value"),
    ],
)
def test_bad_options(argv: list[str], mentions: str) -> None:
    with pytest.raises(SweepError) as raised:
        program.parse_options(argv)
    assert mentions in str(raised.value)


def test_options_stop_at_the_target() -> None:
    opts = program.parse_options(["--parallel", "3", "--keep-going", "echo", "--parallel", "x"])
    assert (opts.parallel, opts.keep_going, opts.command) == (3, True, ["echo", "--parallel", "x"])
    opts = program.parse_options(["--parallel", "python3", "a.py"])
    assert opts.parallel >= 1 and opts.command == ["python3", "a.py"]
    opts = program.parse_options(["--output-dir=out", "--limit", "7", "--", "-weird", "x"])
    assert (str(opts.output_dir), opts.limit, opts.command) == ("out", 7, ["-weird", "x"])
