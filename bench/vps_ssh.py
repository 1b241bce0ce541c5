"""VPS startup and SSH bulk throughput, Kawa against plain Docker + ssh.

1. Startup: from ``kawa vps create --public-key-file K.pub`` (the CLI as a user types
   it) to the first ``kawa ssh ID -- true`` that succeeds, against ``docker run -d`` of
   the same image with the same kind of sshd entrypoint on Docker's bridge, then
   ``docker inspect`` of its address and ``ssh root@IP true`` retried until it works.
   ``--runs`` of each, interleaved. Target: Kawa within 1.3x.
   Then, for reading it, ``--runs`` times one ``ssh ... true`` to a running VPS by each
   path (direct, ``kawa ssh``, the gateway).
2. Bulk transfer of ``--size-mb`` MB, download (``ssh H 'head -c N /dev/zero' >
   /dev/null``) and upload (``head -c N /dev/zero | ssh H 'cat > /dev/null'``), to one
   VPS through ``kawa ssh`` (its relay), through ``ssh -J`` via the host's SSH
   gateway, and straight to the VPS container's own bridge address. Targets: kawa ssh
   >= 0.7x of direct, gateway >= 0.5x.

    .venv/bin/python bench/vps_ssh.py [--runs 5] [--size-mb 1024] [--rounds 1]
        [--skip-startup] [--skip-latency] [--skip-throughput]

Every ssh runs with ``-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
-o BatchMode=yes`` and ``-F`` a temporary config (IdentityFile = the generated key), so
the user's own ~/.ssh is neither read nor written. Only 127.0.0.1 and the bridge
addresses of containers started here are contacted; every loop is bounded.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.harness import IMAGE, KAWA, free_port, kawa_up, summary

NODE = "bench"
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
BASELINE_LABEL = "kawa.bench=vps_ssh"
BASELINE_ENTRY = r"""set -e
mkdir -p /run/sshd /root/.ssh
chmod 700 /root/.ssh
ssh-keygen -A >/dev/null
printf '%s\n' "$BENCH_SSH_KEY" > /root/.ssh/authorized_keys
chmod 600 /root/.ssh/authorized_keys
exec /usr/sbin/sshd -D -e -o PermitRootLogin=prohibit-password -o PasswordAuthentication=no
"""
TRY_LIMIT, TRY_DEADLINE = 300, 90.0  # per startup sample: attempts and seconds


class Bench:
    def __init__(self, root: Path, env: dict[str, str], ssh_port: int) -> None:
        self.root = root
        self.env = env
        self.ssh_port = ssh_port
        self.key = root / "id_ed25519"
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "vps-bench", "-f", str(self.key)],
            check=True,
        )
        self.pub = self.key.with_name("id_ed25519.pub")
        self.cfg = root / "ssh_config"
        self.cfg.write_text(
            "Host *\n"
            f"    IdentityFile {self.key}\n"
            "    IdentitiesOnly yes\n"
            "    StrictHostKeyChecking no\n"
            "    UserKnownHostsFile /dev/null\n"
            "    BatchMode yes\n"
            "    LogLevel ERROR\n"
        )
        self.vpss: list[str] = []
        self.baselines: list[str] = []

    # -- commands as a user types them ------------------------------------------------
    def kawa(self, *args: str, **kw: object) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([*KAWA, *args], env=self.env, capture_output=True, timeout=120, **kw)  # type: ignore[call-overload,no-any-return]

    def kawa_ssh(self, vps: str, *command: str) -> list[str]:
        return [
            *KAWA,
            "ssh",
            vps,
            "--identity",
            str(self.key),
            "--",
            "-F",
            str(self.cfg),
            *SSH_OPTS,
            *command,
        ]

    def gateway_ssh(self, vps: str, *command: str) -> list[str]:
        # -F is handed on to the jump's own ssh, so both hops use the key (-i for both).
        return [
            "ssh",
            "-F",
            str(self.cfg),
            "-i",
            str(self.key),
            *SSH_OPTS,
            "-J",
            f"kawa@127.0.0.1:{self.ssh_port}",
            f"root@{vps}",
            *command,
        ]

    def direct_ssh(self, ip: str, *command: str) -> list[str]:
        return ["ssh", "-F", str(self.cfg), "-i", str(self.key), *SSH_OPTS, f"root@{ip}", *command]

    def create_vps(self) -> str:
        done = self.kawa("vps", "create", "--public-key-file", str(self.pub))
        m = re.search(rb"created VPS (\S+)", done.stdout)
        if done.returncode != 0 or not m:
            raise SystemExit(f"kawa vps create failed: {done.stdout!r} {done.stderr!r}")
        vps = m.group(1).decode()
        self.vpss.append(vps)
        return vps

    def stop_vps(self, vps: str) -> None:
        self.kawa("vps", "stop", vps)
        subprocess.run(
            ["docker", "rm", "-f", f"kawa-{NODE}-{vps}"], capture_output=True, timeout=60
        )
        with contextlib.suppress(ValueError):
            self.vpss.remove(vps)

    def start_baseline(self) -> str:
        name = f"kawa-vpsbench-{uuid.uuid4().hex[:8]}"
        self.baselines.append(name)
        subprocess.run(
            [
                "docker",
                "run",
                "-d",
                "--name",
                name,
                "--label",
                BASELINE_LABEL,
                "--network",
                "bridge",
                "--cpus",
                "1",
                "-e",
                f"BENCH_SSH_KEY={self.pub.read_text().strip()}",
                "--entrypoint",
                "/bin/sh",
                IMAGE,
                "-c",
                BASELINE_ENTRY,
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        return name

    def remove_baseline(self, name: str) -> None:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True, timeout=60)
        with contextlib.suppress(ValueError):
            self.baselines.remove(name)

    def cleanup(self) -> None:
        for vps in list(self.vpss):
            self.stop_vps(vps)
        for name in list(self.baselines):
            self.remove_baseline(name)


def container_ip(name: str) -> str:
    out = subprocess.run(
        ["docker", "inspect", "-f", "{{.NetworkSettings.Networks.bridge.IPAddress}}", name],
        capture_output=True,
        text=True,
        timeout=30,
    )
    ip = out.stdout.strip()
    if out.returncode != 0 or not re.fullmatch(r"\d+\.\d+\.\d+\.\d+", ip):
        raise SystemExit(f"no bridge address for {name}: {out.stdout!r} {out.stderr!r}")
    return ip


def until_ok(argv: list[str], started: float, env: dict[str, str]) -> tuple[float, int]:
    """Run ``argv`` until it exits 0 (bounded): (seconds since ``started``, attempts)."""
    last = b""
    for attempt in range(1, TRY_LIMIT + 1):
        done = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, env=env, timeout=30
        )
        if done.returncode == 0:
            return time.perf_counter() - started, attempt
        last = done.stderr
        if time.perf_counter() - started > TRY_DEADLINE:
            break
        time.sleep(0.02)
    raise SystemExit(f"never succeeded: {' '.join(argv)}\nlast stderr: {last[-1000:]!r}")


@contextlib.contextmanager
def cluster(ssh_port: int) -> Iterator[tuple[Path, dict[str, str]]]:
    """bench/harness.kawa_up with the SSH gateway on ``ssh_port`` and a temp HOME."""
    with kawa_up(ssh_port=ssh_port, home=True) as c:
        yield c.root, c.env


def startup(b: Bench, runs: int) -> None:
    kawa_t: list[float] = []
    base_t: list[float] = []
    created: list[float] = []  # `kawa vps create` returned / `docker run -d` + inspect done
    base_created: list[float] = []
    tries: dict[str, list[int]] = {"kawa": [], "docker": []}
    for i in range(runs + 1):  # the first pair warms both paths and is not counted
        started = time.perf_counter()
        vps = b.create_vps()
        returned = time.perf_counter() - started
        took, n = until_ok(b.kawa_ssh(vps, "true"), started, b.env)
        b.stop_vps(vps)
        if i:
            created.append(returned)
            kawa_t.append(took)
            tries["kawa"].append(n)

        started = time.perf_counter()
        name = b.start_baseline()
        ip = container_ip(name)
        returned = time.perf_counter() - started
        took, n = until_ok(b.direct_ssh(ip, "true"), started, b.env)
        b.remove_baseline(name)
        if i:
            base_created.append(returned)
            base_t.append(took)
            tries["docker"].append(n)
    base = statistics.median(base_t)
    print("== startup: create -> first successful `ssh ... true` ==")
    print(summary("docker run -d + ssh root@IP", base_t))
    print(summary("kawa vps create + kawa ssh", kawa_t, base))
    print(summary("  of which docker run -d + inspect", base_created))
    print(summary("  of which kawa vps create (CLI)", created))
    print(f"ssh attempts per sample: docker {tries['docker']}, kawa {tries['kawa']}")
    print(f"ratio kawa/docker (median): {statistics.median(kawa_t) / base:.2f}x (target 1.3x)")


def transfer(argv: list[str], size: int, upload: bool, env: dict[str, str]) -> float:
    """Seconds to move ``size`` bytes through ``argv`` (an ssh command line)."""
    started = time.perf_counter()
    if upload:
        src = subprocess.Popen(["head", "-c", str(size), "/dev/zero"], stdout=subprocess.PIPE)
        done = subprocess.run(
            [*argv, "cat > /dev/null"],
            stdin=src.stdout,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            timeout=600,
        )
        assert src.stdout is not None
        src.stdout.close()
        src.wait(30)
    else:
        done = subprocess.run(
            [*argv, f"head -c {size} /dev/zero"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            timeout=600,
        )
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"transfer failed ({done.returncode}): {done.stderr!r}")
    return took


@contextlib.contextmanager
def one_vps(b: Bench) -> Iterator[tuple[str, dict[str, list[str]]]]:
    """A running VPS and the three ways to ssh into it, each checked once (warm-up)."""
    vps = b.create_vps()
    try:
        started = time.perf_counter()
        until_ok(b.kawa_ssh(vps, "true"), started, b.env)
        ip = container_ip(f"kawa-{NODE}-{vps}")
        paths = {
            "direct ssh root@IP": b.direct_ssh(ip),
            "kawa ssh": b.kawa_ssh(vps),
            "ssh -J gateway": b.gateway_ssh(vps),
        }
        for name, argv in paths.items():  # warm-up: one small command on each path
            rc = subprocess.run(
                [*argv, "true"], capture_output=True, env=b.env, timeout=60
            ).returncode
            if rc != 0:
                raise SystemExit(f"{name}: `true` failed ({rc})")
        yield vps, paths
    finally:
        b.stop_vps(vps)


def latency(b: Bench, runs: int) -> None:
    """The cost of one `ssh ... true` on an already running VPS, for reading the startup."""
    with one_vps(b) as (_, paths):
        samples: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(runs):
            for name, argv in paths.items():
                t = time.perf_counter()
                subprocess.run([*argv, "true"], capture_output=True, env=b.env, timeout=60)
                samples[name].append(time.perf_counter() - t)
    print("== one `ssh ... true` to the running VPS ==")
    direct = statistics.median(samples["direct ssh root@IP"])
    for name, taken in samples.items():
        print(summary(name, taken, direct))


def throughput(b: Bench, size_mb: int, rounds: int) -> None:
    with one_vps(b) as (vps, paths):
        size = size_mb * 1024 * 1024
        rates: dict[tuple[str, str], list[float]] = {}
        for _ in range(rounds):
            for direction in ("download", "upload"):
                for name, argv in paths.items():
                    took = transfer(argv, size, direction == "upload", b.env)
                    rates.setdefault((name, direction), []).append(size_mb / took)
        print(f"== bulk transfer: {size_mb} MB per transfer, {rounds} round(s), VPS {vps} ==")
        for direction in ("download", "upload"):
            direct = rates[("direct ssh root@IP", direction)]
            for name in paths:
                r = rates[(name, direction)]
                each = [k / d for k, d in zip(r, direct, strict=True)]  # same round
                per_round = ", ".join(f"{x:.2f}" for x in each)
                print(
                    f"{direction:<9} {name:<26} median={statistics.median(r):7.1f} MB/s "
                    f"(min {min(r):.1f}, max {max(r):.1f})  ratio={statistics.median(each):.2f}x"
                    + (f" (rounds: {per_round})" if r is not direct else "")
                )
        print("ratio: median of each round's ratio to direct ssh in that round")
        print("targets: kawa ssh >= 0.7x of direct, gateway >= 0.5x")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5, help="startup samples of each")
    parser.add_argument("--size-mb", type=int, default=1024, help="MB per transfer")
    parser.add_argument("--rounds", type=int, default=1, help="transfers per path/direction")
    parser.add_argument("--skip-startup", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    ssh_port = free_port()
    with cluster(ssh_port) as (root, env):
        b = Bench(root, env, ssh_port)
        try:
            print(
                f"image {IMAGE}, {os.cpu_count()} CPUs, load average "
                f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}",
                flush=True,
            )
            if not args.skip_startup:
                startup(b, args.runs)
            if not args.skip_latency:
                latency(b, args.runs)
            if not args.skip_throughput:
                throughput(b, args.size_mb, args.rounds)
            print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        finally:
            b.cleanup()


if __name__ == "__main__":
    main()
