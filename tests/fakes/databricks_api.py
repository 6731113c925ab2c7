"""A local Databricks workspace speaking the published REST API, for the real ``databricks-sdk``.

Point the SDK at it with ``pipelines.adapters.databricks.workspace_client(host=fake.url, token=fake.token)``.
It serves what databricks-sdk 0.162.0 actually requests (checked in
``databricks/sdk/config.py``, ``oauth.py`` and ``service/serving.py``):

- ``GET /.well-known/databricks-config``: the host-metadata probe the SDK sends, unauthenticated,
  while constructing a client (``Config._resolve_host_metadata``); we answer with a
  ``workspace_id``, which the SDK then sends back as ``X-Databricks-Workspace-Id``;
- ``GET /api/2.0/serving-endpoints`` and ``GET /api/2.0/serving-endpoints/{name}``;
- ``POST /serving-endpoints/{name}/invocations`` (no ``/api/2.0`` prefix), the path of
  ``serving_endpoints.query``, for chat endpoints (``task = llm/v1/chat``), and
  ``POST /serving-endpoints/{name}/served-models/{served_model}/invocations``, Databricks' path to query
  one served model behind a multi-model endpoint (404 for a name the endpoint's config does not serve);
  both answer with the ``served-model-name`` header. Per served model faults: ``entity_fail_rate``
  (``{name: fraction}``, that share of its requests answer 500, spread evenly) and ``entity_latency``
  (``{name: seconds}`` before it answers).
- serving-endpoint configuration for promotion rollouts: ``POST /api/2.0/serving-endpoints`` (create),
  ``PUT /api/2.0/serving-endpoints/{name}/config`` (``update_config``: the body is checked against the
  published shape, unknown keys are a 400), the state machine behind them (the new config is
  ``pending_config`` with ``config_update = IN_PROGRESS`` for ``ready_after_polls`` GETs, then it
  becomes ``config``: traffic moves only when the update completes, as on Databricks), model
  endpoints answering ``dataframe_records`` with ``{"predictions": [...]}`` split by the routes, and
  Unity Catalog model aliases (``/api/2.1/unity-catalog/models/{full_name}/aliases/{alias}``).
  Faults: ``stick_next_updates`` (that many updates never complete; with ``update_fails_after``
  seconds they end in UPDATE_FAILED and the old config keeps serving), ``fail_next(...)`` on any
  path, ``invocations_fail`` / ``empty_predictions``. ``ready_after_seconds`` makes readiness take
  time instead of GETs (benchmarks); ``update_seconds`` records how long each update took.
- OAuth M2M for service principals (``add_service_principal``): the OIDC discovery document and the
  client_credentials token endpoint; the tokens it issues are accepted as bearers.
- the MLflow Unity Catalog model registry and tracking runs that mlflow 3.17.2 reads with
  ``registry_uri="databricks-uc"`` / ``tracking_uri="databricks"`` (``add_uc_model_version``; see its
  section for the exact routes); its aliases are the same ``model_aliases`` as the SDK's.

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

from tests.fakes.databricks_uc import UnityCatalogMixin
from tests.fakes.http import FakeHttpServer, Reply, Request, route
from tests.fakes.openai_chat import judge_answer

FAKE_TOKEN = "dapi-fake-token"
CHAT_ROLES = {"system", "user", "assistant"}
# The published shapes of an endpoint config (EndpointCoreConfigInput / ServedEntityInput / Route).
CONFIG_KEYS = {"served_entities", "served_models", "traffic_config", "auto_capture_config", "name"}
ENTITY_KEYS = {
    "burst_scaling_enabled",
    "entity_name",
    "entity_version",
    "environment_vars",
    "external_model",
    "instance_profile_arn",
    "max_provisioned_concurrency",
    "max_provisioned_throughput",
    "min_provisioned_concurrency",
    "min_provisioned_throughput",
    "name",
    "provisioned_model_units",
    "scale_to_zero_enabled",
    "workload_size",
    "workload_type",
}
ROUTE_KEYS = {"served_model_name", "served_entity_name", "traffic_percentage"}
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


class FakeDatabricks(UnityCatalogMixin, FakeHttpServer):
    def __init__(self, *, token: str = FAKE_TOKEN, workspace_id: str = "1234567890123456") -> None:
        super().__init__()
        self.token = token
        self.workspace_id = workspace_id
        self.serving_endpoints: dict[str, dict[str, Any]] = {}
        self.no_markers: tuple[str, ...] = ("[[no]]",)
        self.answer: Callable[[list[dict[str, Any]]], str | Reply] | None = None
        self._ids = itertools.count(1)
        self._uc_init()
        self._serving_init()
        self._oauth_init()
        self._uc_registry_init()

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
        self.advance(endpoint)
        return Reply(200, {k: v for k, v in endpoint.items() if not k.startswith("_") and v is not None})

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
        if endpoint.get("task") != "llm/v1/chat":
            return self.model_invocation(endpoint, body)
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

    @route("POST", r"/serving-endpoints/(?P<name>[^/]+)/served-models/(?P<served>[^/]+)/invocations")
    def served_model_query(self, request: Request) -> Reply:
        """One served model behind the endpoint, whatever the traffic split (model endpoints only)."""
        denied = self.check_auth(request)
        if denied:
            return denied
        endpoint = self.serving_endpoints.get(request.params["name"])
        if endpoint is None:
            return error(
                404, "RESOURCE_DOES_NOT_EXIST", f"Endpoint with name '{request.params['name']}' does not exist."
            )
        served = request.params["served"]
        names = [e["name"] for e in endpoint["config"]["served_entities"]]
        if served not in names:
            return error(
                404,
                "RESOURCE_DOES_NOT_EXIST",
                f"Served model '{served}' does not exist in endpoint '{endpoint['name']}'.",
            )
        if endpoint["state"]["ready"] != "READY":
            return error(503, "TEMPORARILY_UNAVAILABLE", f"Endpoint '{endpoint['name']}' is not ready.")
        body = request.json
        if not isinstance(body, dict):
            return error(400, "BAD_REQUEST", "The request body is not a JSON object.")
        unknown = set(body) - QUERY_KEYS
        if unknown:
            return error(400, "INVALID_PARAMETER_VALUE", f"Unknown fields: {', '.join(sorted(unknown))}")
        return self.model_invocation(endpoint, body, served=served)

    def _entity_fault(self, served: str) -> Reply | None:
        delay = self.entity_latency.get(served)
        if delay:
            time.sleep(delay)
        rate = self.entity_fail_rate.get(served, 0.0)
        if rate > 0:
            with self._lock:
                count = self._entity_calls[served] = self._entity_calls.get(served, 0) + 1
            # evenly spread: request k fails when floor(k * rate) moves
            if int(count * rate) > int((count - 1) * rate):
                return error(500, "INTERNAL_ERROR", f"Served model '{served}' raised an exception.")
        return None

    # --- serving endpoint configuration (promotion rollouts) -------------------------------

    def _serving_init(self) -> None:
        self.ready_after_polls = 2  # GETs an update stays IN_PROGRESS before its config takes over
        self.ready_after_seconds: float | None = None  # when set: seconds instead of GETs (benchmarks)
        self.update_seconds: list[float] = []  # per completed update: PUT/POST -> the GET that saw it ready
        self.stick_next_updates = 0  # this many next config updates never complete (see update_fails_after)
        self.update_fails_after: float | None = None  # a stuck update then ends in UPDATE_FAILED
        self.invocations_fail = False
        self.empty_predictions = False
        self.entity_fail_rate: dict[str, float] = {}  # served model name -> share of its requests answering 500
        self.entity_latency: dict[str, float] = {}  # served model name -> seconds before it answers
        self._entity_calls: dict[str, int] = {}
        self.model_aliases: dict[tuple[str, str], int] = {}
        self.config_history: dict[str, list[dict[str, Any]]] = {}  # every config that took over, in order
        self._wrr: dict[str, list[int]] = {}

    def add_model_endpoint(
        self, name: str, *, entities: list[dict[str, Any]], routes: list[dict[str, Any]]
    ) -> dict[str, Any]:
        now = int(time.time() * 1000)
        endpoint = {
            "name": name,
            "id": f"ep-{next(self._ids):08x}",
            "creator": "someone@example.com",
            "creation_timestamp": now,
            "last_updated_timestamp": now,
            "state": {"ready": "READY", "config_update": "NOT_UPDATING"},
            "config": self._config_out(entities, routes, version=1),
        }
        self.serving_endpoints[name] = endpoint
        self.config_history[name] = [endpoint["config"]]
        return endpoint

    def routes_of(self, name: str) -> dict[str, int]:
        """The traffic split that serves now: {served entity name: percent}."""
        config = self.serving_endpoints[name]["config"]
        return {r["served_model_name"]: r["traffic_percentage"] for r in config["traffic_config"]["routes"]}

    def _config_out(
        self, entities: list[dict[str, Any]], routes: list[dict[str, Any]], *, version: int
    ) -> dict[str, Any]:
        served = [
            {
                **e,
                "state": {"deployment": "DEPLOYMENT_READY", "deployment_state_message": ""},
                "creator": "someone@example.com",
                "creation_timestamp": int(time.time() * 1000),
            }
            for e in entities
        ]
        return {"served_entities": served, "traffic_config": {"routes": routes}, "config_version": version}

    def advance(self, endpoint: dict[str, Any]) -> None:
        """One GET's worth of progress on an update in progress."""
        with self._lock:
            if endpoint["state"]["config_update"] != "IN_PROGRESS":
                return
            if endpoint.get("_stuck"):
                started = endpoint.get("_update_started", time.monotonic())
                if self.update_fails_after is not None and time.monotonic() - started >= self.update_fails_after:
                    endpoint.pop("pending_config", None)
                    endpoint["state"]["config_update"] = "UPDATE_FAILED"
                return
            waited = time.monotonic() - endpoint.get("_update_started", time.monotonic())
            if self.ready_after_seconds is not None:
                if waited < self.ready_after_seconds:
                    return
            else:
                endpoint["_polls_left"] = endpoint.get("_polls_left", 0) - 1
                if endpoint["_polls_left"] > 0:
                    return
            self.update_seconds.append(waited)
            pending = endpoint.pop("pending_config")
            endpoint["config"] = self._config_out(
                pending["served_entities"], pending["traffic_config"]["routes"], version=pending["config_version"]
            )
            endpoint["state"] = {"ready": "READY", "config_update": "NOT_UPDATING"}
            endpoint["last_updated_timestamp"] = int(time.time() * 1000)
            self.config_history.setdefault(endpoint["name"], []).append(endpoint["config"])
            self._wrr.pop(endpoint["name"], None)

    @staticmethod
    def validate_config(body: Any) -> str | None:
        """Why an endpoint config body is not what the API accepts, or None."""
        if not isinstance(body, dict):
            return "The request body is not a JSON object."
        unknown = set(body) - CONFIG_KEYS
        if unknown:
            return f"Unknown fields: {', '.join(sorted(unknown))}"
        entities = body.get("served_entities")
        if not isinstance(entities, list) or not entities:
            return "served_entities must be a non-empty array."
        names = []
        for entity in entities:
            if not isinstance(entity, dict):
                return "Each served entity must be an object."
            unknown = set(entity) - ENTITY_KEYS
            if unknown:
                return f"Unknown served entity fields: {', '.join(sorted(unknown))}"
            for key in ("entity_name", "entity_version", "name"):
                if not isinstance(entity.get(key), str) or not entity[key]:
                    return f"served_entities[].{key} is required and must be a string."
            if entity.get("workload_size") not in (None, "Small", "Medium", "Large"):
                return f"Invalid workload_size {entity.get('workload_size')!r}."
            if "scale_to_zero_enabled" in entity and not isinstance(entity["scale_to_zero_enabled"], bool):
                return "scale_to_zero_enabled must be a boolean."
            names.append(entity["name"])
        if len(set(names)) != len(names):
            return "Served entity names must be unique."
        traffic = body.get("traffic_config")
        if traffic is not None:
            if (
                not isinstance(traffic, dict)
                or set(traffic) - {"routes"}
                or not isinstance(traffic.get("routes"), list)
            ):
                return 'traffic_config must be {"routes": [...]}.'
            total = 0
            for route in traffic["routes"]:
                if not isinstance(route, dict) or set(route) - ROUTE_KEYS:
                    return f"Invalid route {route!r}."
                target = route.get("served_model_name") or route.get("served_entity_name")
                if target not in names:
                    return f"Route names {target!r}, which is not a served entity of this config."
                pct = route.get("traffic_percentage")
                if not isinstance(pct, int) or not 0 <= pct <= 100:
                    return "traffic_percentage must be an integer between 0 and 100."
                total += pct
            if total != 100:
                return f"Traffic percentages must sum to 100, not {total}."
        return None

    @route("POST", r"/api/2\.0/serving-endpoints")
    def serving_endpoint_create(self, request: Request) -> Reply:
        denied = self.check_auth(request)
        if denied:
            return denied
        body = request.json if isinstance(request.json, dict) else {}
        name = body.get("name")
        if not isinstance(name, str) or not name:
            return error(400, "INVALID_PARAMETER_VALUE", "name is required.")
        if name in self.serving_endpoints:
            return error(409, "RESOURCE_ALREADY_EXISTS", f"Endpoint with name '{name}' already exists.")
        problem = self.validate_config(body.get("config"))
        if problem:
            return error(400, "INVALID_PARAMETER_VALUE", problem)
        config = body["config"]
        routes = (config.get("traffic_config") or {}).get("routes") or [
            {"served_model_name": config["served_entities"][0]["name"], "traffic_percentage": 100}
        ]
        endpoint = self.add_model_endpoint(name, entities=config["served_entities"], routes=routes)
        endpoint["state"] = {"ready": "NOT_READY", "config_update": "IN_PROGRESS"}
        endpoint["pending_config"] = {**endpoint.pop("config"), "config_version": 1}
        endpoint["config"] = None
        self.config_history[name] = []
        endpoint["_polls_left"] = self.ready_after_polls
        endpoint["_update_started"] = time.monotonic()
        return Reply(200, {k: v for k, v in endpoint.items() if not k.startswith("_") and v is not None})

    @route("PUT", r"/api/2\.0/serving-endpoints/(?P<name>[^/]+)/config")
    def serving_endpoint_config_put(self, request: Request) -> Reply:
        denied = self.check_auth(request)
        if denied:
            return denied
        endpoint = self.serving_endpoints.get(request.params["name"])
        if endpoint is None:
            return error(
                404, "RESOURCE_DOES_NOT_EXIST", f"Endpoint with name '{request.params['name']}' does not exist."
            )
        problem = self.validate_config(request.json)
        if problem:
            return error(400, "INVALID_PARAMETER_VALUE", problem)
        with self._lock:
            if endpoint["state"]["config_update"] == "IN_PROGRESS":
                return error(
                    409, "RESOURCE_CONFLICT", f"Endpoint '{endpoint['name']}' is currently being updated; retry later."
                )
            body = request.json
            routes = (body.get("traffic_config") or {}).get("routes") or [
                {"served_model_name": body["served_entities"][0]["name"], "traffic_percentage": 100}
            ]
            version = (endpoint["config"] or {}).get("config_version", 0) + 1
            endpoint["pending_config"] = {
                "served_entities": body["served_entities"],
                "traffic_config": {"routes": routes},
                "config_version": version,
            }
            endpoint["state"] = {"ready": endpoint["state"]["ready"], "config_update": "IN_PROGRESS"}
            endpoint["_polls_left"] = self.ready_after_polls
            endpoint["_update_started"] = time.monotonic()
            endpoint["_stuck"] = self.stick_next_updates > 0
            self.stick_next_updates = max(0, self.stick_next_updates - 1)
            out = {k: v for k, v in endpoint.items() if not k.startswith("_")}
        return Reply(200, out)

    def model_invocation(self, endpoint: dict[str, Any], body: dict[str, Any], served: str | None = None) -> Reply:
        records = body.get("dataframe_records")
        if not isinstance(records, list) or not records or not all(isinstance(r, dict) for r in records):
            return error(
                400, "BAD_REQUEST", "This model endpoint expects 'dataframe_records': a non-empty array of objects."
            )
        if self.invocations_fail:
            return error(500, "INTERNAL_ERROR", "The model raised an exception.")
        pinned = served
        predictions = []
        for record in records:
            served = pinned or self._pick(endpoint)
            fault = self._entity_fault(served)
            if fault is not None:
                return fault
            text = "" if self.empty_predictions else f"answer from {served} to {str(record.get('request'))[:60]}"
            predictions.append({"response": text})
        return Reply(200, {"predictions": predictions}, headers={"served-model-name": served or ""})

    def _pick(self, endpoint: dict[str, Any]) -> str:
        routes = endpoint["config"]["traffic_config"]["routes"]
        with self._lock:
            current = self._wrr.setdefault(endpoint["name"], [0] * len(routes))
            total = sum(r["traffic_percentage"] for r in routes)
            best = 0
            for i, r in enumerate(routes):
                current[i] += r["traffic_percentage"]
                if current[i] > current[best]:
                    best = i
            current[best] -= total
            return str(routes[best]["served_model_name"])

    @route("PUT", r"/api/2\.1/unity-catalog/models/(?P<full_name>[^/]+)/aliases/(?P<alias>[^/]+)")
    def uc_alias_set(self, request: Request) -> Reply:
        denied = self.check_auth(request)
        if denied:
            return denied
        body = request.json if isinstance(request.json, dict) else {}
        if set(body) - {"full_name", "alias", "version_num"} or not isinstance(body.get("version_num"), int):
            return error(400, "INVALID_PARAMETER_VALUE", 'The body is {"version_num": <int>}.')
        full_name, alias = request.params["full_name"], request.params["alias"]
        self.model_aliases[(full_name, alias)] = body["version_num"]
        catalog, schema, model = [*full_name.split("."), "", "", ""][:3]
        return Reply(
            200,
            {
                "alias_name": alias,
                "version_num": body["version_num"],
                "catalog_name": catalog,
                "schema_name": schema,
                "model_name": model,
            },
        )

    @route("GET", r"/api/2\.1/unity-catalog/models/(?P<full_name>[^/]+)/aliases/(?P<alias>[^/]+)")
    def uc_alias_get(self, request: Request) -> Reply:
        denied = self.check_auth(request)
        if denied:
            return denied
        key = (request.params["full_name"], request.params["alias"])
        if key not in self.model_aliases:
            return error(404, "RESOURCE_DOES_NOT_EXIST", f"Alias {key[1]} not found on model {key[0]}.")
        return Reply(
            200,
            {
                "model_name": key[0],
                "version": self.model_aliases[key],
                "aliases": [{"alias_name": key[1], "version_num": self.model_aliases[key]}],
            },
        )

    @route("DELETE", r"/api/2\.1/unity-catalog/models/(?P<full_name>[^/]+)/aliases/(?P<alias>[^/]+)")
    def uc_alias_delete(self, request: Request) -> Reply:
        denied = self.check_auth(request)
        if denied:
            return denied
        self.model_aliases.pop((request.params["full_name"], request.params["alias"]), None)
        return Reply(200, {})

    # --- MLflow Unity Catalog model registry and tracking runs (helper "uc-registry") ----------
    # What mlflow 3.17.2 sends with registry_uri="databricks-uc" (UcModelRegistryStore in
    # mlflow/store/_unity_catalog/registry/rest_store.py; paths from the protos' rpc options) and
    # with tracking_uri="databricks" (RestStore.get_run). GETs carry the request message as query
    # parameters, other methods as a JSON body (mlflow/utils/rest_utils.py: call_endpoint):
    #
    # - GET    /api/2.0/mlflow/unity-catalog/registered-models/get     ?name     -> {"registered_model"}
    # - GET    /api/2.0/mlflow/unity-catalog/model-versions/search     ?filter=name = '<full name>'
    #          &max_results&page_token -> {"model_versions", "next_page_token"}; like UC, search
    #          results carry neither tags nor aliases (MLflow's ModelVersionSearch drops them anyway)
    # - GET    /api/2.0/mlflow/unity-catalog/model-versions/get        ?name&version -> {"model_version"}
    # - GET    /api/2.0/mlflow/unity-catalog/registered-models/alias   ?name&alias   -> {"model_version"}
    # - POST   /api/2.0/mlflow/unity-catalog/registered-models/alias   {"name", "alias", "version"} -> {}
    # - DELETE /api/2.0/mlflow/unity-catalog/registered-models/alias   {"name", "alias"} -> {}
    # - GET    /api/2.0/mlflow/runs/get ?run_id&run_uuid -> {"run": {"info", "data": {"params", "tags"}}}
    #
    # Aliases live in ``model_aliases``, the dict the SDK's /api/2.1/unity-catalog/models/.../aliases
    # routes use, so an alias set either way is seen both ways, as on one workspace.

    def _uc_registry_init(self) -> None:
        self.uc_models: dict[str, dict[str, Any]] = {}  # full name -> {"created", "description", "versions"}
        self.mlflow_runs: dict[str, dict[str, Any]] = {}  # run id -> {"experiment_id", "params", "tags", ...}
        self.uc_search_page_size = 100  # the most versions one search page returns (then next_page_token)

    def add_uc_model_version(
        self,
        full_name: str,
        version: int | str,
        *,
        run_id: str | None = None,
        aliases: tuple[str, ...] | list[str] = (),
        tags: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        run_tags: dict[str, str] | None = None,
        description: str = "",
        status: str = "READY",
        created_ms: int | None = None,
    ) -> dict[str, Any]:
        """Register version ``version`` of UC model ``full_name`` (created if new), logged by run ``run_id``
        (created with ``params`` and ``run_tags`` unless it exists), with ``aliases`` pointing at it."""
        now = created_ms or int(time.time() * 1000)
        model = self.uc_models.setdefault(full_name, {"created": now, "description": "", "versions": {}})
        run_id = run_id or f"{next(self._ids):032x}"
        experiment_id = "4242424242424242"
        if run_id not in self.mlflow_runs:
            self.mlflow_runs[run_id] = {
                "experiment_id": experiment_id,
                "params": dict(params or {}),
                "tags": dict(run_tags or {}),
                "start_time": now - 60_000,
                "end_time": now - 1_000,
            }
        entry = {
            "name": full_name,
            "version": str(version),
            "creation_timestamp": now,
            "last_updated_timestamp": now,
            "user_id": "someone@example.com",
            "description": description,
            "source": f"dbfs:/databricks/mlflow-tracking/{experiment_id}/{run_id}/artifacts/model",
            "run_id": run_id,
            "run_experiment_id": experiment_id,
            "status": status,
            "storage_location": f"s3://uc-bucket/models/{full_name}/{version}",
            "tags": dict(tags or {}),
        }
        model["versions"][str(version)] = entry
        for alias in aliases:
            self.model_aliases[(full_name, alias)] = int(version)
        return entry

    def uc_alias_of(self, full_name: str, alias: str) -> str | None:
        version = self.model_aliases.get((full_name, alias))
        return None if version is None else str(version)

    def _uc_aliases(self, full_name: str, version: str | None = None) -> list[dict[str, str]]:
        return [
            {"alias": alias, "version": str(v)}
            for (name, alias), v in sorted(self.model_aliases.items())
            if name == full_name and (version is None or str(v) == version)
        ]

    def _uc_version_out(self, entry: dict[str, Any], *, full: bool) -> dict[str, Any]:
        out = {k: v for k, v in entry.items() if k != "tags"}
        if full:
            out["tags"] = [{"key": k, "value": v} for k, v in entry["tags"].items()]
            out["aliases"] = self._uc_aliases(entry["name"], entry["version"])
        return out

    @staticmethod
    def _arg(request: Request, key: str) -> str | None:
        """A request-message field: a query parameter of a GET, a JSON body field otherwise."""
        if request.method == "GET":
            values = request.query.get(key)
            return values[0] if values else None
        body = request.json if isinstance(request.json, dict) else {}
        value = body.get(key)
        return None if value is None else str(value)

    def _uc_model(self, request: Request) -> tuple[str, dict[str, Any] | None, Reply | None]:
        """The named registered model, or the error Databricks answers (bad auth, bad name, no such model)."""
        denied = self.check_auth(request)
        if denied:
            return "", None, denied
        name = self._arg(request, "name") or ""
        if len(name.split(".")) != 3 or not all(name.split(".")):
            problem = f"Invalid registered model name '{name}': expected <catalog>.<schema>.<model>."
            return name, None, error(400, "INVALID_PARAMETER_VALUE", problem)
        model = self.uc_models.get(name)
        if model is None:
            return name, None, error(404, "RESOURCE_DOES_NOT_EXIST", f"Registered model '{name}' does not exist.")
        return name, model, None

    @route("GET", r"/api/2\.0/mlflow/unity-catalog/registered-models/get")
    def uc_registered_model_get(self, request: Request) -> Reply:
        name, model, failed = self._uc_model(request)
        if failed or model is None:
            return failed or error(500, "INTERNAL_ERROR", "unreachable")
        updated = max([model["created"], *(v["last_updated_timestamp"] for v in model["versions"].values())])
        body = {
            "name": name,
            "creation_timestamp": model["created"],
            "last_updated_timestamp": updated,
            "user_id": "someone@example.com",
            "description": model["description"],
            "aliases": self._uc_aliases(name),
        }
        return Reply(200, {"registered_model": body})

    @route("GET", r"/api/2\.0/mlflow/unity-catalog/model-versions/search")
    def uc_model_versions_search(self, request: Request) -> Reply:
        import base64
        import re

        denied = self.check_auth(request)
        if denied:
            return denied
        match = re.fullmatch(r"\s*name\s*=\s*'((?:[^'\\]|\\.)*)'\s*", self._arg(request, "filter") or "")
        if match is None:
            return error(400, "INVALID_PARAMETER_VALUE", "Only the filter name = '<full name>' is supported.")
        name = re.sub(r"\\(.)", r"\1", match.group(1))
        try:
            max_results = int(self._arg(request, "max_results") or 10000)
            token = self._arg(request, "page_token")
            offset = int(base64.b64decode(token).decode()) if token else 0
        except ValueError:
            return error(400, "INVALID_PARAMETER_VALUE", "Invalid max_results or page_token.")
        if max_results < 1:
            return error(400, "INVALID_PARAMETER_VALUE", "max_results must be positive.")
        model = self.uc_models.get(name, {"versions": {}})
        ordered = sorted(model["versions"].values(), key=lambda v: -int(v["version"]))  # newest first, as UC
        size = min(max_results, self.uc_search_page_size)
        page = ordered[offset : offset + size]
        body: dict[str, Any] = {"model_versions": [self._uc_version_out(v, full=False) for v in page]}
        if offset + size < len(ordered):
            body["next_page_token"] = base64.b64encode(str(offset + size).encode()).decode()
        return Reply(200, body)

    @route("GET", r"/api/2\.0/mlflow/unity-catalog/model-versions/get")
    def uc_model_version_get(self, request: Request) -> Reply:
        name, model, failed = self._uc_model(request)
        if failed or model is None:
            return failed or error(500, "INTERNAL_ERROR", "unreachable")
        version = self._arg(request, "version") or ""
        entry = model["versions"].get(version)
        if entry is None:
            return error(404, "RESOURCE_DOES_NOT_EXIST", f"Model version {name}/{version} does not exist.")
        return Reply(200, {"model_version": self._uc_version_out(entry, full=True)})

    @route("GET", r"/api/2\.0/mlflow/unity-catalog/registered-models/alias")
    def uc_model_version_by_alias(self, request: Request) -> Reply:
        name, model, failed = self._uc_model(request)
        if failed or model is None:
            return failed or error(500, "INTERNAL_ERROR", "unreachable")
        alias = self._arg(request, "alias") or ""
        version = self.uc_alias_of(name, alias)
        entry = model["versions"].get(version or "")
        if entry is None:
            return error(404, "RESOURCE_DOES_NOT_EXIST", f"Alias '{alias}' does not exist on model '{name}'.")
        return Reply(200, {"model_version": self._uc_version_out(entry, full=True)})

    @route("POST", r"/api/2\.0/mlflow/unity-catalog/registered-models/alias")
    def uc_registered_model_alias_set(self, request: Request) -> Reply:
        name, model, failed = self._uc_model(request)
        if failed or model is None:
            return failed or error(500, "INTERNAL_ERROR", "unreachable")
        body = request.json if isinstance(request.json, dict) else {}
        if set(body) - {"name", "alias", "version"} or not body.get("alias"):
            return error(400, "INVALID_PARAMETER_VALUE", 'The body is {"name", "alias", "version"}.')
        version = str(body.get("version") or "")
        if version not in model["versions"]:
            return error(404, "RESOURCE_DOES_NOT_EXIST", f"Model version {name}/{version} does not exist.")
        self.model_aliases[(name, str(body["alias"]))] = int(version)
        return Reply(200, {})

    @route("DELETE", r"/api/2\.0/mlflow/unity-catalog/registered-models/alias")
    def uc_registered_model_alias_delete(self, request: Request) -> Reply:
        name, model, failed = self._uc_model(request)
        if failed or model is None:
            return failed or error(500, "INTERNAL_ERROR", "unreachable")
        alias = self._arg(request, "alias") or ""
        if (name, alias) not in self.model_aliases:
            return error(404, "RESOURCE_DOES_NOT_EXIST", f"Alias '{alias}' does not exist on model '{name}'.")
        del self.model_aliases[(name, alias)]
        return Reply(200, {})

    @route("GET", r"/api/2\.0/mlflow/runs/get")
    def mlflow_run_get(self, request: Request) -> Reply:
        denied = self.check_auth(request)
        if denied:
            return denied
        run_id = self._arg(request, "run_id") or self._arg(request, "run_uuid") or ""
        run = self.mlflow_runs.get(run_id)
        if run is None:
            return error(404, "RESOURCE_DOES_NOT_EXIST", f"Run '{run_id}' not found.")
        info = {
            "run_id": run_id,
            "run_uuid": run_id,
            "run_name": f"run-{run_id[:6]}",
            "experiment_id": run["experiment_id"],
            "user_id": "someone@example.com",
            "status": "FINISHED",
            "start_time": run["start_time"],
            "end_time": run["end_time"],
            "artifact_uri": f"dbfs:/databricks/mlflow-tracking/{run['experiment_id']}/{run_id}/artifacts",
            "lifecycle_stage": "active",
        }
        data = {
            "params": [{"key": k, "value": v} for k, v in run["params"].items()],
            "tags": [{"key": k, "value": v} for k, v in run["tags"].items()],
        }
        return Reply(200, {"run": {"info": info, "data": data, "inputs": {}}})

    # --- OAuth M2M (service principals) -----------------------------------------------------
    # What databricks-sdk 0.162.0 sends for auth_type="oauth-m2m": the OIDC discovery document at the
    # host metadata's ``oidc_endpoint`` + ``/.well-known/oauth-authorization-server`` (while the Config
    # is built), then ``POST`` to its ``token_endpoint``: a form body ``grant_type=client_credentials``,
    # ``scope=all-apis``, the client id and secret in a Basic ``Authorization`` header (``use_header``).

    def _oauth_init(self) -> None:
        self.oauth_clients: dict[str, str] = {}  # client id -> secret of the service principals we know
        self.issued_tokens: dict[str, str] = {}  # access token -> client id
        self.oauth_token_ttl = 3600

    def add_service_principal(self, client_id: str, secret: str) -> None:
        self.oauth_clients[client_id] = secret

    @route("GET", r"/oidc/\.well-known/oauth-authorization-server")
    def oidc_discovery(self, request: Request) -> Reply:
        return Reply(
            200,
            {
                "issuer": f"{self.url}/oidc",
                "authorization_endpoint": f"{self.url}/oidc/v1/authorize",
                "token_endpoint": f"{self.url}/oidc/v1/token",
                "grant_types_supported": ["client_credentials", "authorization_code", "refresh_token"],
                "scopes_supported": ["all-apis", "offline_access"],
            },
        )

    @route("POST", r"/oidc/v1/token")
    def oidc_token(self, request: Request) -> Reply:
        import base64
        from urllib.parse import parse_qs

        form = {k: v[0] for k, v in parse_qs(request.raw.decode(errors="replace")).items()}
        auth = request.headers.get("authorization", "")
        client_id = secret = None
        if auth.lower().startswith("basic "):
            try:
                client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            except ValueError:
                pass
        if form.get("grant_type") != "client_credentials":
            return Reply(400, {"error": "unsupported_grant_type", "error_description": "Only client_credentials."})
        if client_id is None or self.oauth_clients.get(client_id) != secret:
            return Reply(401, {"error": "invalid_client", "error_description": "Client authentication failed"})
        if form.get("scope") != "all-apis":
            return Reply(400, {"error": "invalid_scope", "error_description": f"Unknown scope {form.get('scope')!r}"})
        token = f"dbx-oauth-{next(self._ids):06d}-{client_id}"
        self.issued_tokens[token] = client_id
        body = {"access_token": token, "token_type": "Bearer", "expires_in": self.oauth_token_ttl, "scope": "all-apis"}
        return Reply(200, body)

    # --- checks ----------------------------------------------------------------------------

    def check_auth(self, request: Request) -> Reply | None:
        if request.bearer != self.token and request.bearer not in self.issued_tokens:
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
