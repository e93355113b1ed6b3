"""A TCP proxy that can freeze: connections stay open but nothing is forwarded either way.

That is what a hung database looks like to a client (a stuck disk, a paused VM, a network
partition that drops packets): no refusal, no reset, no answer. Used by the hung-database
tests and `bench.hung_db`.
"""

import asyncio
import contextlib


class FreezingProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._pipes: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._connected, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def freeze(self) -> None:
        """Stop forwarding; new connections are accepted and hang too."""
        self._flowing.clear()

    def thaw(self) -> None:
        self._flowing.set()

    async def _connected(
        self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter
    ) -> None:
        await self._flowing.wait()  # a frozen database does not even finish connecting
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.close()
            return
        self._writers.update((client_w, server_w))
        for reader, writer in ((client_r, server_w), (server_r, client_w)):
            task = asyncio.create_task(self._pipe(reader, writer))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            while data := await reader.read(65536):
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        writer.close()

    async def stop(self) -> None:
        self.thaw()
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.close()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)


async def in_front_of(database_url: str) -> tuple[FreezingProxy, str]:
    """A started proxy in front of a PostgreSQL URL on 127.0.0.1, and the URL through it."""
    address = database_url.split("@127.0.0.1:")[1].split("/", maxsplit=1)[0]
    proxy = FreezingProxy("127.0.0.1", int(address))
    port = await proxy.start()
    return proxy, database_url.replace(f"@127.0.0.1:{address}/", f"@127.0.0.1:{port}/")
