"""A small base for local fake HTTP services: real sockets on 127.0.0.1, routes, a request log, faults.

A fake is a subclass with ``@route(METHOD, PATTERN)`` handlers. Each handler gets a
:class:`Request` (method, path, query, headers, parsed JSON body, path groups) and returns a
:class:`Reply`. Tests read ``fake.requests`` to assert on what the client really sent, and
inject faults with ``fake.fail_next(n, Reply(...))`` (served before any handler runs) or a
fixed ``fake.latency``. Keep-alive HTTP/1.1 with a thread per connection, as a real server would.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Self
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    raw: bytes
    json: Any = None
    params: dict[str, str] = field(default_factory=dict)

    @property
    def bearer(self) -> str | None:
        auth = self.headers.get("authorization", "")
        return auth[7:] if auth.lower().startswith("bearer ") else None


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # dict/list -> JSON; bytes/str -> sent as is
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds to wait before answering (a slow upstream)

    def encoded(self) -> tuple[bytes, str]:
        if isinstance(self.body, bytes):
            return self.body, "application/octet-stream"
        if isinstance(self.body, str):
            return self.body.encode(), "text/plain; charset=utf-8"
        if self.body is None:
            return b"", "application/json"
        return json.dumps(self.body).encode(), "application/json"


Handler = Callable[[Any, Request], Reply]


def route(method: str, pattern: str) -> Callable[[Handler], Handler]:
    """Mark a method as the handler of ``METHOD`` requests whose path fully matches ``pattern``."""

    def mark(fn: Handler) -> Handler:
        fn._route = (method.upper(), re.compile(pattern))  # type: ignore[attr-defined]
        return fn

    return mark


class FakeHttpServer:
    routes: ClassVar[list[tuple[str, re.Pattern[str], str]]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        found: list[tuple[str, re.Pattern[str], str]] = []
        for klass in reversed(cls.__mro__):
            for name, attr in vars(klass).items():
                if hasattr(attr, "_route"):
                    method, pattern = attr._route
                    found = [r for r in found if r[2] != name]  # a subclass may override a handler
                    found.append((method, pattern, name))
        cls.routes = found

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.latency = 0.0
        self.in_flight = 0
        self.max_in_flight = 0  # the most requests served at once, to check clients' concurrency limits
        self._faults: list[tuple[str | None, Reply]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- control ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def fail_next(self, count: int, reply: Reply, *, path: str | None = None) -> None:
        """Answer the next ``count`` requests (to ``path`` if given, a regex) with ``reply``."""
        with self._lock:
            self._faults.extend([(path, reply)] * count)

    def calls(self, method: str | None = None, path: str | None = None) -> list[Request]:
        with self._lock:
            return [
                r for r in self.requests if (method is None or r.method == method) and (path is None or r.path == path)
            ]

    def start(self) -> Self:
        fake = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes; with Nagle on, the body waits for the client's
            # delayed ACK (~40 ms per keep-alive request). Real servers set TCP_NODELAY too.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                fake._dispatch(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True, name=type(self).__name__
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @contextmanager
    def running(self) -> Iterator[Self]:
        self.start()
        try:
            yield self
        finally:
            self.stop()

    # --- serving ---------------------------------------------------------------------------

    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        request = Request(
            method=handler.command,
            path=parts.path,
            query=parse_qs(parts.query),
            headers={k.lower(): v for k, v in handler.headers.items()},
            raw=raw,
        )
        if raw and "json" in request.headers.get("content-type", "json"):
            try:
                request.json = json.loads(raw)
            except ValueError:
                request.json = None
        with self._lock:
            self.requests.append(request)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            fault = None
            for index, (pattern, _reply) in enumerate(self._faults):
                if pattern is None or re.fullmatch(pattern, request.path):
                    fault = self._faults.pop(index)[1]
                    break
        try:
            reply = fault or self._route(request)
            delay = reply.delay or self.latency
            if delay:
                time.sleep(delay)
        finally:
            with self._lock:
                self.in_flight -= 1
        body, content_type = reply.encoded()
        handler.send_response(reply.status)
        handler.send_header("Content-Type", reply.headers.get("Content-Type", content_type))
        handler.send_header("Content-Length", str(len(body)))
        for name, value in reply.headers.items():
            if name != "Content-Type":
                handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)

    def _route(self, request: Request) -> Reply:
        path_matched = False
        for method, pattern, name in self.routes:
            match = pattern.fullmatch(request.path)
            if match is None:
                continue
            path_matched = True
            if method == request.method:
                request.params = match.groupdict()
                return getattr(self, name)(request)
        if path_matched:
            return self.not_found(request, status=405, message=f"{request.method} is not allowed on {request.path}")
        return self.not_found(request)

    def not_found(self, request: Request, *, status: int = 404, message: str = "") -> Reply:
        return Reply(status, {"error": message or f"no route for {request.method} {request.path}"})
