"""The configuration reader's fast path reads what it accepts exactly as tomllib does."""

from __future__ import annotations

import tomllib

from hypothesis import given, settings
from hypothesis import strategies as st

from kawa.config_file import plain_toml

_PIECES = st.sampled_from(
    ["[", "]", "=", '"', "#", " ", "\t", "\r", "\\", "a", "b", "-", "_", "0", "1", "9",
     ".", "true", "false", "client", "url", "é", "\x01", "\x7f", "'", "+", "e", "{", ","]
)  # fmt: skip
_LINES = st.lists(st.lists(_PIECES, max_size=12).map("".join), max_size=6).map("\n".join)
_PLAIN_LINES = st.sampled_from(
    ["", "# note", "[client]", "[host]", ' url = "http://127.0.0.1:8420" ', "timeout = 30",
     "timeout = 2.5", "x = -0", "flag = true", "flag = false", 'token = "kawa_x" # c',
     'name = "é\'s"', "[ a-b_c ]"]
)  # fmt: skip


def _tomllib(text: str) -> object:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return "refused"


@settings(max_examples=600, deadline=None)
@given(_LINES)
def test_anything_it_reads_is_read_the_same_by_tomllib(text: str) -> None:
    found = plain_toml(text)
    if found is not None:
        assert found == _tomllib(text)


@settings(max_examples=300, deadline=None)
@given(st.lists(_PLAIN_LINES, max_size=8).map("\n".join))
def test_written_configurations_take_the_fast_path(text: str) -> None:
    expected = _tomllib(text)
    found = plain_toml(text)
    if expected == "refused":  # a key or table given twice
        assert found is None
    else:
        assert found == expected


def test_what_it_leaves_to_tomllib() -> None:
    for text in ['k = """x"""', "k = 01", 'k = "a\\tb"', "k = [1]", "a.b = 1", "k = 1e3",
                 "[a]\n[a]", "k = 1\nk = 2", "k = +1", "[a.b]", "k = 'x'"]:  # fmt: skip
        assert plain_toml(text) is None, text
