"""A TCP proxy that can take a server away and bring it back: an outage on demand.

The DLQ under test talks to the proxy's port; :meth:`TcpProxy.down` stops
listening and cuts every open connection (clients see a refused
connection, as when the server is gone), :meth:`TcpProxy.up` listens again
on the same port and forwards to the real server.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

from dlq._procs import free_port

__all__ = ["TcpProxy"]


class TcpProxy:
    """Forwards ``127.0.0.1:<port>`` to ``target`` (``host:port``) from its own thread.

    Args:
        target: Where connections go while the proxy is up.
    """

    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=self.loop.run_forever, name="tcp-proxy",
                                         daemon=True)
        self._thread.start()

    def _call(self, coro: object) -> None:
        asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)  # type: ignore[arg-type]

    def up(self) -> None:
        """Listen and forward."""
        self._call(self._up())

    def down(self) -> None:
        """Stop listening and cut every open connection."""
        self._call(self._down())

    def close(self) -> None:
        """Go down and stop the thread."""
        self.down()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    async def _up(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port,
                                                      reuse_address=True)

    async def _down(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        if server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()
