"""Which command lines the quick path of ``kawa run`` / ``kawa task submit`` takes, and
what it reads from them; every other line is left to the full CLI."""

from __future__ import annotations

import pytest

from kawa.cli.quick_tasks import exit_code_of, parse


def test_a_plain_run_line_is_read_as_the_full_cli_reads_it() -> None:
    plan = parse(
        "run",
        ["--cores", "2", "--memory=4G", "-e", "A=1", "--env", "A=2", "--env", "B=x=y",
         "--target", "node1:0", "--name", "n", "--cores", "3", "-d", "--", "sh", "-c", "--x"],
    )
    assert plan is not None and plan.detach and not plan.wait
    assert plan.body == {
        "command": ["sh", "-c", "--x"],
        "cores": 3,  # the last one counts
        "memory": "4G",
        "env": {"A": "2", "B": "x=y"},
        "targets": ["node1:0"],
        "name": "n",
    }


def test_submit_knows_its_own_short_options() -> None:
    plan = parse("submit", ["-t", "node2", "--wait", "--", "true"])
    assert plan is not None and plan.wait
    assert plan.body == {"command": ["true"], "targets": ["node2"]}
    assert parse("run", ["-t", "node2", "--", "true"]) is None  # -t is a terminal there


@pytest.mark.parametrize(
    "words",
    [
        ["echo", "hi"],
        ["--"],
        ["--help", "--", "true"],
        ["--mount", "/a:/b", "--", "true"],
        ["--sweep", "--", "echo", "span:{1..2}"],
        ["--target", "a", "--target", "b", "--", "true"],
        ["--cores", "x", "--", "true"],
        ["--cores=1_0", "--", "true"],
        ["--env", "NOEQ", "--", "true"],
        ["--env", "=v", "--", "true"],
        ["--container", "NULL", "--", "true"],
        ["--name", "a\x1bb", "--", "true"],
        ["--cores", "--", "true"],
        ["-it", "--", "bash"],
        ["--wait", "--", "true"],
        ["-d2", "--", "true"],
    ],
)
def test_anything_else_goes_to_the_full_cli(words: list[str]) -> None:
    assert parse("run", words) is None


def test_the_exit_code_is_the_first_failure_s() -> None:
    ok = {"state": "completed", "exit_code": 0}
    assert exit_code_of([ok, ok]) == 0
    assert exit_code_of([ok, {"state": "failed", "exit_code": 3}]) == 3
    assert exit_code_of([{"state": "killed", "exit_code": None}]) == 1
    assert exit_code_of([{"state": "lost", "exit_code": 0}]) == 1


def test_the_state_names_the_quick_path_knows_are_the_state_machine_s() -> None:
    from kawa.cli.run_output import DONE, UNSTARTED
    from kawa.core.task_states import AWAITING_START, WAIT_DONE_STATES

    assert {s.value for s in WAIT_DONE_STATES} == DONE
    assert {s.value for s in AWAITING_START} == UNSTARTED


def test_a_list_of_hosts_is_tried_in_order() -> None:
    import socket
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from kawa.cli import lite

    class Answer(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b'{"ok": true}'
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{closed.getsockname()[1]}"
    server = HTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        live = f"http://127.0.0.1:{server.server_address[1]}"
        creds = lite.Credentials(f"{dead}, {live}/", "t", 5.0)
        assert lite.host_urls(creds) == [dead, live]
        assert lite.usable(creds, several=True) and not lite.usable(creds)
        assert lite.call(creds, "GET", "/health") == {"ok": True}
        nobody = lite.Credentials(f"{dead},{dead}", "t", 5.0)
        try:
            lite.call(nobody, "GET", "/health")
        except lite.NotSent as exc:
            assert exc.message.startswith(f"cannot reach the Kawa host at {dead}, {dead}:")
        else:
            raise AssertionError("no host answered, yet the call did not fail")
    finally:
        server.shutdown()
        server.server_close()
