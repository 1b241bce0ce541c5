"""VPS key checks and ``kawa ssh`` argument handling (no Docker needed)."""

from __future__ import annotations

import base64

import pytest

from kawa.cli.ssh import proxy_command, split_ssh_args
from kawa.protocol.tasks import TaskSpec, check_public_key
from kawa.runner import vps

BLOB = base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519" + b"\x00\x00\x00\x20" + b"k" * 32).decode()
KEY = f"ssh-ed25519 {BLOB} me@laptop"


def test_a_good_key_is_kept_stripped() -> None:
    assert check_public_key(f"  {KEY}\n") == KEY
    assert TaskSpec(kind="vps", ssh_key=KEY).ssh_key == KEY  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "not an OpenSSH public key"),
        ("hello", "not an OpenSSH public key"),
        ("ssh-dss AAAA", "not an OpenSSH public key"),
        ("ssh-ed25519 !!!", "malformed"),
        (f"ssh-rsa {BLOB}", "does not match its type"),
        (f"{KEY}\n{KEY}", "single line"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----\nabc", "private key"),
    ],
)
def test_bad_keys_are_refused(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        check_public_key(text)


def test_ssh_options_go_before_the_destination() -> None:
    assert split_ssh_args(["-o", "A=b", "-v", "-L", "1:h:2", "ls", "-l"]) == (
        ["-o", "A=b", "-v", "-L", "1:h:2"],
        ["ls", "-l"],
    )
    assert split_ssh_args(["-oA=b", "--", "-x"]) == (["-oA=b"], ["-x"])
    assert split_ssh_args([]) == ([], [])


def test_proxy_command_names_the_task_and_port() -> None:
    assert proxy_command("123", 22).endswith("-m kawa.cli.main proxy 123 22")


def test_the_entrypoint_never_contains_the_key() -> None:
    from tests.support import run_order

    order = run_order(
        task_id="1", kind="vps", command=[], image="img", network="bridge", ssh_key=KEY
    )
    args = vps.adjust_args({"environment": {"A": "1"}}, order)
    assert args["environment"] == {"A": "1", "KAWA_SSH_KEY": KEY}
    assert all(KEY not in part for part in args["entrypoint"])
    assert args["restart_policy"] == {"Name": "unless-stopped"}
    assert args["network_mode"] == "bridge"
