#!/usr/bin/env bash
# Run every benchmark in tests/bench/ one after the other; exit 1 if any missed its goal.
# Usage: tests/bench/run_all.sh   (from anywhere; uses the project's .venv)
set -u
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
# Credential look-ups stay on loopback (tests/loopback.py).
export ALIBABA_CLOUD_ECS_METADATA_DISABLED=true
export ALIBABA_CLOUD_STS_ENDPOINT=http://127.0.0.1:9
export ENS_MIGRATE_ECS_METADATA_ENDPOINT=http://127.0.0.1:9
status=0
for bench in bench_overhead.py bench_quota.py bench_adaptive.py bench_scale.py; do
    echo "=== tests/bench/$bench"
    "$PY" "tests/bench/$bench" || status=1
done
echo "=== tests/bench/bench_validate.py --rows 1000000"
"$PY" tests/bench/bench_validate.py --rows 1000000 || status=1
exit $status
