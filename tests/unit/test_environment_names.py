"""Environment names (Docker's rules), versions (sortable, unique) and the apt mirror
a bootstrap uses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from kawa.core.environments import check_name, check_version, image_ref, new_version
from kawa.host.bootstrap import mirror_from_apt


@pytest.mark.parametrize("name", ["py312", "torch-2.4", "a", "my_env.v2", "x" * 64])
def test_names_docker_accepts(name: str) -> None:
    assert check_name(name) == name
    assert image_ref(name, "20261121T184501Z") == f"kawa-env/{name}:20261121T184501Z"


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("Py312", "lowercase"),
        ("has space", "bad environment name"),
        ("-lead", "bad environment name"),
        ("trail_", "bad environment name"),
        ("two..dots", "bad environment name"),
        ("a/b", "bad environment name"),
        ("", "may not be empty"),
        ("x" * 65, "longer than 64"),
    ],
)
def test_names_docker_rejects(name: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        check_name(name)


def test_versions_sort_in_the_order_they_were_made() -> None:
    t0 = datetime(2026, 11, 21, 18, 45, 1, tzinfo=UTC)
    made: list[str] = []
    for step in [0, 0, 0, 1, 1, 60]:
        made.append(new_version(t0 + timedelta(seconds=step), made))
    assert made[:4] == [
        "20261121T184501Z",
        "20261121T184501Z-02",
        "20261121T184501Z-03",
        "20261121T184502Z",
    ]
    assert made == sorted(made) and len(set(made)) == len(made)
    assert all(check_version(v) == v for v in made)
    east = datetime(2026, 11, 22, 3, 45, 1, tzinfo=timezone(timedelta(hours=9)))
    assert new_version(east) == "20261121T184501Z"  # always UTC
    with pytest.raises(ValueError):
        check_version("bad version")


def test_mirror_from_deb822_and_one_line_sources(tmp_path: Path) -> None:
    (tmp_path / "debian.sources").write_text(
        "Types: deb\nURIs: http://deb.example.org/debian\nSuites: bookworm bookworm-updates\n"
        "Components: main\n\n"
        "Types: deb\nURIs: http://security.example.org/debian-security\n"
        "Suites: bookworm-security\nComponents: main\n"
    )
    (tmp_path / "other.list").write_text(
        "# a comment\ndeb [arch=amd64] https://thirdparty.example.com/apt stable main\n"
        "deb http://old.example.org/debian bullseye main contrib\n"
    )
    patterns = [str(tmp_path / "*.sources"), str(tmp_path / "*.list")]
    assert mirror_from_apt("bookworm", patterns) == "http://deb.example.org/debian"
    # no entry for the suite itself: another suite's Debian archive will do
    assert mirror_from_apt("trixie", patterns) == "http://deb.example.org/debian"
    assert mirror_from_apt("bookworm", [str(tmp_path / "*.list")]) == (
        "http://old.example.org/debian"
    )
    (tmp_path / "off.sources").write_text(
        "Enabled: no\nTypes: deb\nURIs: http://x.example.org/debian\nSuites: sid\n"
        "Components: main\n"
    )
    assert mirror_from_apt("sid", [str(tmp_path / "off.sources")]) is None
