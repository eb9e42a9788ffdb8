"""``--new-connection-delay``: every new connection's TLS handshake is held, like a WAN's round trips.

Over a WAN a fresh connection costs TCP's and TLS's round trips before its first request can be
written, and the client sees that cost: its connection is not ready until the handshake is done.
On loopback the handshake takes a millisecond. This relay gives it the WAN's cost: it accepts a
connection, holds it (the client's ClientHello waits unread) for the delay, then joins it to the
simulator's own listener and copies bytes both ways until either side closes.

Only a TLS handshake can be held so that the client sees it: a plain TCP connect completes in the
kernel, so over plain HTTP the delay would only make the first request arrive late without the
client knowing. The simulator therefore takes the delay with ``--tls`` only.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

CHUNK = 65536


class HandshakeDelay:
    """A relay on ``sock`` to ``target`` (host, port) that holds each new connection ``delay`` s."""

    def __init__(self, sock: socket.socket, target: tuple[str, int], delay: float) -> None:
        self._sock = sock
        self._target = target
        self._delay = delay
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.connections = 0
        """Connections accepted so far (each held ``delay`` seconds before it was joined)."""

    async def start(self) -> None:
        """Accept on the socket (returns once listening)."""
        self._server = await asyncio.start_server(self._accepted, sock=self._sock, backlog=4096)

    async def close(self) -> None:
        """Stop accepting and cut every relayed connection."""
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        upstream: asyncio.StreamWriter | None = None
        try:
            await asyncio.sleep(self._delay)
            up_reader, upstream = await asyncio.open_connection(*self._target)
            await asyncio.gather(_copy(reader, upstream), _copy(up_reader, writer))
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            for side in (writer, upstream):
                if side is not None:
                    side.close()


async def _copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    """Bytes from ``source`` to ``sink`` until end of stream; then half-close ``sink``."""
    try:
        while data := await source.read(CHUNK):
            sink.write(data)
            await sink.drain()
    finally:
        if sink.can_write_eof():
            with contextlib.suppress(OSError):
                sink.write_eof()
