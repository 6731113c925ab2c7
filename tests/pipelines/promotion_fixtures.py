"""Helpers for the promotion tests: model version rows, environments, a Databricks fake wired into settings."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from django.utils import timezone

from pipelines.models import Environment, ModelVersion
from reviewapp.models import Project
from tests.factories import member
from tests.fakes.databricks_api import FakeDatabricks

UC_MODEL = "main.default.support_assistant"


def project_model_name(project: Project, name: str) -> None:
    """As registry sync does: a project's versions are of the registered model it names (set it if blank)."""
    if not project.mlflow_registered_model:
        project.mlflow_registered_model = name
        project.save(update_fields=["mlflow_registered_model"])


def versions(project: Project, *numbers: int, name: str = UC_MODEL) -> list[ModelVersion]:
    project_model_name(project, name)
    return [
        ModelVersion.objects.get_or_create(
            project=project,
            registered_model=name,
            version=str(n),
            defaults={"synced_at": timezone.now(), "status": "READY"},
        )[0]
        for n in numbers
    ]


def engineers(project: Project) -> tuple[Any, Any, Any]:
    """Two engineers and an admin."""
    return (
        member(project, "engineer", username="erin"),
        member(project, "engineer", username="ezra"),
        member(project, "admin", username="ada"),
    )


def databricks_environment(project: Project, **overrides: Any) -> Environment:
    values: dict[str, Any] = {
        "name": "production",
        "alias": "champion",
        "serving_kind": Environment.ServingKind.DATABRICKS,
        "serving_endpoint": "support-prod",
        "canary_stages": [10, 50, 100],
        "ready_timeout_seconds": 5,
        "health_check_queries": 2,
        "soak_seconds": 0,  # tests that watch a soak set their own
    }
    values.update(overrides)
    return Environment.objects.create(project=project, **values)


@pytest.fixture
def databricks_fake(settings: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> Iterator[FakeDatabricks]:
    """The local Databricks workspace, named by DATABRICKS_HOST/TOKEN as a deployment would."""
    for key in list(os.environ):
        if key.startswith("DATABRICKS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("DATABRICKS_CONFIG_FILE", str(tmp_path / "absent.cfg"))
    with FakeDatabricks().running() as fake:
        settings.DATABRICKS_HOST = fake.url
        settings.DATABRICKS_TOKEN = fake.token
        settings.DATABRICKS_TIMEOUT_SECONDS = 5
        settings.ROLLOUT_POLL_SECONDS = 0.02
        settings.PROMOTION_WEBHOOK_URLS = []
        yield fake


def serve_v1(fake: FakeDatabricks, name: str = "support-prod") -> None:
    fake.add_model_endpoint(
        name,
        entities=[
            {
                "name": "support_assistant-1",
                "entity_name": UC_MODEL,
                "entity_version": "1",
                "workload_size": "Small",
                "scale_to_zero_enabled": True,
            }
        ],
        routes=[{"served_model_name": "support_assistant-1", "traffic_percentage": 100}],
    )
    fake.model_aliases[(UC_MODEL, "champion")] = 1
