#!/usr/bin/env bash
# Run every benchmark in tests/bench/ one after the other; exit 1 if any missed its goal.
# Usage: tests/bench/run_all.sh   (from anywhere; uses the project's .venv)
set -u
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
status=0
for bench in bench_overhead.py bench_quota.py bench_adaptive.py bench_scale.py; do
    echo "=== tests/bench/$bench"
    "$PY" "tests/bench/$bench" || status=1
done
echo "=== tests/bench/bench_validate.py --rows 1000000"
"$PY" tests/bench/bench_validate.py --rows 1000000 || status=1
exit $status
