"""The quick path's HTTP client against a loopback server that answers canned bytes."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from kawa.cli import bare_http


@contextmanager
def answering(raw: bytes) -> Iterator[tuple[int, list[bytes]]]:
    """A server on 127.0.0.1 that reads one request (head and body) and writes ``raw``,
    then closes; its port and the requests it received."""
    listener = socket.create_server(("127.0.0.1", 0))
    heads: list[bytes] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                data = conn.recv(4096)
                if not data:
                    break
                head += data
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            while len(head.partition(b"\r\n\r\n")[2]) < length:
                head += conn.recv(4096)
            heads.append(head)
            conn.sendall(raw)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], heads
    finally:
        thread.join(5)
        listener.close()


def ask(port: int, method: str = "GET", body: bytes | None = None) -> bare_http.Answer:
    sock = bare_http.connect("http", "127.0.0.1", port, 5.0)
    return bare_http.send(sock, method, "/api/v1/x?a=1", f"127.0.0.1:{port}", {"X-K": "v"}, body)


def test_content_length_body_and_request_head() -> None:
    raw = b"HTTP/1.1 201 Created\r\nContent-Length: 5\r\nX-Y:  z \r\n\r\nhello"
    with answering(raw) as (port, heads):
        answer = ask(port, "POST", b'{"a":1}')
        assert (answer.status, answer.reason) == (201, "Created")
        assert answer.header("x-y") == "z" and answer.header("X-Y") == "z"
        assert answer.read() == b"hello"
        answer.close()
    head = heads[0].decode()
    assert head.startswith("POST /api/v1/x?a=1 HTTP/1.1\r\n")
    for line in (f"Host: 127.0.0.1:{port}", "Connection: close", "X-K: v", "Content-Length: 7"):
        assert f"\r\n{line}\r\n" in head
    assert head.endswith('\r\n\r\n{"a":1}')


def test_chunked_body_comes_piece_by_piece() -> None:
    raw = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n"
        b"a;ext=1\r\n0123456789\r\n"
        b"0\r\nTrailer: t\r\n\r\n"
    )
    with answering(raw) as (port, _):
        answer = ask(port)
        assert [answer.read1(), answer.read1(), answer.read1()] == [b"abc", b"0123456789", b""]
        answer.close()


def test_body_until_the_connection_closes() -> None:
    with answering(b"HTTP/1.0 200 OK\r\n\r\n" + b"z" * 200_000) as (port, _):
        answer = ask(port)
        assert answer.read() == b"z" * 200_000
        answer.close()


def test_no_body_for_204() -> None:
    with answering(b"HTTP/1.1 204 No Content\r\n\r\n") as (port, _):
        answer = ask(port)
        assert answer.status == 204 and answer.read() == b""
        answer.close()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"SSH-2.0-OpenSSH_9\r\n\r\n", "not an HTTP answer"),
        (b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", "bad header line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "closed mid-answer"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "bad Content-Length"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", "closed mid-answer"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "bad chunk size"),
        (b"HTTP/1.1 200 OK\r\nContent-Le", "closed mid-answer"),
    ],
)
def test_broken_answers_are_refused(raw: bytes, message: str) -> None:
    with answering(raw) as (port, _), pytest.raises(bare_http.BadAnswer, match=message):
        answer = ask(port)
        try:
            answer.read()
        finally:
            answer.close()


def test_a_line_break_in_the_head_sends_nothing() -> None:
    with answering(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n") as (port, heads):
        sock = bare_http.connect("http", "127.0.0.1", port, 5.0)
        with pytest.raises(ValueError, match="line break"):
            bare_http.send(sock, "GET", "/", "h", {"Authorization": "Bearer a\r\nX-Evil: 1"})
        sock.close()
    assert heads == [b""]


def test_unreachable_host_is_an_oserror() -> None:
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    with pytest.raises(OSError):
        bare_http.connect("http", "127.0.0.1", port, 5.0)
