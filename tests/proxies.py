"""Small TCP proxies on 127.0.0.1 for tests and benchmarks (never anything but loopback).

- :class:`DelayProxy`: a registry across a network (``delay`` added to every request).
- :class:`LimitProxy`: a registry's front end that answers 429 to any request beyond ``limit`` in
  flight at once, as rate-limiting gateways do (optionally slower per request, and with a
  ``Retry-After``).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

import httptools

__all__ = ["DelayProxy", "LimitProxy"]


class _LoopProxy:
    """An asyncio server on 127.0.0.1:<port> in a thread of its own; ``_handle`` serves a client."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._server: asyncio.base_events.Server | None = None

    def __enter__(self) -> _LoopProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v2/"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        raise NotImplementedError


class DelayProxy(_LoopProxy):
    """Forwards 127.0.0.1:<port> to ``upstream`` and holds each client->server chunk ``delay`` seconds.

    One HTTP request is one chunk on a keep-alive connection, so this adds about ``delay`` to every
    request: a registry across a network.
    """

    def __init__(self, upstream_port: int, delay: float) -> None:
        super().__init__(upstream_port)
        self.delay = delay

    def __enter__(self) -> DelayProxy:
        super().__enter__()
        return self

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            client_w.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, delay: float) -> None:
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                while data := await src.read(65536):
                    if delay:
                        await asyncio.sleep(delay)
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.close()

        # Swallowed so that shutting the proxy down is not reported as an error of every connection.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(pipe(client_r, up_w, self.delay), pipe(up_r, client_w, 0.0))


class _Message:
    """httptools callbacks that only note where a message's head and whole end."""

    def __init__(self) -> None:
        self.head_done = False
        self.done = False

    def on_headers_complete(self) -> None:
        self.head_done = True

    def on_message_complete(self) -> None:
        self.done = True


_TOO_MANY = b'{"errors":[{"code":"TOOMANYREQUESTS","message":"too many requests in flight"}]}'


class LimitProxy(_LoopProxy):
    """A front end allowing ``limit`` requests in flight at once: each one beyond is answered 429 at
    once (with ``Retry-After: <retry_after>`` when given) without reaching the registry. A request
    let through takes ``delay`` seconds more (a registry that needs that long per request: ``limit``
    in flight is then the most it serves, and the best a client can do).

    ``admitted``/``rejected`` count requests; ``peak`` is the most in flight at the registry at once
    (never above ``limit``), ``peak_asked`` the most the client had in flight, rejected ones included.
    Requests are read one at a time per connection (clients do not pipeline).
    """

    def __init__(
        self, upstream_port: int, limit: int, *, delay: float = 0.0, retry_after: float | None = None
    ) -> None:
        super().__init__(upstream_port)
        self.limit = limit
        self.delay = delay
        self.retry_after = retry_after
        self.in_flight = 0
        self.asked = 0
        self.peak = 0
        self.peak_asked = 0
        self.admitted = 0
        self.rejected = 0

    def __enter__(self) -> LimitProxy:
        super().__enter__()
        return self

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        try:
            while True:
                request, method = await _read_request(client_r)
                if request is None:
                    return
                self.asked += 1
                self.peak_asked = max(self.peak_asked, self.asked)
                try:
                    if self.in_flight >= self.limit:
                        self.rejected += 1
                        client_w.write(self._too_many())
                        await client_w.drain()
                        continue
                    self.in_flight += 1
                    self.peak = max(self.peak, self.in_flight)
                    self.admitted += 1
                    try:
                        if self.delay:
                            await asyncio.sleep(self.delay)
                        if upstream is None:
                            upstream = await asyncio.open_connection("127.0.0.1", self.upstream_port)
                        upstream[1].write(request)
                        await _relay_response(upstream[0], client_w, head_only=method == b"HEAD")
                    finally:
                        self.in_flight -= 1
                finally:
                    self.asked -= 1
        except (ConnectionError, httptools.HttpParserError, asyncio.IncompleteReadError):
            return
        except asyncio.CancelledError:
            return
        finally:
            for writer in (client_w, upstream[1] if upstream else None):
                if writer is not None:
                    with contextlib.suppress(Exception):
                        writer.close()

    def _too_many(self) -> bytes:
        head = [
            "HTTP/1.1 429 Too Many Requests",
            "Content-Type: application/json",
            f"Content-Length: {len(_TOO_MANY)}",
        ]
        if self.retry_after is not None:
            head.append(f"Retry-After: {self.retry_after:g}")
        return ("\r\n".join(head) + "\r\n\r\n").encode() + _TOO_MANY


async def _read_request(reader: asyncio.StreamReader) -> tuple[bytes | None, bytes]:
    """The raw bytes of the next request on a connection (None when the client closed it)."""
    message = _Message()
    parser = httptools.HttpRequestParser(message)
    data = bytearray()
    while not message.done:
        chunk = await reader.read(65536)
        if not chunk:
            return None, b""
        data += chunk
        parser.feed_data(chunk)
    return bytes(data), parser.get_method()


async def _relay_response(
    upstream: asyncio.StreamReader, client: asyncio.StreamWriter, *, head_only: bool
) -> None:
    """Pass one response from the registry to the client as it comes."""
    message = _Message()
    parser = httptools.HttpResponseParser(message)
    while not (message.done or (head_only and message.head_done)):
        chunk = await upstream.read(65536)
        if not chunk:
            raise ConnectionError("the registry closed the connection")
        parser.feed_data(chunk)
        client.write(chunk)
        await client.drain()
