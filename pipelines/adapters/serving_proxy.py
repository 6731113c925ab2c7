"""A small weighted HTTP proxy in front of local MLflow model servers: an environment's local endpoint.

Run as its own process (``python -m pipelines.adapters.serving_proxy --port P --routes FILE``; standard
library only, no Django), so it outlives the worker that started it. It re-reads the routes file
whenever the file changes: ``{"generation": n, "routes": [{"name", "version", "port", "weight"}]}``
(weights in percent), and spreads requests over the backends by smooth weighted round robin, so a
10% canary gets exactly 1 request in 10. Each answer says which version served it
(``X-Reviewdesk-Served-Version``). ``GET /__reviewdesk/routes`` returns the routes it serves now
and its owner. Started with ``--owner``, it only takes a routes file written for that owner.

A request with ``X-Reviewdesk-Version: <version>`` goes to that version's backend whatever the
weights (a rollout's health checks address the canary directly this way); a version that is not
routed here gets 404 ``VERSION_NOT_ROUTED``, never another version's answer.

:func:`local_invocations` is the client side, used by the worker: one bounded request to the proxy,
its failures mapped by the one rule of ``errors.http_status_error`` (a model server's 500 is transient).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SYSTEM = "serving"
ROUTES_PATH = "/__reviewdesk/routes"
PIN_HEADER = "X-Reviewdesk-Version"


class Routes:
    def __init__(self, path: str, owner: str = "") -> None:
        self.path = path
        # The environment that owns this port: a routes file written for another owner is not taken
        # (the proxy keeps what it serves), so one project cannot take over another's endpoint.
        self.owner = owner
        self.key: tuple[int, int] | None = None
        self.data: dict[str, Any] = {"generation": 0, "routes": []}
        self.current: list[int] = []
        self.lock = threading.Lock()

    def refresh(self) -> dict[str, Any]:
        try:
            st = os.stat(self.path)
            key = (st.st_ino, st.st_mtime_ns)
        except FileNotFoundError:
            key = (0, 0)
        with self.lock:
            if key != self.key:
                try:
                    with open(self.path) as f:
                        data = json.load(f)
                except (FileNotFoundError, ValueError):
                    data = {"generation": 0, "routes": []}
                self.key = key
                if not self.owner or data.get("owner") == self.owner:
                    self.data = {**data, "owner": self.owner}
                    self.current = [0] * len(self.data["routes"])
            return self.data

    def pick(self) -> dict[str, Any] | None:
        data = self.refresh()
        with self.lock:
            routes = data["routes"]
            total = sum(max(0, int(r["weight"])) for r in routes)
            if total <= 0:
                return None
            best = -1
            for i, route in enumerate(routes):
                self.current[i] += max(0, int(route["weight"]))
                if best < 0 or self.current[i] > self.current[best]:
                    best = i
            self.current[best] -= total
            return dict(routes[best])

    def pinned(self, version: str) -> dict[str, Any] | None:
        """The route of ``version`` (even at weight 0), without moving the weighted round robin."""
        for route in self.refresh()["routes"]:
            if str(route["version"]) == version:
                return dict(route)
        return None


def make_handler(routes: Routes) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, payload: Any) -> None:
            self._send(status, json.dumps(payload).encode(), {"Content-Type": "application/json"})

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if self.path == ROUTES_PATH:
                self._json(200, routes.refresh())
                return
            pin = (self.headers.get(PIN_HEADER) or "").strip()
            route = routes.pinned(pin) if pin else routes.pick()
            if route is None and pin:
                self._json(404, {"error_code": "VERSION_NOT_ROUTED", "message": f"Version {pin} is not served here."})
                return
            if route is None:
                self._json(503, {"error_code": "NOT_READY", "message": "No model version is routed here yet."})
                return
            conn = http.client.HTTPConnection("127.0.0.1", int(route["port"]), timeout=120)
            try:
                headers = {"Content-Type": self.headers.get("Content-Type", "application/json")}
                conn.request(self.command, self.path, body=body or None, headers=headers)
                upstream = conn.getresponse()
                payload = upstream.read()
                content_type = upstream.getheader("Content-Type", "application/json")
                status = upstream.status
            except OSError as exc:
                self._json(502, {"error_code": "BAD_GATEWAY", "message": f"version {route['version']}: {exc}"})
                return
            finally:
                conn.close()
            self._send(
                status,
                payload,
                {
                    "Content-Type": content_type,
                    "X-Reviewdesk-Served-Model": str(route["name"]),
                    "X-Reviewdesk-Served-Version": str(route["version"]),
                },
            )

        do_GET = do_POST = _forward

    return Handler


def local_invocations(
    *, port: int, records: list[dict[str, Any]], timeout: float = 60.0, version: str | None = None
) -> tuple[list[Any], str]:
    """``POST /invocations`` with ``dataframe_records`` on the local endpoint at ``port``;
    ``(predictions, the version that served them)``. With ``version`` the proxy sends the request to
    that version's server only (``X-Reviewdesk-Version``)."""
    import requests

    from pipelines.adapters.errors import PermanentPipelineError, connection_error, http_status_error

    headers = {PIN_HEADER: str(version)} if version else {}
    try:
        response = requests.post(
            f"http://127.0.0.1:{port}/invocations",
            json={"dataframe_records": records},
            timeout=(min(5.0, timeout), timeout),
            headers=headers,
        )
    except requests.RequestException as exc:
        raise connection_error(SYSTEM, f"local endpoint on port {port}: {type(exc).__name__}: {exc}") from None
    if response.status_code != 200:
        raise http_status_error(
            SYSTEM,
            response.status_code,
            f"local endpoint on port {port}: HTTP {response.status_code}: {response.text[:300]}",
        )
    try:
        predictions = response.json()["predictions"]
    except (ValueError, KeyError, TypeError):
        raise PermanentPipelineError(
            f"local endpoint on port {port} answered without predictions", system=SYSTEM
        ) from None
    return list(predictions), response.headers.get("X-Reviewdesk-Served-Version", "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--routes", required=True)
    parser.add_argument("--owner", default="", help="the environment that owns the port")
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), make_handler(Routes(args.routes, args.owner)))
    server.daemon_threads = True
    server.serve_forever(poll_interval=0.2)


if __name__ == "__main__":
    main()
