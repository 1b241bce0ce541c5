"""Bad command lines as a user types them, through the real ``kawa`` entry point against a
real host started here: each gets its exit code, one clear ``error: …`` on stderr (no
traceback, no raw control character) and stores nothing. And strings the host hands
back (a task name or error from an old row) reach the terminal escaped, never as raw
control bytes or rich markup, while ``--json`` stays exact.
"""

from __future__ import annotations

import http.server
import json
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from kawa.cli import lite
from kawa.cli.output import CliError
from kawa.client.errors import KawaError, raise_for
from kawa.core.ids import IdGenerator
from kawa.host.app import prepare_database
from kawa.store.models import Task, TaskTransition
from tests.conftest import BASE_IMAGE
from tests.integration.cluster import Cluster

RAW_NAME = "\x1b[31mRED\x07\nline2"
SHOWN_NAME = "\\x1b[31mRED\\x07\\nline2"
RAW_ERROR = "boom\x1b]0;pwned\x07 [bold]not bold[/] [/]"
SHOWN_ERROR = "boom\\x1b]0;pwned\\x07 [bold]not bold[/] [/]"
RAW_COMMAND = ["printf", "\x1b[2J\r"]
SHOWN_COMMAND = "printf \\x1b[2J\\r"
CONTROL = ("\x1b", "\x07", "\r")


@dataclass
class Host:
    cluster: Cluster
    old_id: str
    """A failed task stored before names were checked: control characters and markup."""

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.cluster.cli(*args, timeout=60)

    def task_ids(self) -> list[str]:
        with self.cluster.client() as c:
            return [t.id for t in c.tasks(limit=10000)]


def store_old_row(
    cluster: Cluster, name: str = RAW_NAME, kind: str = "command", state: str = "failed"
) -> str:
    """A task row as an older host stored it, written to the host's database directly."""
    sessions = prepare_database(cluster.host_config())
    task_id = IdGenerator(worker=1).next()
    now = datetime.now(UTC)
    try:
        with sessions.begin() as s:
            s.add(
                Task(
                    id=task_id,
                    batch_id=task_id,
                    name=name,
                    kind=kind,
                    state=state,
                    desired="run",
                    owner="admin",
                    command=RAW_COMMAND,
                    target=None,
                    node=None,
                    gpu_ids=[],
                    cpuset=[],
                    cores=1,
                    memory=None,
                    gpus=0,
                    env={},
                    mounts=[],
                    network="host",
                    priority=0,
                    exit_code=3,
                    error=RAW_ERROR,
                    created_at=now,
                    finished_at=now,
                )
            )
            s.flush()
            s.add(
                TaskTransition(
                    task_id=task_id,
                    at=now,
                    source=None,
                    target=state,
                    event="failed",
                    cause="old\x1b[5mcause\x07",
                )
            )
    finally:
        sessions.kw["bind"].dispose()
    return str(task_id)


@pytest.fixture(scope="module")
def host(docker_available: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    """A host with one runner (node1), and an old row in its database."""
    cluster = Cluster(Path(tmp_path_factory.mktemp("bad-cli")), BASE_IMAGE)
    try:
        cluster.start_host()
        cluster.add_runner("node1", cores=2)
        yield Host(cluster, store_old_row(cluster))
    finally:
        cluster.close()


def flat(text: str) -> str:
    """Text with rich's line wrapping undone."""
    return " ".join(text.split())


@dataclass(frozen=True)
class Bad:
    args: list[str]
    code: int
    needles: list[str]


BAD = [
    pytest.param(
        Bad(
            ["task", "submit", "--target", "node1", "--memroy", "4G", "--", "echo", "typo"],
            2,
            ["no such option: --memroy", "did you mean --memory?"],
        ),
        id="mistyped-option-before-dashes",
    ),
    pytest.param(
        Bad(["task", "submit", "-x", "--", "true"], 2, ["no such option: -x"]),
        id="unknown-short-option",
    ),
    pytest.param(
        Bad(["task", "submit", "echo", "hi"], 2, ["unexpected argument 'echo'", "after --"]),
        id="command-without-dashes",
    ),
    pytest.param(
        Bad(["task", "submit", "--cores", "1", "--"], 2, ["no command given after --"]),
        id="nothing-after-dashes",
    ),
    pytest.param(
        Bad(["task", "submit", "--name", "--", "echo"], 2, ["'--name' requires an argument"]),
        id="dashes-as-an-option-value",
    ),
    pytest.param(
        Bad(["task", "submit", "--memory", "4Q", "--", "true"], 2, ["invalid memory size '4Q'"]),
        id="memory-unit",
    ),
    pytest.param(
        Bad(["task", "submit", "--memory", "lots", "--", "true"], 2, ["'lots'"]),
        id="memory-word",
    ),
    pytest.param(
        Bad(["task", "submit", "--target", "node1::x", "--", "true"], 2, ["GPU id 'x'"]),
        id="target-syntax",
    ),
    pytest.param(
        Bad(["task", "submit", "--target", "ghost", "--", "true"], 1, ["unknown node 'ghost'"]),
        id="target-unknown-node",
    ),
    pytest.param(
        Bad(["task", "submit", "--timeout", "5x", "--", "true"], 2, ["invalid duration '5x'"]),
        id="duration-unit",
    ),
    pytest.param(
        Bad(["task", "submit", "--cores", "two", "--", "true"], 2, ["--cores", "integer"]),
        id="cores-not-a-number",
    ),
    pytest.param(
        Bad(
            ["task", "submit", "--name", "\x1b[31mRED\x07\nline2", "--", "true"],
            2,
            ["--name", "control characters"],
        ),
        id="control-characters-in-name",
    ),
    pytest.param(Bad(["task", "status", ""], 2, ["task id is empty"]), id="status-empty-id"),
    pytest.param(Bad(["task", "kill", "  "], 2, ["task id is empty"]), id="kill-blank-id"),
    pytest.param(
        Bad(["task", "logs", "12/34"], 2, ["bad task id '12/34'", "digits"]), id="logs-slash-id"
    ),
    pytest.param(Bad(["task", "wait", "1", ""], 2, ["task id is empty"]), id="wait-empty-id"),
    pytest.param(
        Bad(["task", "status", "999999"], 1, ["no task with id 999999"]),
        id="id-prefix-matching-nothing",
    ),
    pytest.param(
        Bad(["task", "list", "--limt", "3"], 2, ["no such option: --limt", "--limit"]),
        id="list-mistyped-option",
    ),
    pytest.param(
        Bad(["task", "list", "--", "foo"], 2, ["unexpected extra argument", "foo"]),
        id="dashes-where-no-command-is-taken",
    ),
    pytest.param(Bad(["ssh", ""], 2, ["task id is empty"]), id="ssh-empty-id"),
    pytest.param(
        Bad(["ssh", "42", "--identiy", "k", "--", "true"], 2, ["no such option: --identiy"]),
        id="ssh-mistyped-option",
    ),
    pytest.param(
        Bad(["ssh", "42", "uptime"], 2, ["unexpected argument 'uptime'", "after --"]),
        id="ssh-command-without-dashes",
    ),
    pytest.param(Bad(["node", "health", ""], 2, ["node name is empty"]), id="node-empty-name"),
    pytest.param(Bad(["node", "drain", "a/b"], 2, ["bad node name 'a/b'"]), id="node-slash"),
    pytest.param(
        Bad(["container", "shell", ""], 2, ["environment name may not be empty"]),
        id="environment-empty-name",
    ),
    pytest.param(Bad(["vps", "stop", ""], 2, ["task id is empty"]), id="vps-empty-id"),
    pytest.param(Bad(["files", "ls", "", "/"], 2, ["task id is empty"]), id="files-empty-id"),
]


@pytest.mark.parametrize("bad", BAD)
def test_bad_command_line_is_refused_and_stores_nothing(host: Host, bad: Bad) -> None:
    before = host.task_ids()
    r = host.cli(*bad.args)
    out = f"exit {r.returncode}\nstdout: {r.stdout!r}\nstderr: {r.stderr!r}"
    assert r.returncode == bad.code, out
    assert r.stderr.startswith("error:"), out
    assert "Traceback" not in r.stderr, out
    assert not any(c in r.stderr for c in CONTROL), out
    for needle in bad.needles:
        assert needle in flat(r.stderr), (needle, out)
    assert host.task_ids() == before, "a refused command line stored a task"


def test_everything_after_dashes_is_the_command_verbatim(host: Host) -> None:
    r = host.cli(
        "task", "submit", "--target", "node1", "--wait", "--json",
        "--", "echo", "-la", "--color", "--memroy", "4G", "--",
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    [task] = json.loads(r.stdout)
    assert task["command"] == ["echo", "-la", "--color", "--memroy", "4G", "--"]
    assert task["memory"] is None and task["state"] == "completed"
    logs = host.cli("task", "logs", task["id"])
    assert logs.stdout == "-la --color --memroy 4G --\n", logs


def test_old_rows_print_escaped_in_task_list(host: Host) -> None:
    r = host.cli("task", "list")
    assert r.returncode == 0, r.stderr
    row = next(line for line in r.stdout.splitlines() if line.startswith(host.old_id))
    assert SHOWN_NAME in row and SHOWN_COMMAND in row, r.stdout
    assert not any(c in r.stdout for c in CONTROL), repr(r.stdout)


def test_old_rows_print_escaped_in_task_status(host: Host) -> None:
    r = host.cli("task", "status", host.old_id)
    assert r.returncode == 0, r.stderr
    assert not any(c in r.stdout for c in CONTROL), repr(r.stdout)
    assert SHOWN_NAME in r.stdout and SHOWN_COMMAND in r.stdout
    assert SHOWN_ERROR in flat(r.stdout), "markup in the host's error was interpreted"
    assert "old\\x1b[5mcause\\x07" in r.stdout


def test_old_rows_print_escaped_in_outcome_lines(host: Host) -> None:
    r = host.cli("task", "wait", host.old_id)
    assert r.returncode == 3, (r.returncode, r.stdout, r.stderr)
    assert not any(c in r.stdout for c in CONTROL), repr(r.stdout)
    assert SHOWN_ERROR in flat(r.stdout)


def test_json_output_stays_exact(host: Host) -> None:
    r = host.cli("task", "status", host.old_id, "--json")
    assert r.returncode == 0, r.stderr
    found = json.loads(r.stdout)
    assert (found["name"], found["error"], found["command"]) == (
        RAW_NAME,
        RAW_ERROR,
        RAW_COMMAND,
    )


def test_error_messages_print_control_characters_escaped(host: Host, tmp_path: Path) -> None:
    missing = tmp_path / "no[bold]such\x1b[31mfile\x07"
    r = host.cli("files", "put", host.old_id, str(missing), "/tmp/x")
    assert r.returncode == 1, r.stderr
    assert r.stderr.startswith("error:") and "Traceback" not in r.stderr, r.stderr
    assert not any(c in r.stderr for c in CONTROL), repr(r.stderr)
    assert "no[bold]such\\x1b[31mfile\\x07 is not a file" in flat(r.stderr)


def test_ssh_config_keeps_a_name_out_of_the_config_unless_it_is_one_word(host: Host) -> None:
    vps_id = store_old_row(
        host.cluster, name="x\n    ProxyCommand touch /tmp/pwned", kind="vps", state="stopped"
    )
    r = host.cli("ssh-config")
    assert r.returncode == 0, r.stderr
    assert f"Host kawa-{vps_id}\n" in r.stdout, r.stdout
    assert "pwned" not in r.stdout, r.stdout


class _Redirecting(http.server.BaseHTTPRequestHandler):
    """Answers every request with a redirect, as a proxy or a web server in front of the
    wrong port might (the Kawa host itself never redirects)."""

    def do_GET(self) -> None:
        self.send_response(307)
        self.send_header("Location", "http://127.0.0.1:1/elsewhere")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def redirecting_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Redirecting)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_the_host_never_redirects(host: Host) -> None:
    """``/tasks/`` is what an empty id used to make: a JSON 404, not a redirect."""
    url = f"{host.cluster.url}/api/v1/tasks/"
    with httpx.Client(headers={"Authorization": f"Bearer {host.cluster.token}"}) as h:
        response = h.get(url)
    assert response.status_code == 404, response
    assert "detail" in response.json()


def test_a_redirect_is_reported_as_one(redirecting_url: str) -> None:
    with httpx.Client() as h:
        response = h.get(f"{redirecting_url}/api/v1/tasks/")
    assert response.status_code == 307, response
    with pytest.raises(KawaError) as exc:
        raise_for(response)
    assert "redirect" in exc.value.message and "[client] url" in exc.value.message
    creds = lite.Credentials(redirecting_url, "token", 30.0)
    with pytest.raises(CliError) as quick:
        lite.call(creds, "GET", "/tasks/")
    assert "redirect" in quick.value.message and "unexpected answer" not in quick.value.message


def test_the_client_refuses_an_empty_id_before_any_request(host: Host) -> None:
    with host.cluster.client() as c:
        for call in (lambda: c.task(""), lambda: c.node(" "), lambda: c.start_workspace("..")):
            with pytest.raises(KawaError) as exc:
                call()
            assert exc.value.status is None, "the request was sent"
