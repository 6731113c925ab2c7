"""A local Databricks workspace speaking the published REST API, for the real ``databricks-sdk``.

Point the SDK at it with ``pipelines.databricks.workspace_client(host=fake.url, token=fake.token)``.
It serves what databricks-sdk 0.162.0 actually requests (checked in
``databricks/sdk/config.py``, ``oauth.py`` and ``service/serving.py``):

- ``GET /.well-known/databricks-config``: the host-metadata probe the SDK sends, unauthenticated,
  while constructing a client (``Config._resolve_host_metadata``); we answer with a
  ``workspace_id``, which the SDK then sends back as ``X-Databricks-Workspace-Id``;
- ``GET /api/2.0/serving-endpoints`` and ``GET /api/2.0/serving-endpoints/{name}``;
- ``POST /serving-endpoints/{name}/invocations`` (no ``/api/2.0`` prefix), the path of
  ``serving_endpoints.query``, for chat endpoints (``task = llm/v1/chat``).

Every API route checks the bearer token and the body shape and answers errors in Databricks'
shape (``{"error_code", "message"}``), so a wrong request fails the test instead of passing
silently. To extend it (serving config updates, Files, SQL statements), subclass or add
``@route`` methods here, keeping state in plain dicts on the instance.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any

from tests.fakes.http import FakeHttpServer, Reply, Request, route
from tests.fakes.openai_chat import judge_answer

FAKE_TOKEN = "dapi-fake-token"
CHAT_ROLES = {"system", "user", "assistant"}
# The body keys ServingEndpointsAPI.query can send; anything else is a client bug.
QUERY_KEYS = {
    "client_request_id",
    "dataframe_records",
    "dataframe_split",
    "extra_params",
    "input",
    "inputs",
    "instances",
    "max_tokens",
    "messages",
    "n",
    "prompt",
    "stop",
    "stream",
    "temperature",
    "usage_context",
}


class FakeDatabricks(FakeHttpServer):
    def __init__(self, *, token: str = FAKE_TOKEN, workspace_id: str = "1234567890123456") -> None:
        super().__init__()
        self.token = token
        self.workspace_id = workspace_id
        self.serving_endpoints: dict[str, dict[str, Any]] = {}
        self.no_markers: tuple[str, ...] = ("[[no]]",)
        self.answer: Callable[[list[dict[str, Any]]], str | Reply] | None = None
        self._ids = itertools.count(1)

    # --- state helpers ---------------------------------------------------------------------

    def add_chat_endpoint(
        self, name: str, *, model: str = "databricks-meta-llama-3-3-70b-instruct", ready: bool = True
    ) -> dict[str, Any]:
        endpoint = {
            "name": name,
            "id": f"ep-{next(self._ids):08x}",
            "creator": "someone@example.com",
            "creation_timestamp": int(time.time() * 1000),
            "last_updated_timestamp": int(time.time() * 1000),
            "task": "llm/v1/chat",
            "state": {"ready": "READY" if ready else "NOT_READY", "config_update": "NOT_UPDATING"},
            "config": {
                "served_entities": [{"name": model, "entity_name": f"system.ai.{model}", "entity_version": "1"}],
                "traffic_config": {"routes": [{"served_model_name": model, "traffic_percentage": 100}]},
                "config_version": 1,
            },
        }
        self.serving_endpoints[name] = endpoint
        return endpoint

    def invocations(self) -> list[Request]:
        return [r for r in self.requests if r.method == "POST" and r.path.endswith("/invocations")]

    # --- routes ----------------------------------------------------------------------------

    @route("GET", r"/\.well-known/databricks-config")
    def host_metadata(self, request: Request) -> Reply:
        return Reply(200, {"oidc_endpoint": f"{self.url}/oidc", "workspace_id": self.workspace_id})

    @route("GET", r"/api/2\.0/serving-endpoints")
    def serving_endpoints_list(self, request: Request) -> Reply:
        denied = self.check_auth(request)
        if denied:
            return denied
        return Reply(200, {"endpoints": list(self.serving_endpoints.values())})

    @route("GET", r"/api/2\.0/serving-endpoints/(?P<name>[^/]+)")
    def serving_endpoint_get(self, request: Request) -> Reply:
        denied = self.check_auth(request)
        if denied:
            return denied
        endpoint = self.serving_endpoints.get(request.params["name"])
        if endpoint is None:
            return error(
                404, "RESOURCE_DOES_NOT_EXIST", f"Endpoint with name '{request.params['name']}' does not exist."
            )
        return Reply(200, endpoint)

    @route("POST", r"/serving-endpoints/(?P<name>[^/]+)/invocations")
    def serving_endpoint_query(self, request: Request) -> Reply:
        denied = self.check_auth(request)
        if denied:
            return denied
        endpoint = self.serving_endpoints.get(request.params["name"])
        if endpoint is None:
            return error(
                404, "RESOURCE_DOES_NOT_EXIST", f"Endpoint with name '{request.params['name']}' does not exist."
            )
        if endpoint["state"]["ready"] != "READY":
            return error(503, "TEMPORARILY_UNAVAILABLE", f"Endpoint '{endpoint['name']}' is not ready.")
        body = request.json
        if not isinstance(body, dict):
            return error(400, "BAD_REQUEST", "The request body is not a JSON object.")
        unknown = set(body) - QUERY_KEYS
        if unknown:
            return error(400, "INVALID_PARAMETER_VALUE", f"Unknown fields: {', '.join(sorted(unknown))}")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return error(400, "BAD_REQUEST", "A chat endpoint expects a non-empty 'messages' array.")
        for message in messages:
            if not isinstance(message, dict) or message.get("role") not in CHAT_ROLES:
                return error(400, "INVALID_PARAMETER_VALUE", f"Invalid chat message: {message!r}")
            if not isinstance(message.get("content"), str):
                return error(400, "INVALID_PARAMETER_VALUE", "Chat message content must be a string.")
        for key in ("temperature", "max_tokens"):
            if key in body and not isinstance(body[key], int | float):
                return error(400, "INVALID_PARAMETER_VALUE", f"'{key}' must be a number.")
        model = endpoint["config"]["served_entities"][0]["name"]
        content = (self.answer or judge_answer(self.no_markers))(messages)
        if isinstance(content, Reply):  # the answer function chose to fail this request
            return content
        return Reply(
            200,
            {
                "id": f"chatcmpl_{next(self._ids)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
            },
            headers={"served-model-name": model},
        )

    # --- checks ----------------------------------------------------------------------------

    def check_auth(self, request: Request) -> Reply | None:
        if request.bearer != self.token:
            return error(401, "UNAUTHENTICATED", "Invalid access token.")
        workspace = request.headers.get("x-databricks-workspace-id")
        if workspace is not None and workspace != self.workspace_id:
            return error(400, "BAD_REQUEST", f"Workspace id {workspace} does not match this workspace.")
        return None

    def not_found(self, request: Request, *, status: int = 404, message: str = "") -> Reply:
        code = "ENDPOINT_NOT_FOUND" if status == 404 else "BAD_REQUEST"
        return error(status, code, message or f"No API found for '{request.method} {request.path}'")


def error(status: int, code: str, message: str) -> Reply:
    return Reply(status, {"error_code": code, "message": message})
