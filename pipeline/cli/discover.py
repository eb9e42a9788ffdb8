"""``ens-migrate discover oss://BUCKET/PREFIX``: a job list from a bucket listing."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import anyio
import click

from pipeline.cli.session import load_settings
from pipeline.cli.sources import LISTING_OPTIONS, with_options
from pipeline.ens.chain import resolve_source
from pipeline.ens.credentials import CredentialSource
from pipeline.joblist.naming import check_template
from pipeline.log import configure_logging, say
from pipeline.oss.client import OssClient
from pipeline.oss.client import oss_endpoint as resolve_oss_endpoint
from pipeline.oss.discover import Discovery, discover, write_rows
from pipeline.oss.source import DEFAULT_INCLUDE, KeyFilter, parse_oss_url


@click.command("discover")
@click.argument("source")
@click.option("--oss-region", help="Region of the bucket (default: the run's region, cn-beijing).")
@click.option("--oss-endpoint", help="OSS endpoint URL (default https://oss-<region>.aliyuncs.com).")
@functools.partial(with_options, options=LISTING_OPTIONS)
@click.option("--format", "fmt", type=click.Choice(["csv", "json", "jsonl"]), default="csv",
              show_default=True, help="Job-list format written.")
@click.option("--out", "out_path", default="-", show_default=True, help="Output file, or - for stdout.")
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="TOML config file.")
@click.option("--insecure-http", is_flag=True,
              help="Allow a plain http:// OSS endpoint that is not loopback.")
@click.option("--log-format", type=click.Choice(["console", "json"]),
              help="Log format on stderr (default console). [env: ENS_MIGRATE_LOG_FORMAT]")
def discover_command(source: str, oss_region: str | None, oss_endpoint: str | None,
                     include: tuple[str, ...], exclude: tuple[str, ...], template: str, list_rate: float,
                     fmt: str, out_path: str, config_path: Path | None, insecure_http: bool,
                     log_format: str | None) -> int:
    """List oss://BUCKET/PREFIX and write a job list of its image files (ImageName, OSSRegion,
    OSSBucket, OSSObject); objects that cannot be a job are reported on stderr. Exit 0 when every
    image file became a job, 1 when some were reported."""
    config, settings = load_settings(config_path, {"log_format": log_format})
    log_fmt = settings.log_format
    configure_logging(fmt=log_fmt, quiet=True)
    region = oss_region or str(config.sections.get("run", {}).get("region", "cn-beijing"))
    found = anyio.run(lambda: run_discovery(source, region, oss_endpoint,
                                            include, exclude, template, list_rate, insecure_http))
    with _output(out_path) as out:
        written = write_rows(found.rows(), out, fmt)
    problems = list(found.problems())
    for line in problems:
        say(log_fmt, "ens_migrate.discover.left_out", f"ens-migrate: {source}: {line}", level="warning",
            source=source)
    say(log_fmt, "ens_migrate.discover.summary",
        f"ens-migrate: {source}: {found.listed} objects listed in {found.pages} pages, "
        f"{found.skipped} left out by the globs, {written} jobs written, {len(problems)} reported",
        source=source, listed=found.listed, pages=found.pages, skipped=found.skipped, written=written,
        reported=len(problems))
    return 1 if problems else 0


async def run_discovery(source: str, region: str, endpoint: str | None, include: tuple[str, ...],
                        exclude: tuple[str, ...], template: str, list_rate: float,
                        insecure_http: bool, credentials: CredentialSource | None = None) -> Discovery:
    """Resolve credentials (unless given) and endpoint, list the source, fold it (shared with run)."""
    where = parse_oss_url(source)
    check_template(template)
    if credentials is None:
        credentials = await resolve_source(dict(os.environ), Path.home())
    keys = KeyFilter(include or DEFAULT_INCLUDE, exclude)
    async with OssClient(credentials, resolve_oss_endpoint(region, endpoint, allow_insecure=insecure_http),
                         region) as client:
        return await discover(client, where, region=region, keys=keys, template=template,
                              page_interval=1.0 / list_rate if list_rate > 0 else 0.0)


@contextlib.contextmanager
def _output(path: str) -> Iterator[TextIO]:
    if path == "-":
        yield sys.stdout
        sys.stdout.flush()
        return
    target = Path(path)
    partial = target.with_name(target.name + ".partial")
    with partial.open("w", encoding="utf-8", newline="") as handle:
        yield handle
    os.replace(partial, target)
