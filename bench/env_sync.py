"""How long a runner takes to make a new environment version available, against a bare
`docker load` of the same tarball in the same run; and what an unchanged environment
costs at task start.

For each distribution (shared directory, HTTP from the host) a `kawa up` cluster is
brought up, a workspace grown by a random file (default 250 MB, ~430 MB tarball with
the base) is packaged, and then, alternating, with the image removed from Docker
before each sample:
  - bare:  `docker load -i <tarball>`;
  - kawa:  a task in the environment; the runner fetches (or reads), verifies and loads
           the version. Reported: the runner's own sync time (from its journal) and
           the task's submit-to-completed time minus that of the same task once the
           version is loaded.
Then, with the version loaded: tasks with `--container NAME` (the runner checks its
load record and Docker's tag) against tasks with `--image kawa-env/NAME:VERSION` (no
check), interleaved.
"""

from __future__ import annotations

import argparse
import contextlib
import sqlite3
import statistics
import subprocess
import time
from pathlib import Path

import docker
import docker.errors
from harness import BenchCluster, kawa_up, summary

from kawa.client import KawaClient
from kawa.protocol.environments import EnvironmentVersionView
from kawa.protocol.runner_api import EnvironmentRef
from kawa.protocol.tasks import TaskSpec
from kawa.runner.env_sync import EnvironmentSync
from kawa.runner.journal import Journal


def timed_task(client: KawaClient, **spec: object) -> float:
    started = time.perf_counter()
    tasks = client.submit(TaskSpec.model_validate({"command": ["true"], **spec})).tasks
    [done] = client.wait([t.id for t in tasks], timeout=600)
    assert done.state == "completed", (done.state, done.error)
    return time.perf_counter() - started


def runner_sync_seconds(cluster: BenchCluster, image: str) -> float:
    journal = cluster.data / "runners" / "bench" / "journal.sqlite"
    with contextlib.closing(sqlite3.connect(f"file:{journal}?mode=ro", uri=True)) as db:
        row = db.execute("SELECT seconds FROM environments WHERE image = ?", (image,)).fetchone()
    return float(row[0])


def ready_check(
    cluster: BenchCluster, dockerd: docker.DockerClient, v: EnvironmentVersionView
) -> list[float]:
    """The runner's own check (load record + Docker tag), timed directly."""
    journal = Journal(cluster.data / "runners" / "bench" / "journal.sqlite")
    sync = EnvironmentSync(dockerd, journal, cluster.url, "-", "bench", None, cluster.data)
    ref = EnvironmentRef(name=v.name, version=v.version, digest=v.digest, image=v.image)
    samples = []
    try:
        for _ in range(200):
            t = time.perf_counter()
            assert sync.ready(ref)
            samples.append(time.perf_counter() - t)
    finally:
        sync.close()
        journal.close()
    return samples


def drop(client: docker.DockerClient, image: str) -> None:
    """Remove the image (and so its layers) once no finished task's container holds it."""
    try:
        image_id = client.api.inspect_image(image)["Id"]
    except docker.errors.ImageNotFound:
        return
    deadline = time.monotonic() + 60
    while client.api.containers(all=True, filters={"ancestor": image_id}):
        if time.monotonic() > deadline:
            raise SystemExit(f"containers still use {image}")
        time.sleep(0.05)
    client.api.remove_image(image)


def measure(shared: bool, runs: int, blob_mb: int, quick: int) -> None:
    label = "shared dir" if shared else "HTTP"
    with kawa_up(shared_dir=shared) as cluster, KawaClient(cluster.url, cluster.token) as kc:
        dockerd = docker.from_env(timeout=1800)
        try:
            kc.create_workspace("bench")
            grow = f"head -c {blob_mb * 1000 * 1000} /dev/urandom > /opt/blob".encode()
            assert kc.run_script("bench", grow) == 0
            v = kc.package("bench")
            tar = (
                Path(cluster.env["KAWA_HOST_SHARED_DIR"]) / "kawa-containers"
                if shared
                else cluster.data / "host" / "environments"
            ) / f"bench-{v.version}.tar"
            print(f"\n[{label}] tarball {v.size / 1e6:.0f} MB ({tar})")
            bare, runner, added, ready = [], [], [], []
            for _ in range(runs):
                drop(dockerd, v.image)
                t = time.perf_counter()
                subprocess.run(["docker", "load", "-i", str(tar)], check=True, capture_output=True)
                bare.append(time.perf_counter() - t)
                drop(dockerd, v.image)
                with_sync = timed_task(kc, container="bench")
                runner.append(runner_sync_seconds(cluster, v.image))
                ready.append(timed_task(kc, container="bench"))
                added.append(with_sync - ready[-1])
            base = statistics.median(bare)
            print(summary("bare docker load", bare))
            print(summary(f"runner sync ({label}, in runner)", runner, base))
            print(summary(f"task start added by sync ({label})", added, base))
            plain, checked = [], []
            for _ in range(quick):
                plain.append(timed_task(kc, image=v.image))
                checked.append(timed_task(kc, container="bench"))
            print(summary("task --image (no env check)", plain))
            print(summary("task --container (env unchanged)", checked))
            extra = statistics.median(checked) - statistics.median(plain)
            print(f"unchanged-environment overhead at task start: {extra * 1000:+.1f} ms (median)")
            print(summary("the runner's readiness check", ready_check(cluster, dockerd, v)))
        finally:
            with contextlib.suppress(Exception):
                kc.delete_workspace("bench", force=True)
            for row in kc.tarballs("bench"):
                drop(dockerd, row.image)
            dockerd.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3, help="sync samples per mode")
    parser.add_argument("--blob-mb", type=int, default=250, help="random file in the env")
    parser.add_argument("--quick", type=int, default=15, help="unchanged-env task samples")
    parser.add_argument("--mode", choices=["shared", "http", "both"], default="both")
    args = parser.parse_args()
    for shared in {"shared": [True], "http": [False], "both": [True, False]}[args.mode]:
        measure(shared, args.runs, args.blob_mb, args.quick)


if __name__ == "__main__":
    main()
