"""Stops of issue #13, over loopback and in subprocesses: a drain is prompt whatever the gate holds."""

from __future__ import annotations

import errno
import os
import signal
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest

from pipeline.ens.endpoint import parse_endpoint
from pipeline.ens.transport import TRANSPORTS, open_exchange
from pipeline.errors import Delivery, TransportError
from tests.run_helpers import FAST, SimProcess, cli_popen, wait_for_line, write_jobs

DRAIN_LIMIT = 8.0
"""Seconds from SIGTERM to exit that count as prompt (the defect took 60-65 s)."""


def _term_after(needle: str, sim: SimProcess, tmp_path: Path, *flags: str) -> tuple[int, float, str]:
    jobs, journal = tmp_path / "jobs.csv", tmp_path / "j.jsonl"
    write_jobs(jobs, 200)
    proc = cli_popen("run", str(jobs), "--endpoint", sim.url, "--journal", str(journal), "--quiet",
                     *flags, env=FAST)
    try:
        assert wait_for_line(journal, needle, time.monotonic() + 30), needle
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=90)
        return proc.returncode, time.monotonic() - sent, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_sigterm_drains_at_once_with_a_queue_of_rate_grants(tmp_path: Path) -> None:
    """``--rate 1 --concurrency 64``: 64 requests wait for a grant each; a drain does not wait
    them out (it took 65 s): exit 3 within seconds."""
    with SimProcess() as sim:
        code, took, err = _term_after('"event":"job.imported"', sim, tmp_path,
                                      "--rate", "1", "--concurrency", "64")
    assert code == 3, err
    assert took < DRAIN_LIMIT, f"exit {took:.1f} s after SIGTERM"


def test_sigterm_drains_at_once_during_a_retry_after_pause(tmp_path: Path) -> None:
    """A throttle with ``x-acs-retry-after`` of 60 s pauses the gate; SIGTERM still exits 3 now."""
    with SimProcess("--quota", "2", "--retry-after-ms", "60000") as sim:
        code, took, err = _term_after('"throttled":true', sim, tmp_path, "--rate", "20", "--concurrency", "8")
    assert code == 3, err
    assert took < DRAIN_LIMIT, f"exit {took:.1f} s after SIGTERM"


def _open_writer_when_read(fifo: Path, deadline: float) -> int:
    """Open the FIFO's write end once the run has opened its read end (it is then blocked
    reading its config: start-up, before any import)."""
    while time.monotonic() < deadline:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO:
                raise
            time.sleep(0.02)
    raise AssertionError("the run never opened its config")


def test_sigterm_during_start_up_exits_3_not_143(tmp_path: Path) -> None:
    """SIGTERM while the run is still starting (here: reading its config) was the default
    action, 143 with no summary; the handlers are installed first, so it is exit 3."""
    jobs, journal, fifo = tmp_path / "jobs.csv", tmp_path / "j.jsonl", tmp_path / "config.toml"
    write_jobs(jobs, 5)
    os.mkfifo(fifo)
    proc = cli_popen("run", str(jobs), "--endpoint", "http://127.0.0.1:9", "--journal", str(journal),
                     "--config", str(fifo))
    try:
        writer = _open_writer_when_read(fifo, time.monotonic() + 30)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        os.close(writer)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 3, err
    assert "stopped by SIGTERM during start-up" in err
    assert "Traceback" not in err


@pytest.mark.asyncio
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_timeout_is_a_deadline_for_the_whole_answer(transport: Any) -> None:
    """An answer trickled a byte every 0.2 s was never cut by ``--timeout`` (an idle-read
    timeout): it is a deadline now, and the request is reported as maybe sent."""
    stop = anyio.Event()

    async def trickle(stream: Any) -> None:
        async with stream:
            await stream.receive()
            await stream.send(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                              b"Content-Length: 1000\r\n\r\n")
            with anyio.move_on_after(20):
                while not stop.is_set():
                    await stream.send(b" ")
                    await anyio.sleep(0.2)

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    endpoint = parse_endpoint(f"http://127.0.0.1:{port}")
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, trickle)
        started = time.monotonic()
        async with open_exchange(endpoint, concurrency=1, connect_timeout=0.5, read_timeout=1.0,
                                 transport=transport) as http:
            with pytest.raises(TransportError) as caught:
                await http.post(f"http://127.0.0.1:{port}/?Action=ImportImage", {"host": endpoint.netloc},
                                context="ImportImage")
        took = time.monotonic() - started
        stop.set()
        tg.cancel_scope.cancel()
    assert caught.value.delivery is Delivery.MAYBE_SENT
    assert took < 4.0, f"cut after {took:.1f} s"
