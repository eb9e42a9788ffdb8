"""Where imports go: the real endpoint with the credentials chain, or the built-in simulator."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

import anyio
import click

from pipeline.ens.chain import ENV_PROFILE, resolve_source
from pipeline.ens.credentials import Credentials, CredentialSource, StaticCredentials
from pipeline.ens.endpoint import Endpoint, resolve_endpoint
from pipeline.errors import ConfigError
from pipeline.journal.ledger import Ledger
from pipeline.log import say
from pipeline.settings import RunSettings, env_name

F = TypeVar("F", bound=Callable[..., Any])

SIMULATOR = "simulator"
EXAMPLE_BUCKET = Path(__file__).resolve().parents[2] / "jobs" / "example-bucket.jsonl"
"""The objects ``run --simulate`` serves in its OSS (the example lists' images); a bucket it does not
name holds every key, so any other simulated list keeps working."""

def _choose_profile(_: click.Context, __: click.Parameter, value: str | None) -> None:
    # The chain reads ALIBABA_CLOUD_PROFILE, like the SDK; --profile is the same setting.
    if value:
        os.environ[ENV_PROFILE] = value


_TARGET_OPTIONS = (
    click.option("--profile", callback=_choose_profile, expose_value=False, is_eager=True,
                 help="Credentials profile: a ~/.aliyun/config.json profile or a credentials.ini "
                      "section (same as ALIBABA_CLOUD_PROFILE)."),
    click.option("--config", "config_path", type=click.Path(path_type=Path), help="TOML config file."),
    click.option("--endpoint", help="ENS endpoint URL (default: from --region)."),
    click.option("--region", help="Region ID, e.g. cn-beijing; picks the endpoint."),
    click.option("--insecure-http", is_flag=True,
                 help="Allow a plain http:// endpoint that is not loopback."),
    click.option("--log-format", type=click.Choice(["console", "json"]), help="Log format on stderr."),
)


def target_options(command: F) -> F:
    """The options every command that talks to ENS takes: config, endpoint, region, log format."""
    for option in reversed(_TARGET_OPTIONS):
        command = option(command)
    return command


@dataclass(frozen=True, slots=True)
class Target:
    """An endpoint, the credentials for it, and the name a journal records for it."""

    endpoint: Endpoint
    credentials: CredentialSource
    name: str
    oss_url: str | None = None
    """The simulator's OSS (``--simulate``); None: the real OSS (``--oss-endpoint`` or per region)."""

    def check_journal(self, ledger: Ledger, journal: Path) -> None:
        """A journal belongs to one target; refuse to mix the simulator's records with ENS's."""
        if ledger.target and ledger.target != self.name:
            hint = " (or add --simulate to go on against the built-in simulator)" if (
                ledger.target == SIMULATOR) else ""
            raise ConfigError(
                f"journal {journal} records runs against {ledger.target}, but this run targets "
                f"{self.name}; a journal belongs to one target: pass another --journal{hint}")


def simulator_state_file(journal: Path) -> Path:
    """Where ``--simulate`` keeps the simulator's images, so reruns see what earlier runs made."""
    return journal.with_name(journal.name + ".simulator.json")


@contextlib.contextmanager
def open_target(*, simulate: bool, settings: RunSettings, insecure_http: bool,
                journal: Path) -> Iterator[Target]:
    """Resolve the real target, or start the in-process simulator for the block's duration."""
    if not simulate:
        environ, home = dict(os.environ), Path.home()
        credentials = anyio.run(lambda: resolve_source(environ, home))
        endpoint = resolve_endpoint(endpoint=settings.endpoint or None, region=settings.region,
                                    allow_insecure=insecure_http)
        yield Target(endpoint, credentials, endpoint.url)
        return
    from pipeline.simulator.config import DEV_ACCESS_KEY_ID, DEV_ACCESS_KEY_SECRET, SimulatorConfig
    from pipeline.simulator.server import SimulatorThread

    config = SimulatorConfig(access_key_id=DEV_ACCESS_KEY_ID, access_key_secret=DEV_ACCESS_KEY_SECRET,
                             state_file=simulator_state_file(journal),
                             oss_objects=EXAMPLE_BUCKET if EXAMPLE_BUCKET.is_file() else None,
                             oss_open_buckets=True)
    with SimulatorThread(config) as sim:
        say(settings.log_format, "ens_migrate.run.simulation",
            f"*** SIMULATION: importing into the built-in ENS simulator at {sim.url}, "
            "not into Alibaba Cloud ***", url=sim.url)
        yield Target(resolve_endpoint(endpoint=sim.url),
                     StaticCredentials(Credentials(DEV_ACCESS_KEY_ID, DEV_ACCESS_KEY_SECRET,
                                                   source="simulator development pair")),
                     SIMULATOR, oss_url=sim.url)


_MORE_SETTINGS: tuple[tuple[str, Any, str], ...] = (
    ("--connect-timeout", float, "Seconds to open a connection (and to wait for a pooled one)."),
    ("--max-retry-time", float, "Seconds one job may spend retrying before it is recorded failed."),
    ("--retry-max-delay", float, "Longest backoff between two tries of a job, seconds."),
    ("--reconcile-delay", float, "Seconds to wait before looking up a job whose answer was lost."),
    ("--lookup-rate", float, "DescribeSelfImages calls per second (reconcile, --skip-existing, wait)."),
    ("--transport", click.Choice(["aiohttp", "httpx"]), "HTTP stack under the ENS client."),
    ("--breaker-warmup", int, "Answers seen before the circuit breaker may open."),
    ("--breaker-ratio", float, "Failure ratio of recent answers that opens the circuit breaker."),
    ("--breaker-streak", int, "Failures in a row that open the circuit breaker."),
)
"""The settings that had no flag: every setting has one (flag > environment > config > default)."""


def setting_options(command: F) -> F:
    """The flags of the settings ``run`` has no option of its own for."""
    for flag, kind, text in reversed(_MORE_SETTINGS):
        command = click.option(flag, type=kind, help=text)(command)
    return command


def name_env_vars(command: click.Command) -> click.Command:
    """Append ``[env: ENS_MIGRATE_<NAME>]`` to the help of each option that is a setting."""
    names = {f.name for f in fields(RunSettings)}
    for param in command.params:
        if isinstance(param, click.Option) and param.name in names:
            param.help = f"{param.help or ''} [env: {env_name(param.name)}]".strip()
    return command
