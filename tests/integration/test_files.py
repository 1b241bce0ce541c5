"""The files API inside a real running container, through host and runner:
round trips, confinement, task states, ownership, and the ``kawa files`` CLI."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from kawa.client.errors import KawaError
from kawa.client.files import RemoteFiles
from kawa.host.app import prepare_database
from kawa.host.auth import Authenticator
from kawa.protocol.tasks import TaskAction, TaskSpec
from tests.integration.cluster import Cluster, eventually


@pytest.fixture(scope="module")
def task(cluster: Cluster) -> Iterator[str]:
    """A running ``sleep 300`` task (node1)."""
    with cluster.client() as c:
        [t] = c.submit(TaskSpec(command=["sleep", "300"], targets=["node1"])).tasks
        eventually(lambda: c.task(t.id).state == "running", what="task running")
        yield t.id
        c.act(t.id, TaskAction.KILL)


@pytest.fixture
def files(cluster: Cluster) -> Iterator[RemoteFiles]:
    with RemoteFiles(cluster.url, cluster.token) as f:
        yield f


def names(files: RemoteFiles, task: str, path: str) -> set[str]:
    return {e.name for e in files.list(task, path).entries}


def test_put_get_ls_mkdir_mv_rm_round_trip(files: RemoteFiles, task: str) -> None:
    made = files.mkdir(task, "/tmp/rt/a/b", parents=True)
    assert made.type == "dir" and made.path == "/tmp/rt/a/b"
    written = files.write(task, "/tmp/rt/a/b/hello.txt", b"hello\n")
    assert written.size == 6
    listing = files.list(task, "/tmp/rt/a/b")
    [entry] = listing.entries
    assert (entry.name, entry.type, entry.size, entry.mode) == ("hello.txt", "file", 6, 0o644)
    assert entry.mtime > 0
    assert files.read(task, "/tmp/rt/a/b/hello.txt") == b"hello\n"
    files.move(task, "/tmp/rt/a/b/hello.txt", "/tmp/rt/a/renamed.txt")
    assert names(files, task, "/tmp/rt/a") == {"b", "renamed.txt"}
    with pytest.raises(KawaError) as missing:
        files.read(task, "/tmp/rt/a/b/hello.txt")
    assert missing.value.status == 404
    with pytest.raises(KawaError) as not_empty:  # a directory needs recursive
        files.remove(task, "/tmp/rt/a")
    assert not_empty.value.status == 400
    files.remove(task, "/tmp/rt/a/renamed.txt")
    files.remove(task, "/tmp/rt", recursive=True)
    assert "rt" not in names(files, task, "/tmp")


def test_put_without_parents_needs_the_directory(files: RemoteFiles, task: str) -> None:
    with pytest.raises(KawaError) as exc:
        files.write(task, "/tmp/nope/deeper/x.txt", b"x")
    assert exc.value.status == 404 and "/tmp/nope/deeper" in exc.value.message
    files.write(task, "/tmp/nope/deeper/x.txt", b"x", parents=True)
    assert files.read(task, "/tmp/nope/deeper/x.txt") == b"x"
    files.remove(task, "/tmp/nope", recursive=True)


def test_20mb_binary_round_trip_keeps_every_byte(
    files: RemoteFiles, task: str, tmp_path: Path
) -> None:
    data = os.urandom(20 * 1024 * 1024)
    source = tmp_path / "blob.bin"
    source.write_bytes(data)
    seen: list[tuple[int, int | None]] = []
    files.upload(task, source, "/tmp/blob.bin", on_bytes=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (len(data), len(data))
    back = tmp_path / "back.bin"
    got: list[tuple[int, int | None]] = []
    files.download(task, "/tmp/blob.bin", back, on_bytes=lambda d, t: got.append((d, t)))
    assert got[-1] == (len(data), len(data))
    digest = hashlib.sha256(back.read_bytes()).hexdigest()
    assert digest == hashlib.sha256(data).hexdigest()
    files.remove(task, "/tmp/blob.bin")


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("/../etc/passwd", "'..'"),
        ("/tmp/../../etc/passwd", "'..'"),
        ("etc/passwd", "not absolute"),
        ("./etc", "not absolute"),
        ("/proc/self/environ", "/proc"),
        ("/sys/kernel", "/sys"),
        ("/dev/null", "/dev"),
        ("//proc//1/environ", "/proc"),
    ],
)
def test_paths_outside_the_container_are_refused(
    files: RemoteFiles, task: str, path: str, why: str
) -> None:
    before = names(files, task, "/etc")
    for call in (
        lambda: files.read(task, path),
        lambda: files.list(task, path),
        lambda: files.write(task, path, b"pwned"),
        lambda: files.remove(task, path, recursive=True),
        lambda: files.mkdir(task, path),
        lambda: files.move(task, "/etc/hostname", path),
    ):
        with pytest.raises(KawaError) as exc:
            call()
        assert exc.value.status == 400, exc.value.message
        assert why in exc.value.message
    assert names(files, task, "/etc") == before
    assert b"pwned" not in files.read(task, "/etc/passwd")


def test_directories_are_not_read_as_files(files: RemoteFiles, task: str) -> None:
    with pytest.raises(KawaError) as exc:
        files.read(task, "/etc")
    assert exc.value.status == 400 and "is a directory" in exc.value.message
    with pytest.raises(KawaError) as listing:
        files.list(task, "/etc/hostname")
    assert listing.value.status == 400 and "not a directory" in listing.value.message


def test_unknown_and_finished_tasks_are_clear_errors(cluster: Cluster, files: RemoteFiles) -> None:
    with pytest.raises(KawaError) as unknown:
        files.list("999999999", "/")
    assert unknown.value.status == 404
    with cluster.client() as c:
        [t] = c.submit(TaskSpec(command=["true"], targets=["node1"])).tasks
        c.wait([t.id], timeout=60)
    with pytest.raises(KawaError) as done:
        files.list(t.id, "/")
    assert done.value.status == 409
    assert f"task {t.id} is" in done.value.message and "no longer runs" in done.value.message


def test_paused_task_reads_but_does_not_write(
    cluster: Cluster, files: RemoteFiles, task: str
) -> None:
    files.write(task, "/tmp/paused.txt", b"frozen")
    with cluster.client() as c:
        c.act(task, TaskAction.PAUSE)
        try:
            eventually(lambda: c.task(task).state == "paused", what="paused")
            assert files.read(task, "/tmp/paused.txt") == b"frozen"  # the archive API reads
            with pytest.raises(KawaError) as exc:
                files.write(task, "/tmp/paused.txt", b"x")
            assert exc.value.status == 409 and "paused" in exc.value.message
        finally:
            c.act(task, TaskAction.RESUME)
            eventually(lambda: c.task(task).state == "running", what="resumed")


def test_others_tasks_are_not_found(cluster: Cluster, task: str) -> None:
    auth = Authenticator(prepare_database(cluster.host_config()), cluster.secret)
    bob, vic = auth.create_token("bob-files", "user"), auth.create_token("vic-files", "viewer")
    with RemoteFiles(cluster.url, bob) as other:
        with pytest.raises(KawaError) as exc:
            other.list(task, "/")
        assert exc.value.status == 404
        with pytest.raises(KawaError) as put:
            other.write(task, "/tmp/bob.txt", b"bob")
        assert put.value.status == 404
    with RemoteFiles(cluster.url, vic) as viewer:  # a viewer sees only its own tasks
        for call in (lambda: viewer.list(task, "/"), lambda: viewer.write(task, "/tmp/v", b"v")):
            with pytest.raises(KawaError) as exc:
                call()
            assert exc.value.status == 404
    with RemoteFiles(cluster.url, cluster.token) as admin:
        assert not {"bob.txt", "v"} & names(admin, task, "/tmp")


def test_cli_files_commands(cluster: Cluster, task: str, tmp_path: Path) -> None:
    local = tmp_path / "notes.txt"
    local.write_text("from the cli\n")
    r = cluster.cli("files", "mkdir", task, "/tmp/cli", "-p")
    assert r.returncode == 0, r.stderr
    r = cluster.cli("files", "put", task, str(local), "/tmp/cli/")
    assert r.returncode == 0, r.stderr
    assert "/tmp/cli/notes.txt" in r.stdout
    r = cluster.cli("files", "ls", task, "/tmp/cli")
    assert r.returncode == 0 and "notes.txt" in r.stdout and "-rw-r--r--" in r.stdout, r
    r = cluster.cli("files", "mv", task, "/tmp/cli/notes.txt", "/tmp/cli/moved.txt")
    assert r.returncode == 0, r.stderr
    r = cluster.cli("files", "get", task, "/tmp/cli/moved.txt", "-")
    assert r.returncode == 0 and r.stdout == "from the cli\n", r
    out = tmp_path / "out.txt"
    r = cluster.cli("files", "get", task, "/tmp/cli/moved.txt", str(out))
    assert r.returncode == 0 and out.read_text() == "from the cli\n", r
    r = cluster.cli("files", "rm", task, "/tmp/cli", "-r")
    assert r.returncode == 0, r.stderr
    r = cluster.cli("files", "ls", task, "/proc/self")
    assert r.returncode == 1 and "under /proc" in r.stderr, r
    r = cluster.cli("files", "get", task, "relative.txt")
    assert r.returncode == 1 and "not absolute" in r.stderr, r
