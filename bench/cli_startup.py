"""Wall time of `kawa --help` (the CLI must not import the server stack)."""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    kawa = [sys.executable, "-m", "kawa.cli.main", "--help"]
    bare = [sys.executable, "-c", "pass"]
    for name, cmd in (("python -c pass", bare), ("kawa --help", kawa)):
        samples = []
        for _ in range(args.runs):
            t = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            samples.append(time.perf_counter() - t)
        print(f"{name:<16} min={min(samples) * 1000:6.1f}ms "
              f"median={statistics.median(samples) * 1000:6.1f}ms "
              f"max={max(samples) * 1000:6.1f}ms")


if __name__ == "__main__":
    main()
