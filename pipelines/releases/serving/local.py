"""Local serving: detached ``mlflow models serve`` processes, the weighted proxy per port, their state files.

The operating-system plumbing (detached starts, pids, ports, local probes, state files) is the adapter
``pipelines.adapters.local_processes``; requests to the endpoint go through
``pipelines.adapters.serving_proxy.local_invocations``.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

from django.conf import settings

from pipelines.adapters.errors import PermanentPipelineError
from pipelines.adapters.local_processes import detached_start
from pipelines.adapters.local_processes import http_get as _http_get
from pipelines.adapters.local_processes import json_read as _read_json
from pipelines.adapters.local_processes import json_write as _write_json
from pipelines.adapters.local_processes import log_tail as _log_tail
from pipelines.adapters.local_processes import port_free as _free_port
from pipelines.adapters.local_processes import port_in_use as _port_in_use
from pipelines.adapters.local_processes import process_alive as _alive
from pipelines.adapters.local_processes import process_group_stop as _stop_group
from pipelines.adapters.local_processes import process_reap as _reap
from pipelines.adapters.outbound import environ_without_secrets
from pipelines.models import Environment
from pipelines.releases.serving.split import SYSTEM, EndpointNotReady, Heartbeat, Split, entity_name


def _dir(*parts: str) -> Path:
    path = Path(settings.LOCAL_SERVING_DIR, *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _server_key(model_uri: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", model_uri.removeprefix("models:/"))


def local_model_server_ensure(*, model_uri: str, deadline: float, heartbeat: Heartbeat) -> dict[str, Any]:
    """A running ``mlflow models serve`` of ``model_uri`` (reused when one answers): ``{"port", "pid"}``."""
    state_path = _dir("servers") / f"{_server_key(model_uri)}.json"
    state = _read_json(state_path)
    if state and _alive(state.get("pid")):
        if _wait_ping(state, deadline=deadline, heartbeat=heartbeat, log=Path(state["log"])):
            return state
    if state and state.get("pid"):
        _stop_group(state["pid"])
    port = _free_port()
    log = _dir("logs") / f"{_server_key(model_uri)}.log"
    bin_dir = str(Path(sys.executable).parent)
    # Model code is not trusted with the application's secrets (database, secret key, tokens).
    env = {
        **environ_without_secrets(secret_env_prefix=settings.SECRET_ENV_PREFIX),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",  # the server runs `uvicorn` from PATH
        "MLFLOW_TRACKING_URI": str(settings.MLFLOW_TRACKING_URI),
        "MLFLOW_REGISTRY_URI": str(getattr(settings, "MLFLOW_REGISTRY_URI", "") or settings.MLFLOW_TRACKING_URI),
    }
    argv = [
        str(Path(bin_dir) / "mlflow"),
        "models",
        "serve",
        "-m",
        model_uri,
        "--env-manager",
        "local",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "--workers",
        "1",
    ]
    pid = detached_start(argv, log=log, env=env)
    state = {"model_uri": model_uri, "port": port, "pid": pid, "log": str(log), "started_at": time.time()}
    _write_json(state_path, state)
    if not _wait_ping(state, deadline=deadline, heartbeat=heartbeat, log=log):
        alive = _alive(pid)
        _stop_group(pid)
        state_path.unlink(missing_ok=True)
        what = "did not answer /ping in time" if alive else "exited"
        raise EndpointNotReady(f"the local model server for {model_uri} {what}: {_log_tail(log)}", system=SYSTEM)
    return state


def _wait_ping(state: dict[str, Any], *, deadline: float, heartbeat: Heartbeat, log: Path) -> bool:
    while True:
        answer = _http_get(int(state["port"]), "/ping")
        if answer is not None and answer[0] == 200:
            return True
        if not _alive(state.get("pid")):
            _reap(int(state["pid"]))
            return False
        if time.monotonic() >= deadline:
            return False
        heartbeat()
        time.sleep(0.25)


def local_model_server_stop(*, model_uri: str) -> None:
    state_path = _dir("servers") / f"{_server_key(model_uri)}.json"
    state = _read_json(state_path)
    if state and state.get("pid"):
        _stop_group(int(state["pid"]))
    state_path.unlink(missing_ok=True)


def port_owner(environment: Environment) -> str:
    """The owner key a port's proxy and routes file carry: one environment (see serving_proxy --owner)."""
    return f"environment:{environment.pk}"


def _port_check(*, environment: Environment, port: int) -> None:
    """Refuse to serve ``environment`` on ``port`` unless it owns the port (the database says who does)."""
    owner = Environment.objects.filter(local_port=port).exclude(pk=environment.pk).first()
    if owner is not None or environment.local_port != port:
        raise PermanentPipelineError(
            f"port {port} belongs to another environment; this environment does not own it", system=SYSTEM
        )


def _foreign_proxy(*, environment: Environment, port: int, answer: tuple[int, bytes] | None) -> bool:
    """True when the proxy on ``port`` serves another environment that still owns the port."""
    if answer is None or answer[0] != 200:
        return False
    try:
        running = str(json.loads(answer[1]).get("owner") or "")
    except ValueError:
        return False
    if not running or running == port_owner(environment):
        return False
    other = running.removeprefix("environment:")
    return other.isdigit() and Environment.objects.filter(pk=int(other), local_port=port).exists()


def local_proxy_ensure(*, port: int, deadline: float, environment: Environment) -> dict[str, Any]:
    """The environment's endpoint on ``port``: the weighted proxy, started (detached) when not running.

    Only the environment that owns ``port`` gets it: a proxy that serves another environment which
    still owns the port is never stopped or re-routed (PermanentPipelineError).
    """
    _port_check(environment=environment, port=port)
    owner = port_owner(environment)
    state_path = _dir("proxies") / f"{port}.json"
    routes_path = _dir("proxies") / f"{port}.routes.json"
    answer = _http_get(port, "/__reviewdesk/routes")
    if _foreign_proxy(environment=environment, port=port, answer=answer):
        raise PermanentPipelineError(f"port {port} serves another environment's model", system=SYSTEM)
    state = _read_json(state_path)
    if answer is not None and answer[0] == 200 and state and _alive(state.get("pid")) and state.get("owner") == owner:
        return state
    if state and _alive(state.get("pid")):
        _stop_group(int(state["pid"]))
    if _port_in_use(port):
        raise PermanentPipelineError(
            f"port {port} is taken by another program; choose another local port for this environment", system=SYSTEM
        )
    if (_read_json(routes_path) or {}).get("owner") != owner:
        # Routes left by an environment that no longer owns the port are not served by this one.
        _write_json(routes_path, {"generation": 0, "routes": [], "owner": owner})
    log = _dir("logs") / f"proxy-{port}.log"
    argv = [
        sys.executable,
        "-m",
        "pipelines.adapters.serving_proxy",
        "--host",
        settings.LOCAL_SERVING_HOST,
        "--port",
        str(port),
        "--routes",
        str(routes_path),
        "--owner",
        owner,
    ]
    pid = detached_start(argv, log=log, cwd=str(settings.BASE_DIR))
    state = {"port": port, "pid": pid, "routes": str(routes_path), "log": str(log), "owner": owner}
    _write_json(state_path, state)
    while _http_get(port, "/__reviewdesk/routes") is None:
        if not _alive(pid) or time.monotonic() >= deadline:
            _stop_group(pid)
            raise EndpointNotReady(f"the local endpoint on port {port} did not start: {_log_tail(log)}", system=SYSTEM)
        time.sleep(0.05)
    return state


def local_routes_read(*, port: int) -> dict[str, Any]:
    """The routes the proxy on ``port`` serves now (``{"generation", "routes"}``), or empty when it is down."""
    answer = _http_get(port, "/__reviewdesk/routes")
    if answer is None or answer[0] != 200:
        return {"generation": 0, "routes": []}
    return json.loads(answer[1])


def _local_apply(
    *, environment: Environment, split: list[Split], deadline: float, heartbeat: Heartbeat
) -> dict[str, Any]:
    port = environment.local_port
    if not port:
        raise PermanentPipelineError(f"environment {environment.name!r} has no local port", system=SYSTEM)
    started = time.monotonic()
    proxy = local_proxy_ensure(port=port, deadline=deadline, environment=environment)
    routes = []
    for s in split:
        server = local_model_server_ensure(model_uri=s.model_version.uri, deadline=deadline, heartbeat=heartbeat)
        routes.append(
            {
                "name": entity_name(s.model_version),
                "version": str(s.model_version.version),
                "model_uri": s.model_version.uri,
                "port": int(server["port"]),
                "weight": s.percent,
            }
        )
    current = local_routes_read(port=port)
    if current.get("routes") == routes:
        return {"action": "already serving", "waited_seconds": round(time.monotonic() - started, 3), "routes": routes}
    generation = int(current.get("generation") or 0) + 1
    _write_json(Path(proxy["routes"]), {"generation": generation, "routes": routes, "owner": port_owner(environment)})
    while int(local_routes_read(port=port).get("generation") or 0) < generation:
        if time.monotonic() >= deadline:
            raise EndpointNotReady(f"the local endpoint on port {port} did not take the new routes", system=SYSTEM)
        time.sleep(0.05)
    return {"action": "updated", "waited_seconds": round(time.monotonic() - started, 3), "routes": routes}


def local_servers_prune(*, keep_uris: set[str]) -> list[str]:
    """Stop the local model servers no environment routes to any more (except ``keep_uris``)."""
    routed = set(keep_uris)
    for routes_file in _dir("proxies").glob("*.routes.json"):
        for route in (_read_json(routes_file) or {}).get("routes", []):
            routed.add(route.get("model_uri", ""))
    stopped = []
    for state_file in _dir("servers").glob("*.json"):
        state = _read_json(state_file) or {}
        if state.get("model_uri") and state["model_uri"] not in routed:
            local_model_server_stop(model_uri=state["model_uri"])
            stopped.append(state["model_uri"])
    return stopped


def local_serving_stop_all() -> None:
    """Stop every local proxy and model server this deployment started (tests, `serve_local_models --stop`)."""
    for state_file in list(_dir("proxies").glob("*.json")):
        if state_file.name.endswith(".routes.json"):
            continue
        state = _read_json(state_file) or {}
        if state.get("pid"):
            _stop_group(int(state["pid"]))
        state_file.unlink(missing_ok=True)
    for state_file in list(_dir("servers").glob("*.json")):
        state = _read_json(state_file) or {}
        if state.get("pid"):
            _stop_group(int(state["pid"]))
        state_file.unlink(missing_ok=True)


def local_query(
    *, port: int, records: list[dict[str, Any]], timeout: float = 60.0, version: str | None = None
) -> list[dict[str, Any]]:
    """``POST /invocations`` with ``dataframe_records`` on the local endpoint; predictions with the serving version.

    With ``version`` the proxy sends the request to that version's server only (``X-Reviewdesk-Version``).
    """
    from pipelines.adapters.serving_proxy import local_invocations

    predictions, served_by = local_invocations(port=port, records=records, timeout=timeout, version=version)
    return [{"prediction": p, "served_by": served_by} for p in predictions]


def local_endpoint_restore(*, environment: Environment, deadline: float, heartbeat: Heartbeat) -> dict[str, Any]:
    """(Re)start a local environment's endpoint as the rollout engine left it (after a reboot or a crash).

    The routes file the engine last wrote for the environment's port is the state: each routed version's
    model server is started when it does not answer (on a new port if need be, and the routes follow it),
    then the proxy. Without a routes file the environment's current version is served at 100%. What
    already runs is left alone, so running this twice does nothing the second time.
    Returns ``{"routes", "started": [what was started]}``.
    """
    port = environment.local_port
    if not port:
        raise PermanentPipelineError(f"environment {environment.name!r} has no local port", system=SYSTEM)
    _port_check(environment=environment, port=port)
    routes_path = _dir("proxies") / f"{port}.routes.json"
    saved = _read_json(routes_path) or {}
    if saved.get("owner") != port_owner(environment):
        saved = {}  # another environment's routes (the port changed hands): never restored here
    routes = [dict(r) for r in saved.get("routes") or [] if r.get("model_uri")]
    if not routes:
        if environment.current_version is None:
            return {"routes": [], "started": []}
        current = environment.current_version
        routes = [
            {"name": entity_name(current), "version": str(current.version), "model_uri": current.uri, "weight": 100}
        ]
    started = []
    for route in routes:
        before = _read_json(_dir("servers") / f"{_server_key(route['model_uri'])}.json") or {}
        server = local_model_server_ensure(model_uri=route["model_uri"], deadline=deadline, heartbeat=heartbeat)
        if server.get("pid") != before.get("pid"):
            started.append(f"model server v{route['version']}")
        route["port"] = int(server["port"])
    if routes != saved.get("routes"):
        generation = int(saved.get("generation") or 0) + 1
        _write_json(routes_path, {"generation": generation, "routes": routes, "owner": port_owner(environment)})
    proxy_before = (_read_json(_dir("proxies") / f"{port}.json") or {}).get("pid")
    proxy = local_proxy_ensure(port=port, deadline=deadline, environment=environment)
    if proxy.get("pid") != proxy_before:
        started.append(f"endpoint on port {port}")
    generation = int((_read_json(routes_path) or {}).get("generation") or 0)
    while int(local_routes_read(port=port).get("generation") or 0) < generation:
        if time.monotonic() >= deadline:
            raise EndpointNotReady(f"the local endpoint on port {port} did not take its routes", system=SYSTEM)
        time.sleep(0.05)
    return {"routes": routes, "started": started}
