"""OSS options of ``run`` and ``validate``: oss:// sources listed into job lists, and the source check."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import anyio
import click
import structlog

from pipeline.ens.credentials import CredentialSource
from pipeline.ens.endpoint import is_loopback
from pipeline.joblist.naming import DEFAULT_TEMPLATE
from pipeline.oss.source import DEFAULT_INCLUDE, is_oss_url, parse_oss_url
from pipeline.run.worker import SourceCheck
from pipeline.settings import RunSettings

F = TypeVar("F", bound=Callable[..., Any])
log = structlog.get_logger("ens_migrate.sources")

LISTING_OPTIONS = (
    click.option("--include", multiple=True, help=f"Glob of keys to keep (default {DEFAULT_INCLUDE[0]}); "
                 "repeatable; matched against the key and its last part."),
    click.option("--exclude", multiple=True, help="Glob of keys to leave out; repeatable."),
    click.option("--name", "template", default=DEFAULT_TEMPLATE, show_default=True,
                 help="ImageName template: {stem}, {name}, {parent}, {key}; made valid by README's rule."),
    click.option("--list-rate", type=float, default=10.0, show_default=True,
                 help="ListObjectsV2 pages per second at most."),
)
"""How an oss:// source is listed and named; ``discover`` and ``run`` share them."""


def with_options(command: F, options: tuple[Callable[[F], F], ...]) -> F:
    """Apply click options in the order listed."""
    for option in reversed(options):
        command = option(command)
    return command


_OPTIONS = (
    click.option("--oss-endpoint", help="OSS endpoint of oss:// sources and source checks "
                 "(default https://oss-<OSSRegion>.aliyuncs.com)."),
    click.option("--oss-rate", type=float,
                 help="Source-check HeadObject/GetObject calls per second (default 20)."),
    click.option("--no-check-sources", "no_check_sources", is_flag=True,
                 help="Do not HeadObject each job's OSS objects before its first ImportImage."),
    click.option("--check-format", is_flag=True,
                 help="Also read each object's first bytes: a qcow2 job needs the magic QFI\\xfb."),
    *LISTING_OPTIONS,
)


def source_options(command: F) -> F:
    """Add the OSS options; ``--oss-endpoint`` and ``--oss-rate`` are settings (flag > env > config)."""
    return with_options(command, _OPTIONS)


@dataclass(frozen=True, slots=True)
class SourceOptions:
    """What the OSS flags asked for."""

    check: bool
    check_format: bool
    include: tuple[str, ...]
    exclude: tuple[str, ...]
    template: str
    list_rate: float

    @classmethod
    def pop(cls, flags: dict[str, Any]) -> SourceOptions:
        """Take the non-setting OSS flags out of ``flags`` (the rest go to resolve_settings)."""
        return cls(check=not flags.pop("no_check_sources", False),
                   check_format=bool(flags.pop("check_format", False)),
                   include=tuple(flags.pop("include", ()) or ()),
                   exclude=tuple(flags.pop("exclude", ()) or ()),
                   template=str(flags.pop("template", DEFAULT_TEMPLATE)),
                   list_rate=float(flags.pop("list_rate", 10.0)))


def oss_journal_stem(source: str) -> str:
    """``runs/<stem>.journal.jsonl`` for an oss:// source: bucket and prefix, '/' as '-'."""
    where = parse_oss_url(source)
    return "-".join(p for p in (where.bucket, *where.prefix.split("/")) if p)


def materialize(jobs: tuple[str, ...], folder: Path, *, region: str, endpoint: str | None,
                      options: SourceOptions, insecure_http: bool,
                      credentials: CredentialSource | None = None) -> tuple[str, ...]:
    """Each oss:// argument listed into ``folder/<stem>.discovered.jsonl`` (what the run reads, and
    where a user can see what was found); other arguments as they are."""
    out: list[str] = []
    for job in jobs:
        if not is_oss_url(job):
            out.append(job)
            continue
        from pipeline.cli.discover import run_discovery  # the OSS SDK, only when a source needs it
        from pipeline.oss.discover import write_rows

        found = anyio.run(run_discovery, job, region, endpoint, options.include, options.exclude,
                          options.template, options.list_rate, insecure_http, credentials)
        for line in found.problems():
            log.warning("ens_migrate.discover.left_out", message=f"{job}: {line}")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{oss_journal_stem(job)}.discovered.jsonl"
        with path.open("w", encoding="utf-8") as handle:
            write_rows(found.rows(), handle, "jsonl")
        out.append(str(path))
    return tuple(out)


def checks_wanted(options: SourceOptions, settings: RunSettings, *, ens_host: str,
                  simulated: bool) -> bool:
    """On by default against Alibaba Cloud; against a loopback ENS only with --oss-endpoint (a test or
    a simulator must not send checks to a real OSS); with --simulate against the simulator's OSS."""
    if not options.check:
        return False
    return simulated or bool(settings.oss_endpoint) or not is_loopback(ens_host)


@contextlib.asynccontextmanager
async def source_check(options: SourceOptions, settings: RunSettings, credentials: CredentialSource, *,
                       ens_host: str, oss_url: str | None,
                       insecure_http: bool) -> AsyncIterator[SourceCheck | None]:
    """The run's source check (None when off), its clients closed when the block ends."""
    if not checks_wanted(options, settings, ens_host=ens_host, simulated=oss_url is not None):
        yield None
        return
    from pipeline.oss.check import checker_for  # the OSS SDK, only when the check runs

    checker = checker_for(credentials, endpoint=oss_url or settings.oss_endpoint or None,
                          insecure_http=insecure_http, rate=settings.oss_rate,
                          check_format=options.check_format, timeout=settings.timeout)

    async def check(params: Mapping[str, str]) -> tuple[str, str] | None:
        failure = await checker.check(params)
        return None if failure is None else (failure.code, failure.message)

    try:
        yield check
    finally:
        await checker.close()
