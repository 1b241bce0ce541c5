"""Joining and forwarding across machines, on network-namespace machines (tests/netns).

1. ``kawa join`` → the node online → its first task started, ``--rounds`` times (a new
   node name each round, on the same machine; removed after).
2. Throughput across the namespace boundary, client machine → runner machine: raw TCP
   (a byte source as a process on the runner machine's address) against ``kawa
   forward`` (client → host → runner → a container on the runner), ``--size-mb`` per
   pull, medians over ``--rounds``.
3. ssh: ``ssh -J`` through the host's gateway from the client machine to a VPS on the
   runner machine, against direct ssh to the same VPS from the machine's own namespace
   (where Docker's bridge is: no boundary, no gateway), ``head -c`` of ``--size-mb``.

    .venv/bin/python bench/join.py [--rounds 5] [--size-mb 256]

Needs root, iproute2 and Docker with the base image (as the tests in tests/netns/).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import docker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.forward import SOURCE_AT, pull
from tests.integration.cluster import KAWA
from tests.netns.conftest import CLIENT, HOST, R1, SSH_PORT, NetCluster, eventually
from tests.netns.lab import Lab, lab_problem

from kawa.protocol.tasks import TaskSpec

SOURCE_PORT, RAW_PORT, LOCAL_PORT = 9000, 9001, 40000


def join_round(net: NetCluster, name: str) -> tuple[float, float, float]:
    """(join → online, online → first task started, join → first task started) seconds."""
    token = net.join_token()
    data = net.root / "runners" / name
    argv = [*KAWA, "join", net.url, token, "--name", name, "--data-dir", str(data)]
    wall0, t0 = datetime.now(UTC), time.monotonic()
    proc = net.lab.spawn(R1, argv, net.env(), net.root / f"runner-{name}.log")
    try:
        eventually(lambda: net.status(name) == "online", 60, f"{name} online")
        online = time.monotonic() - t0
        spec = TaskSpec(command=["true"], targets=[name])
        task = net.api(lambda c: c.submit(spec)).tasks[0].id
        view = eventually(
            lambda: (v := net.api(lambda c: c.task(task))).started_at and v, 60, "the task"
        )
        assert view.started_at is not None
        started = (view.started_at - wall0).total_seconds()
        return online, started - online, started
    finally:
        net.lab.stop(proc)
        net.api(lambda c: c.remove_node(name, force=True))


def throughput(net: NetCluster, size: int, rounds: int) -> tuple[list[float], list[float]]:
    """MB/s of raw TCP and of kawa forward, client machine → runner machine."""
    net.join(R1, net.join_token())
    raw_src = SOURCE_AT.format(bind="0.0.0.0", port=RAW_PORT)
    net.lab.spawn(R1, ["python3", "-c", raw_src], net.env(), net.root / "raw.log")
    spec = TaskSpec.model_validate(
        {
            "command": ["python3", "-c", SOURCE_AT.format(bind="0.0.0.0", port=SOURCE_PORT)],
            "targets": [R1],
            "network": "bridge",
        }
    )
    task = net.api(lambda c: c.submit(spec)).tasks[0].id
    eventually(lambda: net.api(lambda c: c.task(task)).state == "running", 60, "the source")
    env = net.env(KAWA_CLIENT_URL=net.url, KAWA_CLIENT_TOKEN=net.token, HOME=str(net.root))
    argv = [*KAWA, "forward", task, str(SOURCE_PORT), "--local-port", str(LOCAL_PORT)]
    net.lab.spawn(CLIENT, argv, env, net.root / "forward.log")
    r1 = net.lab.machines[R1].address
    small = 1 << 20
    eventually(lambda: net.lab.call(CLIENT, lambda: pull(r1, RAW_PORT, small)), 30, "raw")
    eventually(lambda: net.lab.call(CLIENT, lambda: pull("127.0.0.1", LOCAL_PORT, small)), 60, "fw")
    raw, forward = [], []
    for _ in range(rounds):
        raw.append(size / net.lab.call(CLIENT, lambda: pull(r1, RAW_PORT, size)) / 1e6)
        forward.append(
            size / net.lab.call(CLIENT, lambda: pull("127.0.0.1", LOCAL_PORT, size)) / 1e6
        )
    return raw, forward


def ssh_rates(net: NetCluster, size: int, rounds: int) -> tuple[list[float], list[float]]:
    """MB/s of ``ssh -J`` (client machine, via the gateway) and of direct ssh (this
    namespace, to the container's address), reading ``size`` bytes from the VPS."""
    key = net.root / "bench-key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    made = net.cli("vps", "create", "--target", R1, "--public-key-file", f"{key}.pub", "--json")
    if made.returncode != 0:
        raise SystemExit(made.stderr)
    vps = str(json.loads(made.stdout)["id"])
    eventually(lambda: net.api(lambda c: c.task(vps)).state == "running", 120, "the VPS")
    config = net.root / "ssh-config"
    config.write_text(
        f"Host gateway\n  HostName {net.lab.machines[HOST].address}\n  Port {SSH_PORT}\n"
        f"  User kawa\nHost *\n  IdentityFile {key}\n  IdentitiesOnly yes\n"
        "  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n"
        "  BatchMode yes\n  LogLevel ERROR\n  ConnectTimeout 20\n"
    )
    with contextlib.closing(docker.from_env()) as client:
        [box] = client.containers.list(filters={"label": f"kawa.task={vps}"})
        ip = next(n["IPAddress"] for n in box.attrs["NetworkSettings"]["Networks"].values())
    read = f"head -c {size} /dev/zero"
    jump = ["ssh", "-F", str(config), "-J", "gateway", f"root@{vps}", read]
    direct = ["ssh", "-F", str(config), f"root@{ip}", read]

    def timed(run: Callable[[], subprocess.CompletedProcess[bytes]]) -> float:
        started = time.perf_counter()
        done = run()
        if done.returncode != 0 or len(done.stdout) != size:
            raise SystemExit(f"ssh failed: {done.stderr!r}")
        return size / (time.perf_counter() - started) / 1e6

    def via_gateway() -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            ["ip", "netns", "exec", net.lab.machines[CLIENT].ns, *jump],
            capture_output=True, timeout=300, check=False,
        )  # fmt: skip

    def straight() -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(direct, capture_output=True, timeout=300, check=False)

    eventually(lambda: via_gateway().returncode == 0, 60, "ssh -J")
    gateway, plain = [], []
    for _ in range(rounds):
        gateway.append(timed(via_gateway))
        plain.append(timed(straight))
    return gateway, plain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size-mb", type=int, default=256)
    args = parser.parse_args()
    problem = lab_problem()
    if problem:
        raise SystemExit(problem)
    with tempfile.TemporaryDirectory(prefix="kawa-bench-join-") as tmp:
        lab = Lab(f"b{int(time.time()) % 100000}")
        net = NetCluster(lab, Path(tmp))
        try:
            lab.start()
            lab.add(HOST, 2)
            lab.add(R1, 11)
            lab.add(CLIENT, 20)
            net.start_host()
            rows = [join_round(net, f"bench{i}") for i in range(args.rounds)]
            for label, i in (("join → online", 0), ("online → task started", 1),
                             ("join → task started", 2)):  # fmt: skip
                samples = [r[i] for r in rows]
                print(
                    f"{label:24s} median {statistics.median(samples):.2f} s  "
                    f"min {min(samples):.2f}  max {max(samples):.2f}  (n={len(samples)})"
                )
            raw, forward = throughput(net, args.size_mb << 20, args.rounds)
            mraw, mfw = statistics.median(raw), statistics.median(forward)
            print(f"raw TCP (to r1)          median {mraw:.0f} MB/s  {[round(x) for x in raw]}")
            print(f"kawa forward (via host)  median {mfw:.0f} MB/s  {[round(x) for x in forward]}")
            print(f"forward / raw            {mfw / mraw:.2f}x")
            jump, direct = ssh_rates(net, args.size_mb << 20, args.rounds)
            mj, md = statistics.median(jump), statistics.median(direct)
            print(f"ssh -J (client machine)  median {mj:.0f} MB/s  {[round(x) for x in jump]}")
            print(f"ssh direct (no boundary) median {md:.0f} MB/s  {[round(x) for x in direct]}")
            print(f"ssh -J / direct          {mj / md:.2f}x")
        finally:
            lab.close()
            with contextlib.suppress(Exception):
                net.remove_containers()


if __name__ == "__main__":
    main()
