"""The audit log's pieces: --since parsing, action names, what a submission records, and
the row bound (against a real, migrated SQLite database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kawa.cli.audit import parse_since
from kawa.cli.output import CliError
from kawa.host.app import prepare_database
from kawa.host.audit import AuditLog, record, submission, task_action
from kawa.host.auth import Principal
from kawa.host.errors import Forbidden
from kawa.protocol.tasks import Mount, TaskSpec
from kawa.settings import HostConfig

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1h", NOW - timedelta(hours=1)),
        ("90", NOW - timedelta(seconds=90)),
        ("1h30m", NOW - timedelta(minutes=90)),
        ("2d", NOW - timedelta(days=2)),
        ("2026-12-01T08:00:00Z", datetime(2026, 12, 1, 8, tzinfo=UTC)),
        ("2026-12-01T08:00:00+02:00", datetime(2026, 12, 1, 6, tzinfo=UTC)),
        ("2026-12-01 08:00", datetime(2026, 12, 1, 8, tzinfo=UTC)),
        ("2026-12-01", datetime(2026, 12, 1, tzinfo=UTC)),
    ],
)
def test_since_takes_a_duration_or_a_timestamp(text: str, expected: datetime) -> None:
    assert parse_since(text, NOW) == expected


@pytest.mark.parametrize("text", ["", "yesterday", "-1h", "1x", "2026-13-01", "0"])
def test_a_bad_since_is_a_clear_error(text: str) -> None:
    with pytest.raises(CliError) as exc:
        parse_since(text, NOW)
    assert exc.value.code == 2
    assert "invalid --since" in exc.value.message and "duration" in exc.value.message


def test_action_names() -> None:
    assert task_action("command", "submit") == "task.submit"
    assert task_action("command", "kill") == "task.kill"
    assert task_action("vps", "submit") == "vps.create"
    assert task_action("vps", "stop") == "vps.stop"
    assert task_action("vps", "restart") == "vps.restart"


def test_a_submission_names_its_tasks_but_no_command_or_env_values() -> None:
    spec = TaskSpec(
        command=["sh", "-c", "echo s3cret-arg"],
        env={"API_KEY": "s3cret-env"},
        name="train",
        privileged=True,
        mounts=[Mount(source="/data", target="/data")],
    )
    action, target, detail = submission(spec, 7, [8])
    assert (action, target) == ("task.submit", "8")
    assert "privileged" in detail and "/data:/data" in detail and "name train" in detail
    assert "s3cret" not in detail and "API_KEY" not in detail
    action, target, detail = submission(TaskSpec(command=["true"]), 7, [8, 9, 10])
    assert (action, target) == ("task.submit", "batch 7")
    assert "3 task(s)" in detail and "8..10" in detail


def _log(tmp_path: Path, max_rows: int) -> AuditLog:
    cfg = HostConfig(data_dir=tmp_path, cluster_secret="s")
    return AuditLog(prepare_database(cfg), max_rows)


ADMIN = Principal("root", "admin", 1, "127.0.0.1")


def test_prune_keeps_the_newest_rows(tmp_path: Path) -> None:
    log = _log(tmp_path, max_rows=5)
    with log.sessions.begin() as s:
        for i in range(12):
            record(s, Principal(f"u{i}", "user", i, "10.0.0.1"), "task.kill", str(i))
    assert log.prune() == 7
    kept = log.entries(ADMIN, limit=100)
    assert [e.target for e in kept] == ["11", "10", "9", "8", "7"]
    assert log.prune() == 0, "a second prune has nothing to remove"


def test_entries_filter_by_user_and_time_and_are_for_admins(tmp_path: Path) -> None:
    log = _log(tmp_path, max_rows=100)
    log.record(Principal("alice", "user", 2, "10.0.0.2"), "node.drain", "n1")
    log.record(Principal("bob", "user", 3, "10.0.0.3"), "node.undrain", "n1")
    [only] = log.entries(ADMIN, user="alice")
    assert (only.user, only.role, only.token_id, only.address) == ("alice", "user", 2, "10.0.0.2")
    assert only.at.tzinfo is not None
    assert len(log.entries(ADMIN, since=datetime.now(UTC) - timedelta(minutes=5))) == 2
    assert log.entries(ADMIN, since=datetime.now(UTC) + timedelta(minutes=5)) == []
    naive_past = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=5)
    assert len(log.entries(ADMIN, since=naive_past)) == 2, "no zone: UTC"
    assert len(log.entries(ADMIN, limit=1)) == 1
    for role in ("viewer", "user"):
        with pytest.raises(Forbidden):
            log.entries(Principal("alice", role, 2, "10.0.0.2"))


def test_work_is_recorded_only_when_it_succeeds(tmp_path: Path) -> None:
    log = _log(tmp_path, max_rows=100)
    who = Principal("root", "admin", 1, "127.0.0.1")
    done = log.after(lambda n: n * 2, who, "environment.package", "app", lambda r: f"v{r}")
    assert done(21) == 42

    def fails(_: int) -> int:
        raise RuntimeError("docker said no")

    with pytest.raises(RuntimeError):
        log.after(fails, who, "environment.delete", "app")(1)
    [entry] = log.entries(ADMIN)
    assert (entry.action, entry.target, entry.detail) == ("environment.package", "app", "v42")
