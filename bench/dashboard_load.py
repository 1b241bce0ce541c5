"""The dashboard's weight and speed: JavaScript shipped before first paint (gzipped), and
the time from navigation to a live overview in headless Chromium on loopback, against
loading a JSON document from the same host in the same browser (the baseline).

    .venv/bin/python bench/dashboard_load.py [--runs 10]

Needs the built dashboard (src/kawa/web/dist), web/node_modules and /usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from harness import kawa_up, summary  # noqa: E402

DIST = ROOT / "src" / "kawa" / "web" / "dist"
WEB = ROOT / "web"


def gz(path: Path) -> int:
    return len(gzip.compress(path.read_bytes(), 9))


def weights() -> None:
    index = (DIST / "index.html").read_text()
    first = sorted(set(re.findall(r'(?:src|href)="/(assets/[^"]+\.js)"', index)))
    css = sorted(set(re.findall(r'href="/(assets/[^"]+\.css)"', index)))
    first_js = sum(gz(DIST / p) for p in first)
    print(f"JS before first paint: {first_js / 1024:.1f} KiB gzipped ({', '.join(first)})")
    print(f"CSS before first paint: {sum(gz(DIST / p) for p in css) / 1024:.1f} KiB gzipped")
    lazy = sorted(
        (p for p in (DIST / "assets").glob("*.js") if f"assets/{p.name}" not in first),
        key=gz,
        reverse=True,
    )
    for p in lazy[:3]:
        print(f"  lazy chunk {p.name}: {gz(p) / 1024:.1f} KiB gzipped")
    total = sum(gz(p) for p in (DIST / "assets").glob("*.js"))
    print(f"all JS: {total / 1024:.1f} KiB gzipped; first paint ships {first_js / total:.0%}")


def timing(runs: int) -> None:
    with kawa_up() as cluster, tempfile.TemporaryDirectory() as shots:
        args = {"url": cluster.url, "token": cluster.token, "shots": shots, "runs": runs}
        done = subprocess.run(
            ["node", str(WEB / "tests" / "browser" / "scenarios.mjs"), "overview_timing"],
            cwd=WEB,
            env={**os.environ, "KAWA_BROWSER": json.dumps(args)},
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            sys.exit(f"browser run failed:\n{done.stderr}")
        r = json.loads(done.stdout.strip().splitlines()[-1])
    app = [v / 1000 for v in r["app"]]
    base = [v / 1000 for v in r["baseline"]]
    print(summary("JSON document (baseline)", base))
    print(summary("overview live (app)", app, baseline=statistics.median(base)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    opts = parser.parse_args()
    weights()
    timing(opts.runs)


if __name__ == "__main__":
    main()
