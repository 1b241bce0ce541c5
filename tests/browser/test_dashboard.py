"""What a user does in the dashboard, in headless Chromium, against a real cluster."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import delete

from kawa.host.app import prepare_database
from kawa.host.auth import Authenticator
from kawa.protocol.tasks import TaskAction, TaskSpec
from kawa.store.models import ApiToken
from tests.browser.conftest import CHROMIUM, GPU_NODE, NODE, SCENARIOS, WEB, scenario
from tests.integration.cluster import Cluster, eventually, when

TICKS = (
    "for i in 1 2 3 4 5 6; do echo tick-$i; sleep 1; done; echo to-stderr >&2; echo done-$((6*7))"
)


def test_login_node_board_overview_and_shortcuts(cluster: Cluster, shots: Path) -> None:
    with cluster.client() as c:
        task = c.submit(TaskSpec(command=["sleep", "600"], targets=[f"{GPU_NODE}:1"])).tasks[0]
        eventually(lambda: when(t := c.task(task.id), t.state.value == "running"), 90, "running")
        try:
            r = scenario("login_nodes", cluster, shots, gpu_task=task.id)
        finally:
            c.act(task.id, TaskAction.KILL)
    assert "NUMA 0" in r["boardText"]
    assert "0 / 2 cores held" in r["boardText"]  # an idle node holds nothing
    assert r["cpus"] >= 2  # one cell per CPU of the node's zones
    # the GPU node: two zones, the task's CPU held in zone 1; its GPUs with utilisation
    assert "NUMA 0 — 0 held, 1 free" in r["gpuBoard"], r["gpuBoard"]
    assert "NUMA 1 — 1 held, 0 free" in r["gpuBoard"], r["gpuBoard"]
    assert "1 / 2 cores held" in r["gpuBoard"] and "1 running" in r["gpuBoard"]
    assert len(r["gpuCells"]) == 4
    assert "GPU 1 55%" in r["gpuCells"][1] and "free" in r["gpuCells"][0]
    assert r["charts"] == ["CPU / memory %", "GPU 0", "GPU 1", "GPU 2", "GPU 3"]
    assert re.fullmatch(r"\d+ / 4 used", r["cores"]), r["cores"]
    assert "g" in r["help"] and "search tasks" in r["help"] and "GPUs" in r["help"]
    # g g: the GPUs page, a row per GPU of the cluster with its measurements
    assert r["gpusHeading"] == "GPUs"
    assert len(r["gpuRows"]) == 4 and not r["gpusEmpty"], r["gpuRows"]
    assert GPU_NODE in r["gpuRows"][1] and "55%" in r["gpuRows"][1], r["gpuRows"][1]
    assert "54 °C" in r["gpuRows"][1] and "212 W" in r["gpuRows"][1], r["gpuRows"][1]
    assert "free" in r["gpuRows"][0]
    assert r["drained"] == "draining"
    assert sorted(p.name for p in shots.iterdir()) == [
        "gpus.png",
        "login.png",
        "node-history.png",
        "nodes.png",
        "overview.png",
    ]


def test_submit_with_a_target_follows_logs_to_completion(cluster: Cluster, shots: Path) -> None:
    r = scenario("submit_logs", cluster, shots, command=f"sh -c '{TICKS}'")
    assert "memory" in r["memoryError"].lower() or "lots" in r["memoryError"], r["memoryError"]
    assert f"{NODE}:0" in r["targets"]
    assert r["check"]  # the host's answer, or why it cannot check
    assert r["stateAtFirstLine"] in ("running", "completed")
    assert "tick-1" in r["log"] and "done-42" in r["log"]
    assert r["exit"] == "exit code 0"
    assert "completed" in r["history"]
    assert "completed" in r["row"] and "from-the-form" in r["row"]
    with cluster.client() as c:
        task = c.task(r["id"])
    assert task.state.value == "completed" and task.exit_code == 0
    assert task.target == f"{NODE}:0" and task.node == NODE and task.numa == 0
    assert task.name == "from-the-form"
    assert task.command == ["sh", "-c", TICKS]


def test_web_terminal_in_a_running_task(cluster: Cluster, shots: Path) -> None:
    with cluster.client() as c:
        task = c.submit(TaskSpec(command=["sleep", "600"], name="shell-here")).tasks[0]
        eventually(lambda: when(t := c.task(task.id), t.state.value == "running"), 90, "running")
        try:
            r = scenario("terminal", cluster, shots, task=task.id)
        finally:
            if c.task(task.id).state.value in ("running", "paused"):
                c.act(task.id, TaskAction.KILL)
    assert re.search(r"^42\s*$", r["first"], re.M), r["first"]
    assert r["cols"] != r["before"]
    assert f"{r['rows']} {r['cols']}" in r["after"]  # stty saw the browser's new size
    assert r["reconnecting"] == "reconnecting (attempt 1)", r["reconnecting"]
    assert "a new shell" in r["note"], r["note"]
    assert r["after42"] > r["before42"]  # the new shell answered on the kept screen
    assert r["ended"].startswith("ended: exit code 0"), r["ended"]
    assert r["seen"] == ["paused", "running", "killed"]
    with cluster.client() as c:
        assert c.task(task.id).state.value == "killed"


def test_create_a_vps_and_read_its_connect_card(cluster: Cluster, shots: Path) -> None:
    key = Ed25519PrivateKey.generate().public_key()
    public = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    r = scenario("vps", cluster, shots, public_key=public.decode() + " browser@test")
    with cluster.client() as c:
        vps = c.task(r["id"])
        try:
            assert vps.kind.value == "vps" and vps.name == "web-vps"
            if not r["generated"]:
                assert vps.ssh_key == public.decode() + " browser@test"
            assert vps.state.value == "running"
        finally:
            c.act(vps.id, TaskAction.KILL)
    assert r["line"] == f"ssh -J kawa@127.0.0.1:{cluster.gateway_port} root@{vps.id}" or (
        r["line"] == f"ssh -J kawa@127.0.0.1:8422 root@{vps.id}"  # a host without /info
    ), r["line"]
    assert f"HostName {vps.id}" in r["config"] and "User root" in r["config"]
    assert "ProxyJump kawa@127.0.0.1:" in r["config"]
    assert r["vscode"] == "vscode://vscode-remote/ssh-remote+kawa-web-vps/root", r["vscode"]
    assert r["forward"] == f"kawa forward {vps.id} 8080", r["forward"]


SSH_OPTS = [
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "BatchMode=yes",
    "-o",
    "ConnectTimeout=10",
]


def ssh_until(argv: list[str], deadline_s: float) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` until it exits 0 or the deadline passes (sshd in a new VPS may still be
    starting); the last attempt."""
    deadline = time.monotonic() + deadline_s
    while True:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        if done.returncode == 0 or time.monotonic() > deadline:
            return done
        time.sleep(1)  # bounded by the deadline: the next attempt, not a wait for luck


def test_check_button_then_a_vps_with_a_generated_key_reached_by_its_ssh_line(
    cluster: Cluster, shots: Path, tmp_path: Path
) -> None:
    key = tmp_path / "kawa-vps-key"
    with cluster.client() as c:  # node1's two cores held: a task aimed there waits
        holder = c.submit(TaskSpec(command=["sleep", "600"], cores=2, targets=[NODE])).tasks[0]
        eventually(lambda: when(t := c.task(holder.id), t.state.value == "running"), 90, "running")
        try:
            r = scenario("vps_generated", cluster, shots, key_path=str(key))
        finally:
            c.act(holder.id, TaskAction.KILL)
    assert r["fits"] == f"starts now on {GPU_NODE}", r["fits"]
    assert r["waits"].startswith("waits: "), r["waits"]
    assert NODE in r["waits"], r["waits"]
    assert r["publicKey"].startswith("ssh-ed25519 "), r["publicKey"]
    assert "not kept" in r["note"]
    assert r["downloadName"] == "kawa-vps-key"
    assert r["downloadAgain"] == 0  # the private key is offered once
    line = r["line"]
    assert line == f"ssh -J kawa@127.0.0.1:{cluster.gateway_port} root@{r['id']}", line
    assert f"ssh-add {r['downloadName']}" in r["hint"], r["hint"]
    key.chmod(0o600)
    assert key.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    # Both hops need the key: -i applies to the VPS, a -F file is handed on to the jump.
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host *\n    IdentityFile {key}\n    IdentitiesOnly yes\n"
        "    StrictHostKeyChecking no\n    UserKnownHostsFile /dev/null\n"
        "    BatchMode yes\n    LogLevel ERROR\n"
    )
    words = shlex.split(line)
    assert words[0] == "ssh"
    argv = ["ssh", "-F", str(config), "-i", str(key), *SSH_OPTS, *words[1:], "echo", "ok-$((6*7))"]
    try:
        done = ssh_until(argv, 90)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "ok-42", done.stdout
        with cluster.client() as c:
            vps = c.task(r["id"])
        assert vps.kind.value == "vps" and vps.name == "keyed-vps"
        assert vps.ssh_key is not None and vps.ssh_key.split()[:2] == r["publicKey"].split()[:2]
    finally:
        with cluster.client() as c:
            c.act(r["id"], TaskAction.KILL)


def test_a_failing_batch_shows_exit_codes_and_a_packaged_version_shows_size_and_digest(
    cluster: Cluster, shots: Path
) -> None:
    with cluster.client() as c:
        made = c.submit(
            TaskSpec(command=["sh", "-c", "exit $0", "span:{0..2}"], sweep=True, name="codes")
        )
        ids = [t.id for t in made.tasks]
        done = eventually(
            lambda: when(ts := [c.task(i) for i in ids], all(t.exit_code is not None for t in ts)),
            120,
            "every task of the batch ended",
        )
        codes = {t.id: t.exit_code or 0 for t in done}
        failed = next(t.id for t in done if t.exit_code == 2)
        c.create_workspace("packme")
        try:
            r = scenario(
                "batch_package",
                cluster,
                shots,
                batch=made.batch_id,
                ids=ids,
                failed=failed,
                ws="packme",
            )
            versions = {v.version: v for v in c.tarballs("packme")}
        finally:
            c.delete_workspace("packme", force=True)
    assert sorted(codes.values()) == [0, 1, 2]
    assert r["listed"] == 3  # the batch filter shows the batch only
    for task_id, code in codes.items():
        assert f"exit {code}" in r["rows"][task_id], r["rows"][task_id]
        assert ("completed" if code == 0 else "failed") in r["rows"][task_id]
    assert r["detail"] == {"state": "failed", "exit": "exit code 2"}, r["detail"]
    assert r["progress"].startswith("packaged version "), r["progress"]
    assert r["after"] == r["before"] + 1
    stored = versions[r["version"]]
    assert r["digestTitle"] == stored.digest and stored.digest.startswith("sha256:")
    assert r["digest"] == stored.digest[:19]
    assert re.fullmatch(r"[\d.]+ (B|KiB|MiB|GiB)", r["size"]), r["size"]
    assert stored.size > 0 and "(newest)" in r["versionText"]


def test_workspace_create_shell_stop_delete(cluster: Cluster, shots: Path) -> None:
    try:
        r = scenario("environments", cluster, shots)
    finally:
        with cluster.client() as c:
            names = [w.name for w in c.workspaces()]
            if "webws" in names:  # the scenario failed before deleting it
                c.delete_workspace("webws", force=True)
    assert r["stopped"] == "exited", r["stopped"]
    assert r["error"] == 0
    assert "webws" not in names  # deleted from the page


def test_a_viewer_sees_no_controls(cluster: Cluster, shots: Path) -> None:
    viewer = Authenticator(prepare_database(cluster.host_config()), cluster.secret).create_token(
        "vera", "viewer"
    )
    with cluster.client() as c:
        task = c.submit(TaskSpec(command=["true"], name="for-viewers")).tasks[0]
        before = len(c.tasks(limit=10_000))
    r = scenario("viewer", cluster, shots, token=viewer, task=task.id)
    with cluster.client() as c:
        after = c.tasks(limit=10_000)
    assert r["role"].endswith("viewer"), r["role"]
    assert r["submitLinks"] == 0 and r["drains"] == 0 and r["vpsForms"] == 0
    assert "no task" in r["taskError"]  # another user's task is not shown, as in the API
    # no controls, and the API refuses the viewer's submission all the same
    assert r["posted"]["status"] == 403, r["posted"]
    assert "viewer" in r["posted"]["detail"], r["posted"]
    assert len(after) == before
    assert not [t for t in after if t.name == "from-a-viewer"]


def luminance(css: str) -> float:
    red, green, blue = (int(v) for v in re.findall(r"\d+", css)[:3])
    return (0.2126 * red + 0.7152 * green + 0.0722 * blue) / 255


def test_dark_theme_follows_the_system(cluster: Cluster, shots: Path) -> None:
    r = scenario("themes", cluster, shots)
    assert luminance(r["dark"]["body"]) < 0.2, r["dark"]["body"]
    assert luminance(r["light"]["body"]) > 0.8, r["light"]["body"]
    assert NODE in r["dark"]["board"] and "online" in r["dark"]["board"]


def test_the_dashboard_fits_a_phone(cluster: Cluster, shots: Path) -> None:
    wide = "/data/" + "a-rather-long-directory-name/" * 8  # one word: the table scrolls
    with cluster.client() as c:
        task = c.submit(TaskSpec(command=["echo", wide], name="on-a-phone")).tasks[0]
    r = scenario("phone", cluster, shots, task=task.id)
    for page in ("overview", "nodes", "tasks"):
        width = r[page]
        assert width["window"] == 390, (page, width)
        assert width["scroll"] <= width["window"] + 1, (page, width)  # no sideways scrolling
        assert width["nav"] <= width["window"] + 1, (page, width)  # the nav wraps
    assert sorted(p.name for p in shots.iterdir()) == [
        "phone-nodes.png",
        "phone-overview.png",
        "phone-tasks.png",
    ]


def test_an_unknown_task_and_a_token_removed_mid_session(
    cluster: Cluster, shots: Path, tmp_path: Path
) -> None:
    """Last in this module: it restarts the host (the host keeps the tokens it has checked
    in memory, so a token removed from the database stops working at the next start)."""
    sessions = prepare_database(cluster.host_config())
    token = Authenticator(sessions, cluster.secret).create_token("rita", "user")
    ready = tmp_path / "ready"
    args = {
        "url": cluster.url,
        "token": token,
        "shots": str(shots),
        "unknown": "1",
        "ready_file": str(ready),
    }
    env = {**os.environ, "KAWA_BROWSER": json.dumps(args), "KAWA_CHROMIUM": CHROMIUM}
    with subprocess.Popen(
        ["node", str(SCENARIOS), "revoked"],
        cwd=WEB,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            eventually(lambda: ready.exists() or proc.poll() is not None, 120, "the task list")
            assert proc.poll() is None, proc.communicate()
            with sessions.begin() as s:
                s.execute(delete(ApiToken).where(ApiToken.user == "rita"))
            cluster.kill_host()
            cluster.restart_host()
            out, err = proc.communicate(timeout=180)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, f"scenario revoked failed:\n{err}\n{out}"
    r = json.loads(out.strip().splitlines()[-1])
    assert "no task" in r["unknown"] and "1" in r["unknown"], r["unknown"]
    assert r["controls"] == 0  # nothing to act on
    assert re.search(r"/login", r["url"]), r["url"]
    assert "Logged out" in r["expired"] and "token" in r["expired"].lower(), r["expired"]
    assert r["stored"] == []  # the token is gone from the browser too
