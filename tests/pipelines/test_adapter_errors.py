"""One failure rule for every adapter, proved over real HTTP: a local server answers each status and
each adapter (LLM endpoint, Databricks serving, MLflow registry, local serving, webhooks) reports it
as transient (408, 425, 429, 5xx, no answer) or permanent (other 4xx)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pipelines.adapters import databricks, mlflow_registry
from pipelines.adapters.errors import (
    PermanentPipelineError,
    PipelineError,
    TransientPipelineError,
    http_status_error,
    status_is_transient,
)
from pipelines.adapters.llm_client import EndpointConfig, chat_complete
from pipelines.adapters.mlflow_common import MlflowConfig
from pipelines.adapters.serving_proxy import local_invocations
from pipelines.adapters.webhooks_http import webhook_post
from pipelines.wiring import outbound_rules

TRANSIENT = [408, 425, 429, 500, 502, 503, 504]
PERMANENT = [400, 401, 403, 404, 409]


class StatusServer:
    """Answers every request with ``status`` (a plain-text body, as a proxy or a crashed model server
    would); the Databricks SDK's host probe gets a 404, as from a host without metadata."""

    def __init__(self) -> None:
        self.status = 200
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                server.requests.append(f"{self.command} {self.path}")
                status = 404 if self.path.startswith("/.well-known/") else server.status
                body = b"upstream says no"
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> StatusServer:
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def upstream() -> Iterator[StatusServer]:
    with StatusServer() as server:
        yield server


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again before the call: nothing listens there


def outcome(call: Callable[[], object]) -> str:
    try:
        call()
    except TransientPipelineError:
        return "transient"
    except PermanentPipelineError:
        return "permanent"
    return "ok"


def expected(statuses: list[int]) -> dict[int, str]:
    return {s: "transient" if s in TRANSIENT else "permanent" for s in statuses}


def test_the_rule_itself() -> None:
    assert [s for s in range(400, 600) if status_is_transient(s)] == [408, 425, 429, *range(500, 600)]
    assert isinstance(http_status_error("x", 503, "m"), TransientPipelineError)
    assert isinstance(http_status_error("x", 422, "m"), PermanentPipelineError)


def test_an_llm_endpoint(upstream: StatusServer) -> None:
    endpoint = EndpointConfig(
        name="judge", kind="openai_compatible", url=f"{upstream.url}/v1", model="m", timeout_seconds=2, max_retries=0
    )
    seen = {}
    for status in TRANSIENT + PERMANENT:
        upstream.status = status
        seen[status] = outcome(
            lambda: chat_complete(endpoint, [{"role": "user", "content": "hi"}], rules=outbound_rules())
        )
    assert seen == expected(TRANSIENT + PERMANENT)
    dead = EndpointConfig(
        name="judge", kind="openai_compatible", url=f"http://127.0.0.1:{closed_port()}/v1", model="m", max_retries=0
    )
    assert (
        outcome(lambda: chat_complete(dead, [{"role": "user", "content": "hi"}], rules=outbound_rules())) == "transient"
    )


def test_a_databricks_serving_endpoint(upstream: StatusServer) -> None:
    # The SDK names the statuses the Databricks API documents; a gateway's 408/425/502 reach us as its
    # bare error and are transient too. 429 and 503 the SDK retries itself until its 1 s budget ends.
    config = databricks.DatabricksConfig(
        host=upstream.url, token="dapi-x", timeout_seconds=1, outbound=outbound_rules()
    )
    seen = {}
    for status in TRANSIENT + PERMANENT:
        upstream.status = status
        seen[status] = outcome(
            lambda: databricks.serving_endpoint_query_records(config, name="support", records=[{"request": "hi"}])
        )
    assert seen == expected(TRANSIENT + PERMANENT)
    dead = databricks.DatabricksConfig(
        host=f"http://127.0.0.1:{closed_port()}", token="dapi-x", timeout_seconds=1, outbound=outbound_rules()
    )
    assert outcome(lambda: databricks.serving_endpoint_get(dead, name="support")) == "transient"


def test_an_mlflow_server(upstream: StatusServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # MLflow reads its retry budget from the environment (set once at process start); none here.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    config = MlflowConfig(tracking_uri=upstream.url)
    seen = {}
    for status in TRANSIENT + PERMANENT:
        upstream.status = status
        seen[status] = outcome(lambda: mlflow_registry.registered_model_versions(config, model_name="support"))
    assert seen == expected(TRANSIENT + PERMANENT)
    assert upstream.requests[0] == "GET /api/2.0/mlflow/registered-models/get?name=support"
    dead = MlflowConfig(tracking_uri=f"http://127.0.0.1:{closed_port()}")
    assert outcome(lambda: mlflow_registry.registered_model_versions(dead, model_name="support")) == "transient"


def test_a_local_model_server(upstream: StatusServer) -> None:
    seen = {}
    for status in TRANSIENT + PERMANENT:
        upstream.status = status
        seen[status] = outcome(lambda: local_invocations(port=upstream.port, records=[{"request": "hi"}], timeout=2))
    assert seen == expected(TRANSIENT + PERMANENT)
    assert seen[500] == "transient"  # a model server that crashed on a request may answer the next one
    assert outcome(lambda: local_invocations(port=closed_port(), records=[], timeout=2)) == "transient"


def test_a_webhook_receiver(upstream: StatusServer) -> None:
    def post() -> int:
        return webhook_post(
            url=f"{upstream.url}/hook", body=b"{}", headers={}, rules=outbound_rules(), what="webhook #1"
        )

    seen = {}
    for status in TRANSIENT + PERMANENT + [302]:
        upstream.status = status
        seen[status] = outcome(post)
    assert seen == {**expected(TRANSIENT + PERMANENT), 302: "permanent"}  # a redirect is never followed
    upstream.status = 204
    assert post() == 204
    with pytest.raises(PipelineError) as caught:
        webhook_post(
            url=f"http://127.0.0.1:{closed_port()}/hook", body=b"{}", headers={}, rules=outbound_rules(), what="w"
        )
    assert isinstance(caught.value, TransientPipelineError) and "127.0.0.1" not in caught.value.message
