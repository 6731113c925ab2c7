"""Databricks Model Serving: the endpoint config for a split, applied through the Databricks adapter and awaited."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings

from pipelines.adapters import databricks
from pipelines.adapters.errors import PermanentPipelineError
from pipelines.models import Environment
from pipelines.releases.serving.split import SYSTEM, EndpointNotReady, Heartbeat, Split, entity_name
from pipelines.wiring import databricks_config


def _databricks_config(split: list[Split]) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    entities = [
        {
            "name": entity_name(s.model_version),
            "entity_name": s.model_version.registered_model,
            "entity_version": str(s.model_version.version),
        }
        for s in split
    ]
    routes = [{"served_model_name": entity_name(s.model_version), "traffic_percentage": s.percent} for s in split]
    return entities, routes


def _config_matches(
    config: dict[str, Any] | None, entities: list[dict[str, str]], routes: list[dict[str, Any]]
) -> bool:
    if not config:
        return False
    served = {
        (e.get("name"), e.get("entity_name"), str(e.get("entity_version"))) for e in config.get("served_entities") or []
    }
    wanted = {(e["name"], e["entity_name"], e["entity_version"]) for e in entities}
    got_routes = {
        r.get("served_model_name") or r.get("served_entity_name"): int(r.get("traffic_percentage") or 0)
        for r in (config.get("traffic_config") or {}).get("routes") or []
    }
    return served == wanted and got_routes == {r["served_model_name"]: r["traffic_percentage"] for r in routes}


def _databricks_apply(
    *, environment: Environment, split: list[Split], deadline: float, heartbeat: Heartbeat
) -> dict[str, Any]:
    name = environment.serving_endpoint
    if not name:
        raise PermanentPipelineError(f"environment {environment.name!r} names no serving endpoint", system=SYSTEM)
    entities, routes = _databricks_config(split)
    started = time.monotonic()
    state = databricks.serving_endpoint_state(databricks_config(), name=name)
    action = "none"
    if state is None:
        databricks.serving_endpoint_create(databricks_config(), name=name, entities=entities, routes=routes)
        action = "created"
    else:
        updating = (state.get("state") or {}).get("config_update") == "IN_PROGRESS"
        if updating and _config_matches(state.get("pending_config"), entities, routes):
            action = "already updating"  # a step that ran before a crash already sent this config
        elif not updating and _config_matches(state.get("config"), entities, routes):
            return {"action": "already serving", "waited_seconds": 0.0, "polls": 0, "routes": routes}
        else:
            if updating:  # someone else's update: wait for it to finish before sending ours
                _databricks_wait(name=name, deadline=deadline, heartbeat=heartbeat, entities=None, routes=None)
            databricks.serving_endpoint_config_update(databricks_config(), name=name, entities=entities, routes=routes)
            action = "updated"
    polls = _databricks_wait(name=name, deadline=deadline, heartbeat=heartbeat, entities=entities, routes=routes)
    return {"action": action, "waited_seconds": round(time.monotonic() - started, 3), "polls": polls, "routes": routes}


def _databricks_wait(
    *,
    name: str,
    deadline: float,
    heartbeat: Heartbeat,
    entities: list[dict[str, str]] | None,
    routes: list[dict[str, Any]] | None,
) -> int:
    """Poll ``GET serving-endpoints/{name}`` until NOT_UPDATING and READY (with our config), or the deadline."""
    polls = 0
    last: dict[str, Any] = {}
    while True:
        state = databricks.serving_endpoint_state(databricks_config(), name=name)
        polls += 1
        if state is None:
            raise PermanentPipelineError(f"serving endpoint {name!r} disappeared", system=SYSTEM)
        last = state.get("state") or {}
        if last.get("config_update") == "UPDATE_FAILED" and entities is not None:
            raise PermanentPipelineError(
                f"serving endpoint {name!r} failed to apply the new config (UPDATE_FAILED); it serves the old one",
                system=SYSTEM,
            )
        if last.get("config_update") != "IN_PROGRESS" and last.get("ready") == "READY":
            if entities is None or routes is None or _config_matches(state.get("config"), entities, routes):
                return polls
        if time.monotonic() >= deadline:
            raise EndpointNotReady(
                f"serving endpoint {name!r} was not ready in time (ready={last.get('ready')}, "
                f"config_update={last.get('config_update')})",
                system=SYSTEM,
            )
        heartbeat()
        time.sleep(min(settings.ROLLOUT_POLL_SECONDS, max(0.0, deadline - time.monotonic())))
