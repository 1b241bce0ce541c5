#!/usr/bin/env bash
# Build an installable wheel of Kawa into dist/ (or $1). The dashboard's built assets
# (src/kawa/web/dist) go in when they exist: build them first for a wheel that serves it.
#   bash scripts/build-wheel.sh [OUT_DIR]
# Install on a node: pip install kawa-*.whl  (then: kawa join URL TOKEN)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-dist}"
python="${PYTHON:-.venv/bin/python}"
[ -x "$python" ] || python=python3
if [ -d src/kawa/web/dist ]; then
    echo "including the dashboard's assets (src/kawa/web/dist)"
else
    echo "no src/kawa/web/dist: the wheel has no dashboard assets"
fi
mkdir -p "$out"
"$python" -m pip wheel --no-deps --wheel-dir "$out" . 2>&1 | grep -v "^WARNING: Location" || true
wheel=$(ls -t "$out"/kawa-*.whl | head -1)
"$python" - "$wheel" <<'PY'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
needed = ["kawa/store/migrations/versions/0001_initial_schema.py", "kawa/cli/main.py"]
missing = [n for n in needed if n not in names]
for script in ("lib.sh", "bootstrap.sh", "base-image.sh"):  # for `kawa node bootstrap`
    if not any(n.endswith(f".data/data/share/kawa/scripts/{script}") for n in names):
        missing.append(f"share/kawa/scripts/{script}")
if missing:
    sys.exit(f"{sys.argv[1]} lacks {missing}")
web = sum(n.startswith("kawa/web/dist/") for n in names)
print(f"built {sys.argv[1]} ({len(names)} files, {web} dashboard assets)")
PY
