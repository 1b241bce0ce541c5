"""``kawa run`` against ``docker run --rm`` of the same image, as a user feels them.

Start-up: ``kawa run -- echo hi`` (a new CLI process, submit, stream, exit code) against
``docker run --rm`` with the runner's flags, interleaved in one run. Output: ``head -c
SIZE /dev/zero`` streamed to a pipe (``| wc -c``), both ways, as MB/s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import time

from harness import IMAGE, KAWA, kawa_up, summary


def timed(cmd: list[str], env: dict[str, str] | None = None, expect: bytes | None = None) -> float:
    t = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, env=env, check=True)
    took = time.perf_counter() - t
    if expect is not None:
        assert done.stdout == expect, done.stdout[:200]
    return took


def piped_bytes(cmd: list[str], env: dict[str, str] | None = None) -> tuple[int, float]:
    """(bytes read, seconds): ``cmd``'s standard output read to the end, as ``| wc -c``."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    count = 0
    while chunk := proc.stdout.read(1 << 20):
        count += len(chunk)
    assert proc.wait() == 0
    return count, time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--size-mb", type=int, default=1024, help="output size (MiB)")
    args = parser.parse_args()
    with kawa_up() as cluster:
        shared, local = cluster.runner_dirs()
        flags = ["--rm", "--network", "host", "--cpus", "1",
                 "-v", f"{shared}:/shared", "-v", f"{local}:/local_temp"]  # fmt: skip
        bare = ["docker", "run", *flags, IMAGE]
        kawa = [*KAWA, "run", "--"]
        for _ in range(2):  # warm caches on both paths
            timed([*bare, "echo", "hi"])
            timed([*kawa, "echo", "hi"], cluster.env)
        submit = [*KAWA, "task", "submit", "--wait", "--", "echo", "hi"]
        docker_s, kawa_s, submit_s, help_s = [], [], [], []
        for _ in range(args.runs):  # interleaved so drift hits both equally
            docker_s.append(timed([*bare, "echo", "hi"], expect=b"hi\n"))
            kawa_s.append(timed([*kawa, "echo", "hi"], cluster.env, expect=b"hi\n"))
            submit_s.append(timed(submit, cluster.env))
            help_s.append(timed([*KAWA, "run", "--help"], cluster.env))
        base = statistics.median(docker_s)
        print(summary("docker run --rm echo hi", docker_s))
        print(summary("kawa run -- echo hi", kawa_s, base))
        print(summary("kawa task submit --wait (same)", submit_s, base))
        print(summary("kawa run --help (start-up only)", help_s, base))

        size = args.size_mb * (1 << 20)
        produce = ["head", "-c", str(size), "/dev/zero"]
        n_docker, t_docker = piped_bytes([*bare, *produce])
        n_kawa, t_kawa = piped_bytes([*kawa, *produce], cluster.env)
        assert n_docker == n_kawa == size, (n_docker, n_kawa, size)
        mb = size / 1e6
        print(f"docker run head -c {args.size_mb}MiB | wc -c   {t_docker:6.2f}s "
              f"{mb / t_docker:7.1f} MB/s")
        print(f"kawa run   head -c {args.size_mb}MiB | wc -c   {t_kawa:6.2f}s "
              f"{mb / t_kawa:7.1f} MB/s  ratio(time)={t_kawa / t_docker:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
