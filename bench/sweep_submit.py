"""Sweep submission: a 1,000-combination `kawa task submit --sweep` against 1,000 separate
`kawa task submit` calls, in the same run.

Measured: the time from starting the command until every task is stored (the CLI exits
once the host answered; the count is then checked). The node is drained so that nothing
runs: this is about storing a batch, not about running it. The baseline of separate CLI
calls is capped at --baseline-calls (default 100) and extrapolated to N; 1,000 separate
API submissions (one process, no CLI start) are measured in full for reference.
"""

from __future__ import annotations

import argparse
import subprocess
import time

from harness import KAWA, kawa_up

from kawa.client import KawaClient
from kawa.protocol.tasks import TaskSpec


def stored(client: KawaClient) -> int:
    return len(client.tasks(None, None, None, "command", 10_000))


def settle(client: KawaClient) -> None:
    """Wait (bounded) until a scheduling pass has looked at every stored task, so one
    measurement does not share the host with the pass that follows the previous one."""
    deadline = time.monotonic() + 120
    while any(t.waiting_reason == "queued" for t in client.tasks(None, None, None, None, 10_000)):
        if time.monotonic() > deadline:
            raise SystemExit("the host did not look at the queued tasks within 120 s")
        time.sleep(0.2)


def cli_submit(env: dict[str, str], *args: str) -> float:
    start = time.perf_counter()
    subprocess.run([*KAWA, "task", "submit", *args], env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--combinations", type=int, default=1000)
    parser.add_argument("--baseline-calls", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    n = args.combinations
    with kawa_up() as cluster, KawaClient(cluster.url, cluster.token, timeout=120) as client:
        client.drain("bench")
        sweep_times, single_times = [], []
        for _ in range(args.runs):
            settle(client)
            before = stored(client)
            sweep_times.append(cli_submit(cluster.env, "--sweep", "--", "echo", f"span:{{1..{n}}}"))
            assert stored(client) - before == n, "the sweep did not store every combination"
            settle(client)
            single_times.append(cli_submit(cluster.env, "--sweep", "--", "echo", "span:{1..1}"))

        settle(client)
        before = stored(client)
        cli_calls = sum(
            cli_submit(cluster.env, "--", "echo", str(i)) for i in range(args.baseline_calls)
        )
        assert stored(client) - before == args.baseline_calls

        before = stored(client)
        start = time.perf_counter()
        for i in range(n):
            client.submit(TaskSpec(command=["echo", str(i)]))
        api_calls = time.perf_counter() - start
        assert stored(client) - before == n

        settle(client)
        start = time.perf_counter()
        client.submit(TaskSpec(command=["echo", f"span:{{1..{n}}}"], sweep=True))
        api_sweep = time.perf_counter() - start

    best = min(sweep_times)
    per_call = cli_calls / args.baseline_calls
    print(f"kawa task submit --sweep ({n} combinations), CLI: best {best:.3f}s "
          f"of {', '.join(f'{t:.3f}' for t in sweep_times)}")
    print(f"  the same command with 1 combination (CLI start and one request): "
          f"best {min(single_times):.3f}s")
    print(f"  the request alone (API submit of the same sweep): {api_sweep:.3f}s")
    print(f"{args.baseline_calls} separate kawa task submit: {cli_calls:.2f}s "
          f"({per_call * 1000:.0f} ms each) -> {n} extrapolated: {per_call * n:.1f}s")
    print(f"{n} separate API submissions (one client): {api_calls:.2f}s")
    print(f"ratio: separate CLI calls / sweep = {per_call * n / best:.0f}x; "
          f"separate API calls / sweep = {api_calls / best:.1f}x")


if __name__ == "__main__":
    main()
