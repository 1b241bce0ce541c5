"""The CLI's quick paths (``kawa ssh``/``kawa proxy`` without typer, the standard-library
reading of ``[client]``) must agree with the full CLI and client they stand in for."""

from __future__ import annotations

from pathlib import Path

import pytest

from kawa.cli import lite, ssh_args, ssh_run
from kawa.settings import ClientConfig, ConfigError

CONFIGS = [
    pytest.param("", {}, id="defaults"),
    pytest.param('[client]\nurl = "http://h:1/"\ntoken = "t"\n', {}, id="file"),
    pytest.param('[client]\ntimeout = 5\n', {"KAWA_CLIENT_TIMEOUT": "2.5"}, id="env-wins"),
    pytest.param("", {"KAWA_CLIENT_URL": "https://x", "KAWA_CLIENT_TOKEN": "k"}, id="env"),
]


@pytest.mark.parametrize(("text", "env"), CONFIGS)
def test_plain_client_config_reads_what_the_settings_loader_reads(
    text: str, env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    monkeypatch.setenv("KAWA_CONFIG", str(path))
    for key in ("URL", "TOKEN", "TIMEOUT"):
        monkeypatch.delenv(f"KAWA_CLIENT_{key}", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    quick = lite._plain_client_config()
    full = ClientConfig.load()
    assert quick == lite.Credentials(full.url.rstrip("/"), full.token, full.timeout)


@pytest.mark.parametrize(
    ("text", "env"),
    [
        pytest.param("[client]\ntimeout = -1\n", {}, id="bad-timeout"),
        pytest.param("[client]\nsurprise = 1\n", {}, id="unknown-key"),
        pytest.param("", {"KAWA_CLIENT_TIMEOUT": "soon"}, id="bad-env"),
        pytest.param("[client\n", {}, id="not-toml"),
        pytest.param("client = 3\n", {}, id="not-a-table"),
        pytest.param("", {"KAWA_CLIENT_CA_FILE": "/nowhere.pem"}, id="ca-file"),
    ],
)
def test_anything_unusual_is_left_to_the_settings_loader(
    text: str, env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text)
    monkeypatch.setenv("KAWA_CONFIG", str(path))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert lite._plain_client_config() is None


def test_a_section_that_is_not_a_table_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "config.toml"
    path.write_text("client = 3\n")
    monkeypatch.setenv("KAWA_CONFIG", str(path))
    with pytest.raises(ConfigError, match=r"invalid \[client\] configuration: not a table"):
        ClientConfig.load()


@pytest.mark.parametrize(
    ("args", "parsed"),
    [
        (["42"], ("42", None, [])),
        (["42", "-i", "k"], ("42", Path("k"), [])),
        (["--identity=k", "42", "--", "-p", "2", "ls"], ("42", Path("k"), ["-p", "2", "ls"])),
        (["--help"], None),
        (["42", "--json"], None),
        ([], None),
        (["1", "2"], None),
        ([""], None),  # not an id: the full CLI says what is wrong with it
        (["web"], None),
        (["\uff14\uff12"], None),
    ],
)
def test_simple_ssh_command_lines_take_the_quick_path(
    args: list[str], parsed: tuple[str, Path | None, list[str]] | None
) -> None:
    assert ssh_args.parse_ssh(args) == parsed
    assert (ssh_run.fast_path(["ssh", *args]) is not None) == (parsed is not None)


def test_proxy_quick_path_needs_an_id_and_a_port() -> None:
    assert ssh_run.fast_path(["proxy", "42", "22"]) is not None
    for bad in (
        ["proxy", "42", "0"],
        ["proxy", "42", "x"],
        ["proxy", "", "22"],
        ["proxy", "web", "22"],
        ["proxy", "--help"],
        ["task"],
    ):
        assert ssh_run.fast_path(bad) is None, bad


@pytest.mark.parametrize(
    ("options", "own"),
    [
        (["-J", "jump"], True),
        (["-Jjump"], True),
        (["-o", "ProxyCommand=nc %h %p"], True),
        (["-oProxyJump=j"], True),
        (["-p", "2222", "-v"], False),
        (["-o", "ServerAliveInterval=5"], False),
    ],
)
def test_user_chosen_proxies_keep_the_classic_proxy_command(
    options: list[str], own: bool
) -> None:
    assert ssh_args.own_proxy(options) is own
