"""A TCP proxy that holds every chunk a client sends for a while before passing it on.

Put in front of a real server (an MLflow tracking server, PostgreSQL) and given to one worker only
(its MLFLOW_TRACKING_URI or DATABASE_URL), it makes that worker's job slow at every request, so a
test can kill the worker while the job is reliably half-way, without any test branch in the
product. It also keeps what the client sent, so a test can wait until a given request went through.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class DelayProxy:
    def __init__(self, upstream: tuple[str, int], *, delay: float) -> None:
        self.upstream = upstream
        self.delay = delay
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sent = bytearray()  # what clients sent, once passed on to the server
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def sent(self) -> bytes:
        with self._lock:
            return bytes(self._sent)

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=10)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            self._sockets += [client, server]
            threading.Thread(target=self._pipe, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, False), daemon=True).start()

    def _pipe(self, source: socket.socket, target: socket.socket, upstream: bool) -> None:
        try:
            while chunk := source.recv(65536):
                if upstream:
                    time.sleep(self.delay)
                target.sendall(chunk)
                if upstream:
                    with self._lock:
                        self._sent += chunk
        except OSError:
            pass
        finally:
            for sock in (source, target):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._closed.set()
        self._listener.close()
        for sock in self._sockets:
            sock.close()


@contextmanager
def delay_proxy(host: str, port: int, *, delay: float) -> Iterator[DelayProxy]:
    proxy = DelayProxy((host, port), delay=delay)
    try:
        yield proxy
    finally:
        proxy.close()
