"""``ens-migrate simulator``: serve the built-in ENS simulator on loopback until SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import gc
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import click

from pipeline.errors import ConfigError
from pipeline.simulator.config import (
    DELETE_FAULTS,
    DESCRIBE_FAULTS,
    MAX_PAGE_SIZE,
    SimulatorConfig,
    key_pair_from_env,
    parse_fault,
    parse_latency,
)
from pipeline.simulator.server import serve_simulator


@click.command("simulator")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind (keep it loopback).")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="TCP port; 0 picks a free one (printed on the first line).")
@click.option("--quota", type=click.IntRange(min=0), default=0, show_default=True,
              help="ImportImage requests per second per account; 0 = unlimited.")
@click.option("--burst", type=click.IntRange(min=1), default=None,
              help="Token-bucket capacity; unset = exact sliding window (never over quota in any second).")
@click.option("--latency", default="0", show_default=True, metavar="MIN-MAX",
              help="ImportImage service time in seconds, uniform, e.g. 0.01-0.05.")
@click.option("--fault", "faults", multiple=True, metavar="NAME=P",
              help="Inject a fault into ImportImage with probability P (repeatable): "
                   "error500, error503, drop_before, drop_after, slow_after, garbage, late_create, "
                   "late_503, nonce_replay.")
@click.option("--slow-seconds", type=click.FloatRange(min=0), default=5.0, show_default=True,
              help="How long slow_after (and the Describe fault slow) holds the answer.")
@click.option("--fault-limit", type=click.IntRange(min=0), default=None,
              help="Inject at most this many ImportImage faults in all.")
@click.option("--late-seconds", type=click.FloatRange(min=0), default=3.0, show_default=True,
              help="How long late_create and late_503 work before the image exists (the answer "
                   "follows; a client that hung up meanwhile still gets its image).")
@click.option("--listing-lag", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Seconds after creation before an image shows in DescribeImages/DescribeSelfImages.")
@click.option("--seed", type=int, default=None, help="Seed for faults, latency and failures.")
@click.option("--state", "state_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Keep images in this JSON file across restarts.")
@click.option("--available-after", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Seconds an image stays Creating.")
@click.option("--fail-fraction", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Fraction of images ending Pack_failed/Upload_failed.")
@click.option("--deny-all", is_flag=True, help="Answer NoPermission to every ImportImage.")
@click.option("--retry-after-ms", type=click.IntRange(min=0), default=None,
              help="Send x-acs-retry-after (milliseconds) with Throttling.User.")
@click.option("--clock-offset", type=float, default=0.0, show_default=True,
              help="Seconds to skew the server clock by (tests InvalidTimeStamp.Expired).")
@click.option("--describe-quota", type=click.IntRange(min=0), default=0, show_default=True,
              help="DescribeImages / DescribeSelfImages calls per second each (Throttling.User "
                   "beyond); 0 = unlimited.")
@click.option("--max-page-size", type=click.IntRange(1, MAX_PAGE_SIZE), default=MAX_PAGE_SIZE,
              show_default=True,
              help="Images per Describe page at most, whatever PageSize asks (answers PageSize so).")
@click.option("--describe-fault", "describe_faults", multiple=True, metavar="NAME=P",
              help="Inject a fault into Describe calls with probability P (repeatable): "
                   + ", ".join(DESCRIBE_FAULTS) + ".")
@click.option("--delete-fault", "delete_faults", multiple=True, metavar="NAME=P",
              help="Inject a fault into DeleteImage with probability P (repeatable): "
                   + ", ".join(DELETE_FAULTS) + " (deleted, then the answer is lost).")
@click.option("--sts-ttl", type=click.FloatRange(min=0, min_open=True), default=3600.0, show_default=True,
              help="Lifetime in seconds of the credentials STS AssumeRole/AssumeRoleWithOIDC issue.")
@click.option("--tls", is_flag=True,
              help="Serve HTTPS with a fresh self-signed CA for 127.0.0.1/localhost; prints the CA file.")
@click.option("--tls-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where --tls writes its CA, certificate and key (default: a temporary folder, "
                   "removed on exit).")
@click.option("--new-connection-delay", type=click.FloatRange(min=0), default=0.0, show_default=True,
              metavar="SECONDS",
              help="Hold each new connection's TLS handshake this long (TCP+TLS over a WAN); "
                   "needs --tls.")
@click.option("--oss-objects", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="Serve these OSS objects (JSON Lines: bucket, key, size, first_bytes base64) path style "
                   "on the same port (any other bucket answers NoSuchBucket); ImportImage then fails an "
                   "image whose object is missing.")
@click.option("--oss-deny-bucket", "oss_denied", multiple=True,
              help="An OSS bucket that answers 403 AccessDenied (repeatable).")
def simulator(
    host: str, port: int, quota: int, burst: int | None, latency: str, faults: tuple[str, ...],
    slow_seconds: float, fault_limit: int | None, late_seconds: float, listing_lag: float,
    seed: int | None, state_file: Path | None, available_after: float,
    fail_fraction: float, deny_all: bool, retry_after_ms: int | None, clock_offset: float,
    describe_quota: int, max_page_size: int, describe_faults: tuple[str, ...],
    delete_faults: tuple[str, ...], sts_ttl: float,
    tls: bool, tls_dir: Path | None, new_connection_delay: float, oss_objects: Path | None,
    oss_denied: tuple[str, ...],
) -> None:
    """Serve a fake ENS endpoint (ImportImage, DescribeImages, DescribeSelfImages, DeleteImage),
    and STS (AssumeRole, AssumeRoleWithOIDC) on the same port.

    It checks V3 (ACS3-HMAC-SHA256, ACS3-HMAC-SM3) and RPC V2 (HMAC-SHA1) signatures like the
    gateway, so the official SDK, the legacy SDK and the aliyun CLI all work. It accepts the key pair in
    ALIBABA_CLOUD_ACCESS_KEY_ID/ALIBABA_CLOUD_ACCESS_KEY_SECRET when both are set, else a
    fixed development pair it prints. GET /_sim/stats and /_sim/images show what it received.
    """
    keys = key_pair_from_env()
    if tls_dir is not None and not tls:
        raise click.UsageError("--tls-dir needs --tls")
    if new_connection_delay and not tls:
        raise click.UsageError("--new-connection-delay needs --tls: only a TLS handshake can be held "
                               "where the client sees it (a plain TCP connect completes in the kernel)")
    temporary = Path(tempfile.mkdtemp(prefix="ens-simulator-tls-")) if tls and tls_dir is None else None
    try:
        config = SimulatorConfig(
            host=host, port=port, quota=quota, burst=burst, latency=parse_latency(latency),
            faults=dict(parse_fault(f) for f in faults), seed=seed, slow_seconds=slow_seconds,
            late_seconds=late_seconds, listing_lag=listing_lag, fault_limit=fault_limit,
            available_after=available_after, fail_fraction=fail_fraction, deny_all=deny_all,
            retry_after_ms=retry_after_ms, clock_offset=clock_offset, state_file=state_file,
            access_key_id=keys.access_key_id, access_key_secret=keys.access_key_secret,
            security_token=keys.security_token, describe_quota=describe_quota, sts_ttl=sts_ttl,
            max_page_size=max_page_size,
            describe_faults=dict(parse_fault(f, DESCRIBE_FAULTS) for f in describe_faults),
            delete_faults=dict(parse_fault(f, DELETE_FAULTS) for f in delete_faults),
            tls_dir=tls_dir or temporary, new_connection_delay=new_connection_delay,
            oss_objects=oss_objects, oss_denied_buckets=frozenset(oss_denied),
        )
        asyncio.run(_serve(config, from_environment=keys.from_environment))
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)


async def _serve(config: SimulatorConfig, *, from_environment: bool) -> None:
    _steady_collector()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with serve_simulator(config) as sim:
            click.echo(f"ENS simulator listening on {sim.url}")
            if sim.tls is not None:
                click.echo(f"TLS CA file: {sim.tls.ca_file} (trust it: the SDK's RuntimeOptions(ca=...), "
                           "requests' verify=, curl --cacert)")
            if from_environment:
                click.echo(f"Access key: {config.access_key_id} (from ALIBABA_CLOUD_ACCESS_KEY_ID; "
                           "the secret is the one in ALIBABA_CLOUD_ACCESS_KEY_SECRET)")
            else:
                click.echo(f"Access key id:     {config.access_key_id}")
                click.echo(f"Access key secret: {config.access_key_secret}")
                click.echo("(a fixed development pair, not a real credential; set "
                           "ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET to choose another)")
            if config.security_token:
                click.echo("STS token required: the one in ALIBABA_CLOUD_SECURITY_TOKEN")
            click.echo(f"Seed {sim.state.seed}; stats at {sim.url}/_sim/stats; Ctrl+C to stop", nl=True)
            sys.stdout.flush()
            await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def _steady_collector() -> None:
    """Keep the cyclic garbage collector from pausing the loop for tens of milliseconds.

    A full collection walks every tracked object: the imported modules, then the images, nonces
    and connections of a run. Measured at 256 connections and 100 requests/s, it stalled the
    loop 30-90 ms, and every request read meanwhile got the same arrival time: the quota's
    one-second window then counted 101-103 from a client that wrote at most 100 in any 1.02 s.
    A real gateway does not pause so. What exists at start-up is frozen out of collection, and a
    full collection waits for a million young ones (young collections stay as they are); this
    process is the simulator alone, and its cycles are few (asyncio's exceptions).
    """
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, 1_000_000)
