"""Shell completion latency: ``kawa __complete bash LINE`` (a new process, as the shell
starts it) for a static word, task ids, node names and ``--target`` forms, against a
``kawa up`` cluster holding ``--tasks`` tasks (queued or run meanwhile); ``python -c pass`` is the
baseline of a bare interpreter start.

    .venv/bin/python bench/completion.py --tasks 2000 --runs 15
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from harness import KAWA, kawa_up, summary

LINES = {
    "static (--status values)": "kawa task list --status ",
    "task ids (task kill)": "kawa task kill ",
    "node names (node drain)": "kawa node drain ",
    "--target forms": "kawa task submit --target ",
}


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    return time.perf_counter() - t0, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with kawa_up() as cluster:
        env = cluster.env
        batch, left = 500, args.tasks
        while left > 0:  # one sweep request per batch
            n = min(batch, left)
            spec = [*KAWA, "task", "submit", "--sweep", "--priority", "-1", "--", "true",
                    f"span:{{1..{n}}}"]
            subprocess.run(spec, env=env, capture_output=True, check=True, timeout=300)
            left -= n
        base = [timed([sys.executable, "-c", "pass"], env)[0] for _ in range(args.runs)]
        print(summary("python -c pass", base))
        baseline = statistics.median(base)
        for label, line in LINES.items():
            timed([*KAWA, "__complete", "bash", line], env)  # warm the command-tree cache
            runs = [timed([*KAWA, "__complete", "bash", line], env) for _ in range(args.runs)]
            found = len(runs[-1][1].split())
            print(summary(f"{label} ({found} words)", [t for t, _ in runs], baseline))


if __name__ == "__main__":
    main()
