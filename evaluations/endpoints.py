"""The endpoint registry: one place where model endpoints are defined, looked up by name.

Two sources, one rule:

- ``REVIEWDESK_ENDPOINTS`` (JSON list in the environment, parsed into
  ``settings.EVALUATION_ENDPOINTS``) holds the endpoints the deployment manages as code. They
  are read-only in Reviewdesk and **win**: a name declared there always resolves to that
  definition.
- The ``Endpoint`` table, edited in the Django admin, holds the rest. The admin refuses a name
  that is declared in the environment; a row that predates such a declaration is listed as
  ``shadowed`` and never used.

Every definition goes through the same checks (:func:`endpoint_fields_validate`). Secrets never
live in either place: an endpoint names the environment variable that holds its key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import transaction

from evaluations.models.endpoints import Endpoint, endpoint_fields_validate
from pipelines.adapters.llm_client import EndpointConfig
from reviewapp.errors import ServiceError, ValidationFailed
from reviewapp.typed_input import field_error

SETTINGS_KEYS = {
    "name",
    "kind",
    "url",
    "endpoint_name",
    "model",
    "credential_env",
    "rate_limit_rpm",
    "timeout_seconds",
    "max_retries",
    "max_concurrency",
    "backoff_seconds",
    "enabled",
    "description",
}
SECRET_KEYS = {"api_key", "key", "token", "secret", "password", "credential"}


class EndpointNotFound(ServiceError):
    """No enabled endpoint has this name."""

    code = "endpoint_not_found"


@dataclass(frozen=True)
class EndpointEntry:
    config: EndpointConfig
    source: Literal["settings", "database"]
    enabled: bool
    shadowed: bool = False  # a database row hidden by a REVIEWDESK_ENDPOINTS entry of the same name
    description: str = ""


_declared_cache: tuple[str, dict[str, EndpointEntry]] | None = None


def endpoints_declared() -> dict[str, EndpointEntry]:
    """The REVIEWDESK_ENDPOINTS entries by name; ImproperlyConfigured says which entry and field is wrong."""
    global _declared_cache
    raw = getattr(settings, "EVALUATION_ENDPOINTS", [])
    fingerprint = json.dumps(raw, sort_keys=True, default=str)
    if _declared_cache is not None and _declared_cache[0] == fingerprint:
        return _declared_cache[1]
    entries: dict[str, EndpointEntry] = {}
    problems: list[str] = []
    for index, item in enumerate(raw):
        where = f"REVIEWDESK_ENDPOINTS[{index}]"
        if not isinstance(item, dict):
            problems.append(f"{where}: must be a JSON object")
            continue
        secrets = SECRET_KEYS & set(item)
        if secrets:
            problems.append(
                f"{where}: {', '.join(sorted(secrets))}: never put a key here; put it in an environment "
                "variable and give that variable's name as credential_env"
            )
        unknown = set(item) - SETTINGS_KEYS - SECRET_KEYS
        if unknown:
            problems.append(f"{where}: unknown keys {', '.join(sorted(unknown))}")
        problems += [f"{where}.{e['field']}: {e['message']}" for e in endpoint_fields_validate(item)]
        name = item.get("name")
        if isinstance(name, str) and name in entries:
            problems.append(f"{where}.name: {name!r} is declared twice")
        if problems or not isinstance(name, str):  # a name that is not a string is among the problems
            continue
        entries[name] = EndpointEntry(
            config=_config(item),
            source="settings",
            enabled=bool(item.get("enabled", True)),
            description=str(item.get("description", "")),
        )
    if problems:
        raise ImproperlyConfigured("Invalid REVIEWDESK_ENDPOINTS: " + "; ".join(problems))
    _declared_cache = (fingerprint, entries)
    return entries


def _config(values: dict[str, Any]) -> EndpointConfig:
    config: dict[str, Any] = {
        "name": values["name"],
        "kind": values["kind"],
        "url": values.get("url") or "",
        "endpoint_name": values.get("endpoint_name") or "",
        "model": values.get("model") or "",
        "credential_env": values.get("credential_env") or "",
        "rate_limit_rpm": values.get("rate_limit_rpm"),
    }
    for key in ("timeout_seconds", "max_retries", "max_concurrency", "backoff_seconds"):
        if values.get(key) is not None:
            config[key] = values[key]
    return EndpointConfig(**config)


def endpoint_config_from_model(endpoint: Endpoint) -> EndpointConfig:
    return _config({f.name: getattr(endpoint, f.name) for f in Endpoint._meta.concrete_fields})


def endpoint_get(*, name: str) -> EndpointConfig:
    """The enabled endpoint called ``name``: REVIEWDESK_ENDPOINTS first, then the table."""
    declared = endpoints_declared().get(name)
    if declared is not None:
        if not declared.enabled:
            raise EndpointNotFound(f"The endpoint {name!r} is disabled (in REVIEWDESK_ENDPOINTS).")
        return declared.config
    row = Endpoint.objects.filter(name=name).first()
    if row is None:
        raise EndpointNotFound(f"There is no endpoint named {name!r}.")
    if not row.enabled:
        raise EndpointNotFound(f"The endpoint {name!r} is disabled.")
    return endpoint_config_from_model(row)


def endpoint_list() -> list[EndpointEntry]:
    """Every endpoint from both sources, by name (shadowed rows included and marked)."""
    declared = endpoints_declared()
    entries = list(declared.values())
    for row in Endpoint.objects.all():
        entries.append(
            EndpointEntry(
                config=endpoint_config_from_model(row),
                source="database",
                enabled=row.enabled,
                shadowed=row.name in declared,
                description=row.description,
            )
        )
    return sorted(entries, key=lambda e: (e.config.name, e.source != "settings"))


def endpoint_create(*, name: str, kind: str, **fields: Any) -> Endpoint:
    """Create an admin-managed endpoint with the same checks as the admin form."""
    endpoint = Endpoint(name=name, kind=kind, **fields)
    try:
        endpoint.full_clean()
    except ValidationError as exc:
        raise ValidationFailed(
            [field_error(field, message) for field, messages in exc.message_dict.items() for message in messages]
        ) from None
    with transaction.atomic():
        endpoint.save()
    return endpoint


def judge_endpoint_default() -> str:
    """The endpoint judges use when a suite does not name one (REVIEWDESK_JUDGE_ENDPOINT)."""
    return str(getattr(settings, "EVALUATION_JUDGE_ENDPOINT", "") or "")
