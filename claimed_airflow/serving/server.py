"""The HTTP server: uvicorn (httptools) runs the app; a guard in front of its protocol adds the limits uvicorn lacks.

uvicorn arms its keep-alive timeout only after a response and httptools has no limit on headers. The
guard (:class:`Guard`, a plain ``asyncio.Protocol`` wrapped around the protocol uvicorn builds, through
uvicorn's public ``Config``) parses each request's framing with httptools as well and, from the moment a
connection opens, closes a silent one after the idle timeout; each request must arrive whole (headers and
body) within the request timeout (408) with its request line and headers within MAX_HEADER_BYTES (431);
a request that is not valid HTTP/1.1 is refused with a JSON 400. Nothing of uvicorn's private API is used.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from claimed_airflow import __version__
from claimed_airflow.core.errors import ClaimedError
from claimed_airflow.serving.app import make_app
from claimed_airflow.serving.limits import (
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_THREADS,
    IDLE_TIMEOUT,
    MAX_HEADER_BYTES,
    REQUEST_TIMEOUT,
)
from claimed_airflow.serving.models import ServedModel

INVALID = "request: not valid HTTP/1.1 (request line, headers, Content-Length or chunked framing)"


@dataclass(frozen=True)
class Limits:
    """What the guard enforces on each connection."""

    idle_timeout: float = IDLE_TIMEOUT
    request_timeout: float = REQUEST_TIMEOUT
    max_header_bytes: int = MAX_HEADER_BYTES


def raw_answer(status: str, message: str) -> bytes:
    """A whole HTTP/1.1 answer ``{"error": message}`` that closes the connection."""
    body = json.dumps({"error": message}).encode()
    head = f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
    return head.encode() + b"connection: close\r\n\r\n" + body


class Guard(asyncio.Protocol):
    """A connection's protocol: the limits (:class:`Limits`) in front of ``inner``, uvicorn's HTTP protocol."""

    def __init__(self, inner: asyncio.Protocol, limits: Limits) -> None:
        import httptools  # the serve extra: imported when a server runs

        self.httptools = httptools
        self.inner, self.limits = inner, limits
        self.parser: Any = httptools.HttpRequestParser(self)
        self.transport: Any = None
        self.idle: asyncio.TimerHandle | None = None
        self.deadline: asyncio.TimerHandle | None = None
        self.header_bytes: int | None = None  # bytes received since the request began, until its headers end
        self.url = b""
        self.answered = False  # something was sent since the current request began

    # --- asyncio.Protocol: from the event loop, passed on to uvicorn's protocol -----------------------
    def connection_made(self, transport: Any) -> None:  # an asyncio or a uvloop transport
        self.transport = transport
        self.idle = asyncio.get_running_loop().call_later(self.limits.idle_timeout, self.close)
        self.inner.connection_made(Watched(transport, self))

    def data_received(self, data: bytes) -> None:
        if self.idle is not None:
            self.idle.cancel()
            self.idle = None
        if self.transport is None or self.transport.is_closing():
            return
        if self.parser is None:  # after an upgrade request (not supported): nothing more is served
            self.transport.close()
            return
        try:
            self.parser.feed_data(data)
        except self.httptools.HttpParserUpgrade:
            self.parser = None  # uvicorn answers the request and ignores the upgrade
        except self.httptools.HttpParserError:
            self.refuse("400 Bad Request", INVALID)
            return
        if self.header_bytes is not None:
            self.header_bytes += len(data)
            if self.header_bytes > self.limits.max_header_bytes:
                message = f"request: request line and headers longer than {self.limits.max_header_bytes} bytes"
                self.refuse("431 Request Header Fields Too Large", message)
                return
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self.idle, self.deadline):
            if timer is not None:
                timer.cancel()
        self.idle = self.deadline = None
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    # --- httptools callbacks: the request's framing ---------------------------------------------------
    def on_message_begin(self) -> None:
        self.header_bytes, self.url, self.answered = 0, b"", False
        self.deadline = asyncio.get_running_loop().call_later(self.limits.request_timeout, self.timed_out)

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_headers_complete(self) -> None:
        self.header_bytes = None
        self.httptools.parse_url(self.url).path.decode("ascii")  # what uvicorn refuses: refused here, as JSON (400)

    def on_message_complete(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None

    # --- answers of the guard ---------------------------------------------------------------------------
    def refuse(self, status: str, message: str) -> None:
        assert self.transport is not None
        self.transport.write(raw_answer(status, message))
        self.transport.close()

    def timed_out(self) -> None:
        self.deadline = None
        if self.transport is not None and not self.transport.is_closing():
            if not self.answered:
                message = f"request: not received within {self.limits.request_timeout:g} s"
                self.transport.write(raw_answer("408 Request Timeout", message))
            self.transport.close()

    def close(self) -> None:
        self.idle = None
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


class Watched(asyncio.Transport):
    """The transport as uvicorn's protocol sees it: every call is passed on; a write marks the request answered."""

    def __init__(self, transport: Any, guard: Guard) -> None:
        super().__init__()
        self._transport, self._guard = transport, guard

    def write(self, data: Any) -> None:
        self._guard.answered = True
        self._transport.write(data)

    def writelines(self, list_of_data: Any) -> None:
        self._guard.answered = True
        self._transport.writelines(list_of_data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def close(self) -> None:
        self._transport.close()

    def abort(self) -> None:
        self._transport.abort()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def write_eof(self) -> None:
        self._transport.write_eof()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()


def guarded(protocol_class: Callable[..., asyncio.Protocol], limits: Limits) -> Callable[..., Guard]:
    """A protocol factory for uvicorn: ``protocol_class`` (built with uvicorn's arguments, as given) behind a Guard."""

    def create(*args: Any, **kwargs: Any) -> Guard:
        return Guard(protocol_class(*args, **kwargs), limits)

    return create


def make_server(
    model: ServedModel,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    threads: int = DEFAULT_THREADS,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    idle_timeout: float = IDLE_TIMEOUT,
    request_timeout: float = REQUEST_TIMEOUT,
    access_log: bool = False,
):
    """(uvicorn server, listening socket) for ``model``, not started; port 0 picks a free port."""
    import uvicorn

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.create_server((host, port), family=family, backlog=2048)
    config = uvicorn.Config(
        make_app(model, threads),
        http="httptools",
        ws="none",
        lifespan="off",
        log_config=None,
        access_log=access_log,
        server_header=False,
        headers=[("server", f"claimed-airflow/{__version__}")],
        limit_concurrency=max_connections,
        timeout_keep_alive=idle_timeout,  # type: ignore[arg-type] (a float works: loop.call_later)
        timeout_graceful_shutdown=10,
    )
    config.load()  # resolves http="httptools" to uvicorn's protocol class, which the guard then wraps
    limits = Limits(idle_timeout, request_timeout)
    config.http_protocol_class = guarded(config.http_protocol_class, limits)  # type: ignore[assignment]
    return uvicorn.Server(config), listener


@contextlib.contextmanager
def serving(model: ServedModel, host: str = "127.0.0.1", port: int = 0, **limits: Any) -> Iterator[str]:
    """Serve ``model`` in a background thread; yields the base URL and stops the server on exit.

    ``limits``: keyword arguments of :func:`make_server` (threads, max_connections, idle_timeout, request_timeout).
    """
    server, listener = make_server(model, host, port, **limits)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, name="claimed-serve", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            listener.close()
            raise ClaimedError(f"serve: the server on {host}:{listener.getsockname()[1]} did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        listener.close()
