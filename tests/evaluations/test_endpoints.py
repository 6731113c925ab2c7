"""The endpoint registry: REVIEWDESK_ENDPOINTS and the admin-managed table, one name one definition."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured

from evaluations.endpoints import EndpointNotFound, endpoint_create, endpoint_get, endpoint_list
from evaluations.models import Endpoint
from reviewapp.errors import ValidationFailed

ROOT = Path(__file__).resolve().parents[2]
DECLARED = {
    "name": "judge",
    "kind": "openai_compatible",
    "url": "http://127.0.0.1:9/v1",
    "model": "gpt-4o-mini",
    "credential_env": "REVIEWDESK_SECRET_OPENAI_API_KEY",
    "max_concurrency": 8,
}


def fields(exc: ValidationFailed) -> dict[str, str]:
    return {e["field"]: e["message"] for e in exc.errors}


@pytest.mark.django_db
def test_a_declared_endpoint_resolves_by_name(settings) -> None:  # type: ignore[no-untyped-def]
    settings.EVALUATION_ENDPOINTS = [DECLARED]

    config = endpoint_get(name="judge")

    assert (config.kind, config.url, config.model, config.credential_env) == (
        "openai_compatible",
        "http://127.0.0.1:9/v1",
        "gpt-4o-mini",
        "REVIEWDESK_SECRET_OPENAI_API_KEY",
    )
    assert config.max_concurrency == 8
    assert config.timeout_seconds == 30.0  # the default when the entry does not say


@pytest.mark.django_db
def test_an_admin_endpoint_resolves_by_name() -> None:
    endpoint_create(
        name="dbx",
        kind="databricks_serving",
        url="https://adb-1.azuredatabricks.net",
        endpoint_name="judge-llm",
        credential_env="REVIEWDESK_SECRET_DATABRICKS_TOKEN",
        rate_limit_rpm=120,
    )

    config = endpoint_get(name="dbx")

    assert (config.kind, config.endpoint_name, config.rate_limit_rpm) == ("databricks_serving", "judge-llm", 120)


@pytest.mark.django_db
def test_the_declared_endpoint_wins_and_the_row_is_listed_as_shadowed(settings) -> None:  # type: ignore[no-untyped-def]
    Endpoint.objects.create(name="judge", kind="openai_compatible", url="http://old/v1", model="old-model")
    settings.EVALUATION_ENDPOINTS = [DECLARED]

    assert endpoint_get(name="judge").model == "gpt-4o-mini"
    entries = [(e.config.name, e.source, e.shadowed) for e in endpoint_list()]
    assert entries == [("judge", "settings", False), ("judge", "database", True)]


@pytest.mark.django_db
def test_the_admin_refuses_a_name_declared_in_settings(settings) -> None:  # type: ignore[no-untyped-def]
    settings.EVALUATION_ENDPOINTS = [DECLARED]

    with pytest.raises(ValidationFailed) as caught:
        endpoint_create(name="judge", kind="openai_compatible", url="http://x/v1", model="m")
    assert "declared in REVIEWDESK_ENDPOINTS" in fields(caught.value)["name"]
    assert not Endpoint.objects.exists()


@pytest.mark.django_db
def test_unknown_and_disabled_endpoints_are_not_found() -> None:
    endpoint_create(name="off", kind="openai_compatible", url="http://x/v1", model="m", enabled=False)

    with pytest.raises(EndpointNotFound, match="no endpoint named 'nope'"):
        endpoint_get(name="nope")
    with pytest.raises(EndpointNotFound, match="'off' is disabled"):
        endpoint_get(name="off")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"kind": "openai_compatible", "model": "m"}, "url", "needs its base URL"),
        ({"kind": "openai_compatible", "url": "ftp://x"}, "url", "http:// or https://"),
        ({"kind": "openai_compatible", "url": "http://x/v1"}, "model", "needs the model id"),
        ({"kind": "databricks_serving", "url": "https://w"}, "endpoint_name", "serving endpoint name"),
        (
            {"kind": "databricks_serving", "url": "https://w", "endpoint_name": "e"},
            "credential_env",
            "DATABRICKS_TOKEN",
        ),
        ({"kind": "mlflow_model", "model": "models:/m@champion"}, "model", "models:/<name>/<version>"),
        (
            {"kind": "openai_compatible", "url": "http://x/v1", "model": "m", "credential_env": "sk-live-123"},
            "credential_env",
            "not the key itself",
        ),
        (
            {"kind": "openai_compatible", "url": "http://x/v1", "model": "m", "max_concurrency": 0},
            "max_concurrency",
            "",
        ),
    ],
)
def test_it_rejects_incomplete_definitions(values: dict[str, object], field: str, message: str) -> None:
    kind = values.pop("kind")
    with pytest.raises(ValidationFailed) as caught:
        endpoint_create(name="e1", kind=kind, **values)  # type: ignore[arg-type]
    assert message in fields(caught.value)[field]


@pytest.mark.django_db
def test_a_bad_declaration_says_which_entry_and_field(settings) -> None:  # type: ignore[no-untyped-def]
    settings.EVALUATION_ENDPOINTS = [DECLARED, {"name": "b", "kind": "openai_compatible", "api_key": "sk-x"}]

    with pytest.raises(ImproperlyConfigured) as caught:
        endpoint_get(name="judge")
    message = str(caught.value)
    assert "REVIEWDESK_ENDPOINTS[1]: api_key: never put a key here" in message
    assert "REVIEWDESK_ENDPOINTS[1].url:" in message


def test_settings_refuse_endpoints_that_are_not_json() -> None:
    env = {**os.environ, "REVIEWDESK_TESTING": "true", "REVIEWDESK_ENDPOINTS": "[{name: judge}]"}
    proc = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT,
        env={**env, "DJANGO_SETTINGS_MODULE": "reviewapp.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode != 0
    assert "REVIEWDESK_ENDPOINTS is not valid JSON" in proc.stderr


@pytest.mark.slow
def test_settings_read_endpoints_judge_and_scorer_modules_from_the_environment() -> None:
    env = {
        **os.environ,
        "REVIEWDESK_TESTING": "true",
        "DJANGO_SETTINGS_MODULE": "reviewapp.settings",
        "REVIEWDESK_ENDPOINTS": json.dumps([DECLARED]),
        "REVIEWDESK_JUDGE_ENDPOINT": "judge",
        "REVIEWDESK_SCORER_MODULES": "team.scorers, other.scorers",
    }
    code = (
        "import django, json; django.setup(); from django.conf import settings as s; "
        "print(json.dumps([s.EVALUATION_ENDPOINTS, s.EVALUATION_JUDGE_ENDPOINT, s.EVALUATION_SCORER_MODULES]))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == [[DECLARED], "judge", ["team.scorers", "other.scorers"]]


@pytest.mark.django_db
def test_staff_manage_endpoints_in_the_admin(client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.EVALUATION_ENDPOINTS = [DECLARED]
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw-for-tests-1")
    client.force_login(admin)
    form = {
        "name": "judge",
        "kind": "openai_compatible",
        "enabled": "on",
        "url": "http://127.0.0.1:9/v1",
        "model": "m",
        "timeout_seconds": "30",
        "max_retries": "3",
        "max_concurrency": "4",
    }

    refused = client.post("/admin/evaluations/endpoint/add/", form)
    created = client.post("/admin/evaluations/endpoint/add/", {**form, "name": "local-vllm"})

    assert refused.status_code == 200
    assert "declared in REVIEWDESK_ENDPOINTS" in refused.content.decode()
    assert created.status_code == 302
    assert endpoint_get(name="local-vllm").model == "m"
    assert client.get("/admin/evaluations/endpoint/").status_code == 200
