"""Latency of a trivial task (`echo hi`) from submit to completed.

Kawa through the API (submit + event-driven wait) and through the CLI (`--wait`),
against bare `docker run --rm` of the same image with the same flags (host network,
the same two bind mounts, one CPU) in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time

from harness import IMAGE, KAWA, kawa_up, summary

from kawa.client import KawaClient
from kawa.protocol.tasks import TaskSpec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with kawa_up() as cluster:
        shared, local = cluster.runner_dirs()
        bare_cmd = ["docker", "run", "--rm", "--network", "host", "--cpus", "1",
                    "-v", f"{shared}:/shared", "-v", f"{local}:/local_temp",
                    "-e", "KAWA_LOCAL_TEMP=/local_temp", IMAGE, "echo", "hi"]
        cli_cmd = [*KAWA, "task", "submit", "--wait", "--", "echo", "hi"]
        bare, api, cli = [], [], []
        with KawaClient(cluster.url, cluster.token) as client:
            for _ in range(2):  # warm caches on both paths
                subprocess.run(bare_cmd, check=True, capture_output=True)
                client.wait([t.id for t in client.submit(TaskSpec(command=["echo", "hi"])).tasks])
            for _ in range(args.runs):  # interleave so drift hits both equally
                t = time.perf_counter()
                subprocess.run(bare_cmd, check=True, capture_output=True)
                bare.append(time.perf_counter() - t)

                t = time.perf_counter()
                tasks = client.submit(TaskSpec(command=["echo", "hi"])).tasks
                [done] = client.wait([x.id for x in tasks])
                api.append(time.perf_counter() - t)
                assert done.state == "completed", done

                t = time.perf_counter()
                subprocess.run(cli_cmd, check=True, capture_output=True, env=cluster.env)
                cli.append(time.perf_counter() - t)
    base = statistics.median(bare)
    print(summary("bare docker run --rm", bare))
    print(summary("kawa API submit+wait", api, base))
    print(summary("kawa CLI task submit --wait", cli, base))


if __name__ == "__main__":
    main()
