"""Target strings ``NODE[:NUMA][::GPU[,GPU...]]``: parsing, errors, canonical text."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kawa.core.targets import TargetError, TargetSpec

PROPERTY = settings(max_examples=200, deadline=None, database=None)


@pytest.mark.parametrize(
    ("text", "node", "numa", "gpus"),
    [
        ("node1", "node1", None, ()),
        ("node1:0", "node1", 0, ()),
        ("node3::0,1", "node3", None, (0, 1)),
        ("node2:1::0", "node2", 1, (0,)),
        ("node3::1,0", "node3", None, (0, 1)),
        ("n", "n", None, ()),
        ("1", "1", None, ()),
        ("gpu-box_2.lab", "gpu-box_2.lab", None, ()),
        ("a" * 63, "a" * 63, None, ()),
        ("node1:12::3,7,5", "node1", 12, (3, 5, 7)),
    ],
)
def test_parse_accepts(text: str, node: str, numa: int | None, gpus: tuple[int, ...]) -> None:
    assert TargetSpec.parse(text) == TargetSpec(node=node, numa=numa, gpus=gpus)


@pytest.mark.parametrize(
    ("text", "mentions"),
    [
        ("node1::x", "GPU id 'x'"),
        (":0", "node name is missing"),
        ("node1:a", "NUMA id 'a'"),
        ("node1::", "GPU list"),
        ("node1:0:1", "NUMA id '0:1'"),
        ("", "node name is missing"),
        ("node1::0,,1", "'0,,1'"),
        ("node1::1,1", "GPU 1 is named twice"),
        ("node1:-1", "NUMA id '-1'"),
        ("node 1", "'node 1'"),
        (" node1", "' node1'"),
        ("node1 ", "'node1 '"),
        ("node1: 0", "NUMA id ' 0'"),
        ("::0", "node name is missing"),
        ("a" * 64, "at most 63"),
        ("-node", "'-node'"),
        (".node", "'.node'"),
        ("node1:", "NUMA id is missing"),
        ("node1:::0", "GPU id ':0'"),
        ("node1::0::1", "GPU id '0::1'"),
        ("node1::-1", "GPU id '-1'"),
        ("nöde", "'nöde'"),
        ("node1:\u0661", "NUMA id '\u0661'"),  # an Arabic-Indic digit one
    ],
)
def test_parse_rejects(text: str, mentions: str) -> None:
    with pytest.raises(TargetError) as caught:
        TargetSpec.parse(text)
    message = str(caught.value)
    assert mentions in message
    assert repr(text) in message
    assert "NODE[:NUMA][::GPU[,GPU...]]" in message


@pytest.mark.parametrize(
    ("spec", "text"),
    [
        (TargetSpec("node1"), "node1"),
        (TargetSpec("node1", 0), "node1:0"),
        (TargetSpec("node3", gpus=(1, 0)), "node3::0,1"),
        (TargetSpec("node2", 1, (0,)), "node2:1::0"),
    ],
)
def test_str_is_canonical(spec: TargetSpec, text: str) -> None:
    assert str(spec) == text


@pytest.mark.parametrize(
    ("kwargs", "mentions"),
    [
        ({"node": ""}, "node name ''"),
        ({"node": "a:b"}, "node name 'a:b'"),
        ({"node": "n", "numa": -1}, "NUMA id -1"),
        ({"node": "n", "gpus": (0, -2)}, "GPU id -2"),
        ({"node": "n", "gpus": (3, 3)}, "GPU 3 is named twice"),
    ],
)
def test_direct_construction_is_validated(kwargs: dict[str, object], mentions: str) -> None:
    with pytest.raises(TargetError, match=mentions):
        TargetSpec(**kwargs)  # type: ignore[arg-type]


def test_error_keeps_parts() -> None:
    with pytest.raises(TargetError) as caught:
        TargetSpec.parse("node1::x")
    assert caught.value.target == "node1::x"
    assert "'x'" in caught.value.reason
    assert isinstance(caught.value, ValueError)


NODE_NAMES = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", fullmatch=True)
SPECS = st.builds(
    TargetSpec,
    node=NODE_NAMES,
    numa=st.none() | st.integers(min_value=0, max_value=999),
    gpus=st.sets(st.integers(min_value=0, max_value=64), max_size=8).map(tuple),
)


@PROPERTY
@given(SPECS)
def test_parse_of_str_is_identity(spec: TargetSpec) -> None:
    assert TargetSpec.parse(str(spec)) == spec


@PROPERTY
@given(
    NODE_NAMES,
    st.none() | st.integers(min_value=0, max_value=99),
    st.lists(st.integers(min_value=0, max_value=99), unique=True, max_size=6),
)
def test_written_text_parses_to_its_parts(node: str, numa: int | None, gpus: list[int]) -> None:
    text = node + ("" if numa is None else f":{numa}")
    if gpus:
        text += "::" + ",".join(map(str, gpus))
    spec = TargetSpec.parse(text)
    assert (spec.node, spec.numa, spec.gpus) == (node, numa, tuple(sorted(gpus)))
    assert TargetSpec.parse(str(spec)) == spec


@PROPERTY
@given(st.text(max_size=20))
def test_any_text_parses_or_raises_target_error(text: str) -> None:
    try:
        spec = TargetSpec.parse(text)
    except TargetError as error:
        assert repr(text) in str(error)
    else:
        assert TargetSpec.parse(str(spec)) == spec
