"""Baseline: import a CSV job list with the official ENS SDK's async client under a semaphore.

Run: .venv/bin/python tests/bench/baseline_sdk.py JOBS.csv --endpoint 127.0.0.1:PORT --concurrency 32
Credentials come from ALIBABA_CLOUD_ACCESS_KEY_ID / ALIBABA_CLOUD_ACCESS_KEY_SECRET. No rate
limiting, no journal: what a straightforward script over the SDK does. Prints one JSON line:
jobs, accepted, throttled, errors, seconds (first request to last answer).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import sys
import time
from typing import Any

from alibabacloud_ens20171110 import models
from alibabacloud_ens20171110.client import Client
from alibabacloud_tea_openapi.models import Config
from alibabacloud_tea_util.models import RuntimeOptions


def request_for(row: dict[str, str]) -> models.ImportImageRequest:
    """The ImportImage request ens-migrate sends for the same row (its defaults filled in)."""
    return models.ImportImageRequest(
        image_name=row["ImageName"], compute_type="ens_vm", ossregion=row["OSSRegion"],
        ossbucket=row["OSSBucket"], ossobject=row["OSSObject"], ostype="linux",
        platform=row["Platform"], image_format="qcow2", architecture="x86_64",
        osversion=row["OSVersion"])


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    """Send every row once (throttled ones again after ``--throttle-wait`` if asked)."""
    client = Client(Config(endpoint=args.endpoint, protocol="http",
                           access_key_id=os.environ["ALIBABA_CLOUD_ACCESS_KEY_ID"],
                           access_key_secret=os.environ["ALIBABA_CLOUD_ACCESS_KEY_SECRET"]))
    with open(args.jobs, newline="", encoding="utf-8") as handle:
        requests = [request_for(row) for row in csv.DictReader(handle)]
    counts = {"jobs": len(requests), "accepted": 0, "throttled": 0, "errors": 0}
    gate = asyncio.Semaphore(args.concurrency)
    runtime = RuntimeOptions()

    async def one(req: models.ImportImageRequest) -> None:
        while True:
            async with gate:
                try:
                    await client.import_image_with_options_async(req, runtime)
                except Exception as exc:
                    code = str(getattr(exc, "code", ""))
                    if not code.startswith("Throttling"):
                        counts["errors"] += 1
                        return
                    counts["throttled"] += 1
                    if not args.retry_throttled:
                        return
                else:
                    counts["accepted"] += 1
                    return
            await asyncio.sleep(args.throttle_wait)

    started = time.perf_counter()
    await asyncio.gather(*(one(req) for req in requests))
    return {**counts, "seconds": round(time.perf_counter() - started, 3)}


def main() -> int:
    """Parse arguments, run, print the JSON summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("jobs")
    parser.add_argument("--endpoint", required=True, help="HOST:PORT, as the SDK's Config takes it")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--retry-throttled", action="store_true",
                        help="send a throttled job again (after --throttle-wait) until it is accepted")
    parser.add_argument("--throttle-wait", type=float, default=0.5)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main_async(args))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
