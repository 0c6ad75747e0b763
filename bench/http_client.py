"""A small asyncio HTTP/1.1 keep-alive client and a closed loop of clients over it (the hot-SKU
scenario, and the fallback driver when wrk is not there)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable

# (client index, its request number) -> (method, path, headers, body)
RequestFactory = Callable[[int, int], tuple[str, str, dict[str, str], bytes]]
SOCKET_ERRORS = (OSError, asyncio.IncompleteReadError, ValueError)


class HttpConnection:
    """One keep-alive HTTP/1.1 connection; responses must carry Content-Length (ours all do)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
            self.writer = None

    async def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> tuple[int, dict[str, str], bytes]:
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        try:
            status_line = await self.reader.readuntil(b"\r\n")
            status = int(status_line.split()[1])
            response_headers: dict[str, str] = {}
            while True:
                line = await self.reader.readuntil(b"\r\n")
                if line == b"\r\n":
                    break
                name, _, value = line.decode("latin-1").partition(":")
                response_headers[name.strip().lower()] = value.strip()
            length = int(response_headers.get("content-length", "0"))
            payload = await self.reader.readexactly(length) if length else b""
        except (asyncio.IncompleteReadError, ConnectionError):
            await self.close()
            raise
        if response_headers.get("connection", "").lower() == "close":
            await self.close()
        return status, response_headers, payload


async def closed_loop(
    host: str, port: int, clients: int, duration: float, make_request: RequestFactory
) -> tuple[list[float], Counter, int]:
    """`clients` connections, each sending its next request when the last one is answered, for
    `duration` seconds: (latencies in seconds, responses by status, socket errors)."""
    latencies: list[float] = []
    statuses: Counter = Counter()
    socket_errors = 0
    deadline = time.perf_counter() + duration

    async def client(index: int) -> None:
        nonlocal socket_errors
        connection = HttpConnection(host, port)
        sequence = 0
        try:
            while time.perf_counter() < deadline:
                sequence += 1
                method, path, headers, body = make_request(index, sequence)
                started = time.perf_counter()
                try:
                    status, _, _ = await connection.request(method, path, headers, body)
                except SOCKET_ERRORS:
                    socket_errors += 1
                    await asyncio.sleep(0.01)
                    continue
                latencies.append(time.perf_counter() - started)
                statuses[str(status)] += 1
        finally:
            await connection.close()

    await asyncio.gather(*(client(i) for i in range(clients)))
    return latencies, statuses, socket_errors
