"""Serving the simulator with uvicorn: in the current event loop, or in a thread of its own."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future
from types import TracebackType
from typing import Any, TypeVar

import anyio
import anyio.lowlevel
import uvicorn

from pipeline.simulator.app import SimulatorApp
from pipeline.simulator.config import SimulatorConfig
from pipeline.simulator.handshake import HandshakeDelay
from pipeline.simulator.state import SimulatorState
from pipeline.simulator.tls import TlsFiles, create_tls_files

START_TIMEOUT = 10.0
T = TypeVar("T")


class _Server(uvicorn.Server):
    """uvicorn without its signal capture (the caller owns signals) and with a ``ready`` event."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        # The first anyio.sleep imports anyio's asyncio backend (~30 ms here). Done inside the first
        # delayed ImportImage, it held up every request arriving meanwhile, bunching their arrival
        # times: a client keeping to the quota by its own clock then read one over in a second.
        await anyio.lowlevel.checkpoint()
        self.ready.set()

    def transport_for(self, scope: dict[str, Any]) -> Any:
        """The transport of the connection ``scope`` came in on (matched by client address)."""
        client = tuple(scope.get("client") or ())
        for connection in list(self.server_state.connections):
            if getattr(connection, "client", None) == client:
                return getattr(connection, "transport", None)
        return None


class Simulator:
    """A running simulator: its ``url``, its ``state`` and snapshots of both."""

    def __init__(self, url: str, state: SimulatorState, tls: TlsFiles | None = None) -> None:
        self.url = url
        self.state = state
        self.tls = tls
        """With ``tls_dir``: the certificate files; ``tls.ca_file`` is what clients trust."""

    @property
    def port(self) -> int:
        """The bound TCP port."""
        return int(self.url.rsplit(":", 1)[1])

    @property
    def endpoint(self) -> str:
        """``host:port``, what the official SDK's ``Config(endpoint=...)`` takes."""
        return self.url.partition("://")[2]

    def stats(self) -> dict[str, Any]:
        """The ``/_sim/stats`` JSON (call on the simulator's loop)."""
        return self.state.stats_snapshot()

    def images(self) -> list[dict[str, Any]]:
        """The ``/_sim/images`` entries (call on the simulator's loop)."""
        return self.state.images_snapshot()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on connections whose socket says TCP,
    # and without it every answer waits ~40 ms for the client's delayed ACK (Nagle).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _url(host: str, sock: socket.socket, scheme: str = "http") -> str:
    port = sock.getsockname()[1]
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


@contextlib.asynccontextmanager
async def serve_simulator(config: SimulatorConfig | None = None) -> AsyncIterator[Simulator]:
    """Serve a simulator on loopback in the running asyncio loop until the block exits.

    Returns once uvicorn is accepting (no sleeps); holds no task group or cancel scope open
    across the ``yield``, so it is safe in a pytest-asyncio fixture.
    """
    config = config or SimulatorConfig()
    state = SimulatorState(config)
    tls = None if config.tls_dir is None else create_tls_files(config.tls_dir)
    sock = _bind(config.host, config.port)
    # With a handshake delay the public socket is the delaying relay's; uvicorn listens behind it.
    relay: HandshakeDelay | None = None
    served = sock
    if config.new_connection_delay > 0:
        served = _bind(config.host, 0)
        relay = HandshakeDelay(sock, (config.host, served.getsockname()[1]), config.new_connection_delay)
    app = SimulatorApp(state)
    server = _Server(uvicorn.Config(
        app, lifespan="off", log_config=None, log_level="warning", access_log=False, server_header=False,
        timeout_graceful_shutdown=1, backlog=4096,
        ssl_certfile=None if tls is None else str(tls.cert_file),
        ssl_keyfile=None if tls is None else str(tls.key_file),
    ))
    app.finder = server.transport_for
    serving = asyncio.create_task(server.serve(sockets=[served]), name="ens-simulator")
    ready = asyncio.create_task(server.ready.wait())
    persisting: asyncio.Task[None] | None = None
    try:
        await asyncio.wait({serving, ready}, timeout=START_TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
        if not server.ready.is_set():
            if serving.done():
                serving.result()
            raise RuntimeError(f"the ENS simulator did not start within {START_TIMEOUT:g} s")
        if relay is not None:
            await relay.start()
        if state.persister is not None:
            persisting = asyncio.create_task(state.persister.run(), name="ens-simulator-persist")
        yield Simulator(_url(config.host, sock, "http" if tls is None else "https"), state, tls)
    finally:
        ready.cancel()
        if relay is not None:
            await relay.close()
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await serving
        sock.close()
        served.close()
        if persisting is not None:
            persisting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await persisting
        if state.persister is not None:
            await state.persister.flush()


class SimulatorThread:
    """A simulator in its own thread and event loop, for sync code: ``with SimulatorThread(cfg) as sim:``."""

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._started: Future[Simulator] = Future()
        self._simulator: Simulator | None = None

    @property
    def simulator(self) -> Simulator:
        """The running simulator."""
        if self._simulator is None:
            raise RuntimeError("the simulator thread is not running; use it as a context manager")
        return self._simulator

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` (``https://`` with ``tls_dir``)."""
        return self.simulator.url

    @property
    def endpoint(self) -> str:
        """``HOST:PORT``."""
        return self.simulator.endpoint

    @property
    def state(self) -> SimulatorState:
        """The live state; it belongs to the simulator's thread, so read it through ``stats``/``images``."""
        return self.simulator.state

    def start(self) -> Simulator:
        """Start serving; returns once it accepts connections."""
        self._thread = threading.Thread(target=self._run, name="ens-simulator", daemon=True)
        self._thread.start()
        self._simulator = self._started.result(timeout=START_TIMEOUT)
        return self._simulator

    def stop(self) -> None:
        """Stop serving and wait for the thread (state is flushed to ``state_file`` first)."""
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=START_TIMEOUT)
        self._simulator = None

    def stats(self) -> dict[str, Any]:
        """A consistent ``/_sim/stats`` snapshot, taken on the simulator's loop."""
        return self._on_loop(self.simulator.stats)

    def images(self) -> list[dict[str, Any]]:
        """A consistent ``/_sim/images`` snapshot, taken on the simulator's loop."""
        return self._on_loop(self.simulator.images)

    def reset(self) -> None:
        """Forget images and counters (like ``POST /_sim/reset``)."""
        self._on_loop(self.simulator.state.reset)

    def _on_loop(self, fn: Callable[[], T]) -> T:
        assert self._loop is not None
        result: Future[T] = Future()

        def call() -> None:
            try:
                result.set_result(fn())
            except BaseException as exc:
                result.set_exception(exc)

        self._loop.call_soon_threadsafe(call)
        return result.result(timeout=START_TIMEOUT)

    def __enter__(self) -> SimulatorThread:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            if not self._started.done():
                self._started.set_exception(exc)

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve_simulator(self.config) as simulator:
            self._started.set_result(simulator)
            await self._stop.wait()
