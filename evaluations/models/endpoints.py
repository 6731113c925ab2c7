"""Model endpoints (the LLM provider registry) and the LLM-judge answer cache.

An endpoint is defined once per deployment and referred to by name from judges (the
``endpoint`` param) and generation targets (``{"kind": "endpoint", "endpoint": name}``), so
switching provider is one change. Endpoints come from two places, with one rule (see
:mod:`evaluations.endpoints`): ``REVIEWDESK_ENDPOINTS`` in the environment (deployment-managed,
read-only here) and this table (admin-managed); a name lives in exactly one of them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from pipelines.adapters import outbound
from reviewapp.errors import FieldError
from reviewapp.typed_input import field_error

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
ENV_NAME_RE = re.compile(r"^[A-Z_][A-Z0-9_]{0,99}$")
MODEL_URI_RE = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>[1-9][0-9]*)$")
URL_RE = re.compile(r"^https?://[^\s/]+(/\S*)?$")


class Endpoint(models.Model):
    class Kind(models.TextChoices):
        DATABRICKS_SERVING = "databricks_serving", "Databricks Model Serving endpoint"
        OPENAI_COMPATIBLE = "openai_compatible", "OpenAI-compatible URL (OpenAI, vLLM, Ollama, ...)"
        MLFLOW_MODEL = "mlflow_model", "MLflow model loaded in the worker"

    name = models.CharField(max_length=100, unique=True, help_text="What judges and targets refer to.")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    url = models.CharField(
        max_length=500,
        blank=True,
        help_text="Base URL of an OpenAI-compatible API (…/v1), or the Databricks workspace host.",
    )
    endpoint_name = models.CharField(max_length=200, blank=True, help_text="Databricks serving endpoint name.")
    model = models.CharField(
        max_length=300,
        blank=True,
        help_text="Model id sent to an OpenAI-compatible API, or models:/name/version for an MLflow model.",
    )
    credential_env = models.CharField(
        max_length=100,
        blank=True,
        help_text="The NAME of the environment variable holding the key or token (never the key itself).",
    )
    rate_limit_rpm = models.PositiveIntegerField(null=True, blank=True, help_text="Requests per minute per worker.")
    timeout_seconds = models.FloatField(default=30.0, help_text="Per attempt.")
    max_retries = models.PositiveSmallIntegerField(default=3, help_text="On 429, 5xx and timeouts only.")
    max_concurrency = models.PositiveSmallIntegerField(default=4, help_text="Requests in flight per worker.")
    enabled = models.BooleanField(default=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"

    def clean(self) -> None:
        values = {f.name: getattr(self, f.name) for f in self._meta.concrete_fields}
        errors: dict[str, list[str]] = {}
        for error in endpoint_fields_validate(values):
            errors.setdefault(error["field"], []).append(error["message"])
        declared = {str(e.get("name")) for e in getattr(settings, "EVALUATION_ENDPOINTS", [])}
        if self.name in declared:
            errors.setdefault("name", []).append(
                "This name is declared in REVIEWDESK_ENDPOINTS; change it there or pick another name."
            )
        if errors:
            raise ValidationError(errors)


def endpoint_fields_validate(values: Mapping[str, Any]) -> list[FieldError]:
    """Check one endpoint definition (a model's fields or a REVIEWDESK_ENDPOINTS entry); [] when valid."""
    errors: list[FieldError] = []

    def bad(field: str, message: str) -> None:
        errors.append(field_error(field, message))

    name = values.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        bad("name", "Use 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit.")
    kind = values.get("kind")
    if kind not in Endpoint.Kind.values:
        bad("kind", f"Must be one of {', '.join(Endpoint.Kind.values)}.")
    url = values.get("url") or ""
    model = values.get("model") or ""
    credential_env = values.get("credential_env") or ""
    for key in ("url", "endpoint_name", "model", "credential_env"):
        if not isinstance(values.get(key) or "", str):
            bad(key, "Must be a string.")
    if not isinstance(url, str) or not isinstance(model, str) or not isinstance(credential_env, str):
        return errors
    if url and not URL_RE.match(url):
        bad("url", "Must be an http:// or https:// URL.")
    elif url:
        problem = outbound.url_problem(url, rules=outbound.OutboundRules.from_settings(settings))
        if problem:
            bad("url", f"The URL {problem}.")
    if kind == Endpoint.Kind.OPENAI_COMPATIBLE:
        if not url:
            bad("url", "An OpenAI-compatible endpoint needs its base URL, e.g. https://api.openai.com/v1.")
        if not model:
            bad("model", "An OpenAI-compatible endpoint needs the model id to request.")
    elif kind == Endpoint.Kind.DATABRICKS_SERVING:
        if not url:
            bad("url", "A Databricks endpoint needs the workspace host, e.g. https://adb-123.azuredatabricks.net.")
        if not values.get("endpoint_name"):
            bad("endpoint_name", "A Databricks endpoint needs the serving endpoint name.")
        if not credential_env:
            bad(
                "credential_env",
                "A Databricks endpoint needs the variable holding a token, e.g. "
                f"{settings.SECRET_ENV_PREFIX}DATABRICKS_TOKEN.",
            )
    elif kind == Endpoint.Kind.MLFLOW_MODEL and not MODEL_URI_RE.match(model):
        bad("model", "An MLflow model endpoint needs a registered model version: models:/<name>/<version>.")
    if credential_env and not ENV_NAME_RE.match(credential_env):
        bad(
            "credential_env",
            "Give the NAME of an environment variable (A-Z, 0-9, _), not the key itself.",
        )
    elif credential_env:
        problem = outbound.credential_env_problem(credential_env, rules=outbound.OutboundRules.from_settings(settings))
        if problem:
            bad("credential_env", problem)
    _check_number(values, "rate_limit_rpm", bad, minimum=1, maximum=1_000_000, integer=True)
    _check_number(values, "timeout_seconds", bad, minimum=0.1, maximum=600)
    _check_number(values, "max_retries", bad, minimum=0, maximum=10, integer=True)
    _check_number(values, "max_concurrency", bad, minimum=1, maximum=256, integer=True)
    _check_number(values, "backoff_seconds", bad, minimum=0, maximum=60)
    return errors


def _check_number(
    values: Mapping[str, Any],
    key: str,
    bad: Callable[[str, str], None],
    *,
    minimum: float,
    maximum: float,
    integer: bool = False,
) -> None:
    value = values.get(key)
    if value is None:
        return
    kinds: tuple[type, ...] = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        bad(key, "Must be a whole number." if integer else "Must be a number.")
    elif not minimum <= value <= maximum:
        bad(key, f"Must be between {minimum:g} and {maximum:g}.")


class JudgeCacheEntry(models.Model):
    """One LLM judge answer, reused whenever the same judge prompt goes to the same model again.

    ``key`` is the SHA-256 of (judge name, prompt version, endpoint identity, the exact messages
    sent): a new prompt version or another model misses the cache; a re-run costs nothing. Only
    parsed answers are stored, never errors.
    """

    key = models.CharField(max_length=64, primary_key=True)
    judge = models.CharField(max_length=100)
    prompt_version = models.CharField(max_length=16)
    endpoint = models.CharField(max_length=600, help_text="kind|url|endpoint name|model that answered.")
    value = models.BooleanField()
    rationale = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "judge cache entries"
        indexes = [models.Index(fields=["judge", "prompt_version"], name="judgecache_judge_version")]

    def __str__(self) -> str:
        return f"{self.judge}@{self.prompt_version}: {'yes' if self.value else 'no'}"
