"""Registry sync against a real SQLite MLflow registry with tiny logged pyfunc models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import override_settings

from pipelines.adapters.errors import PermanentPipelineError, TransientPipelineError
from pipelines.models import ModelVersion
from pipelines.releases.registry import registry_sync, registry_sync_status
from reviewapp.celery import app as celery_app
from tests.pipelines.evidence_helpers import Registry, log_version, registry_client, registry_create

# mlflow 3.17.2's own SQLAlchemy store uses a deprecated loader option; not ours to fix.
pytestmark = [
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]

V1_TEMPLATE = "You are Lumen's support assistant.\nAnswer from the context.\n{context}\n{question}"
V2_TEMPLATE = "You are Lumen's support assistant.\nCite every source as [n].\n{context}\n{question}"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    return registry_create(Path(tmp_path_factory.mktemp("mlflow")))


@pytest.fixture
def at_registry(registry: Registry) -> Iterator[Registry]:
    with override_settings(MLFLOW_TRACKING_URI=registry.uri, MLFLOW_REGISTRY_URI=""):
        yield registry


def two_versions(registry: Registry, model: str) -> tuple[str, str]:
    v1 = log_version(
        registry,
        model=model,
        params={"top_k": "1", "llm_endpoint": "small"},
        prompt_template=V1_TEMPLATE,
        description="first <b>try</b>",
    )
    v2 = log_version(
        registry,
        model=model,
        params={"top_k": "3", "llm_endpoint": "small"},
        prompt_template=V2_TEMPLATE,
        template_as="artifact",
    )
    return v1, v2


@pytest.mark.slow
def test_sync_copies_versions_with_their_params_prompt_templates_and_aliases(project, at_registry) -> None:
    model = "sync-basic"
    v1, _ = two_versions(at_registry, model)
    registry_client(at_registry).set_registered_model_alias(model, "champion", v1)
    project.mlflow_registered_model = model
    project.save()

    result = registry_sync(project=project)

    assert (result.created, result.updated, result.deleted) == (["1", "2"], [], [])
    one, two = ModelVersion.objects.filter(project=project).order_by("version")
    assert (one.version, one.status, one.aliases, two.aliases) == ("1", "READY", ["champion"], [])
    # The run's params, without the template (which is a param of v1's run, and an artifact of v2's).
    assert one.params == {"top_k": "1", "llm_endpoint": "small", "prompt_template": V1_TEMPLATE}
    assert two.params == {"top_k": "3", "llm_endpoint": "small"}
    assert (one.prompt_template, two.prompt_template) == (V1_TEMPLATE, V2_TEMPLATE)
    assert one.description == "first <b>try</b>"
    assert one.run_id and one.run_id != two.run_id and one.source and one.registered_at is not None
    assert one.uri == f"models:/{model}/1"
    assert registry_sync_status(project=project)["ok"] is True


@pytest.mark.slow
def test_a_second_sync_changes_nothing_and_alias_moves_are_picked_up(project, at_registry) -> None:
    model = "sync-aliases"
    v1, v2 = two_versions(at_registry, model)
    client = registry_client(at_registry)
    client.set_registered_model_alias(model, "champion", v1)
    project.mlflow_registered_model = model
    project.save()
    registry_sync(project=project)
    before = {mv.version: (mv.pk, mv.params, mv.prompt_template, mv.aliases) for mv in ModelVersion.objects.all()}

    again = registry_sync(project=project)

    assert (again.created, again.updated, again.unchanged) == ([], [], ["1", "2"])
    after = {mv.version: (mv.pk, mv.params, mv.prompt_template, mv.aliases) for mv in ModelVersion.objects.all()}
    assert after == before and ModelVersion.objects.count() == 2

    client.set_registered_model_alias(model, "champion", v2)
    client.set_registered_model_alias(model, "staging", v2)
    moved = registry_sync(project=project)

    assert sorted(moved.updated) == ["1", "2"]
    aliases = dict(ModelVersion.objects.values_list("version", "aliases"))
    assert aliases == {"1": [], "2": ["champion", "staging"]}


@pytest.mark.slow
def test_a_version_deleted_in_the_registry_is_marked_not_removed(project, at_registry) -> None:
    model = "sync-delete"
    _, v2 = two_versions(at_registry, model)
    client = registry_client(at_registry)
    client.set_registered_model_alias(model, "challenger", v2)
    project.mlflow_registered_model = model
    project.save()
    registry_sync(project=project)

    client.delete_model_version(model, v2)
    result = registry_sync(project=project)

    assert result.deleted == ["2"] and result.unchanged == ["1"]
    gone = ModelVersion.objects.get(version="2")
    assert (gone.status, gone.aliases, gone.prompt_template) == ("DELETED", [], V2_TEMPLATE)
    assert registry_sync(project=project).deleted == []  # marked once


@pytest.mark.slow
def test_a_template_logged_as_a_run_tag_is_found(project, at_registry) -> None:
    model = "sync-tag"
    log_version(at_registry, model=model, params={"top_k": "2"}, prompt_template="Tagged {question}", template_as="tag")
    project.mlflow_registered_model = model
    project.save()

    registry_sync(project=project)

    assert ModelVersion.objects.get().prompt_template == "Tagged {question}"


@pytest.mark.slow
def test_an_unreachable_registry_writes_nothing_and_is_recorded(project, at_registry, settings, monkeypatch) -> None:
    model = "sync-down"
    two_versions(at_registry, model)
    project.mlflow_registered_model = model
    project.save()
    registry_sync(project=project)
    before = list(ModelVersion.objects.order_by("id").values())

    settings.MLFLOW_TRACKING_URI = "http://127.0.0.1:1"  # nothing listens there
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # MLflow's client would retry for minutes
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    with pytest.raises(TransientPipelineError):
        registry_sync(project=project)

    assert list(ModelVersion.objects.order_by("id").values()) == before
    status = registry_sync_status(project=project)
    assert status["ok"] is False and "127.0.0.1:1" in status["error"]


def test_an_unknown_model_marks_nothing_deleted(project, at_registry) -> None:
    model = "sync-rename"
    two_versions(at_registry, model)
    project.mlflow_registered_model = model
    project.save()
    registry_sync(project=project)

    project.mlflow_registered_model = "no-such-model"
    project.save()
    with pytest.raises(PermanentPipelineError):
        registry_sync(project=project)

    assert set(ModelVersion.objects.values_list("status", flat=True)) == {"READY"}


def test_the_task_syncs_and_beat_schedules_it(project, at_registry) -> None:
    from pipelines.tasks.model_versions import registry_sync as registry_sync_task
    from pipelines.tasks.model_versions import registry_sync_all as registry_sync_all_task

    model = "sync-task"
    log_version(at_registry, model=model, params={"top_k": "2"})
    project.mlflow_registered_model = model
    project.save()

    registry_sync_task(project.pk)
    registry_sync_task(project.pk)  # idempotent
    registry_sync_all_task()

    assert list(ModelVersion.objects.values_list("version", "status")) == [("1", "READY")]
    schedule = celery_app.conf.beat_schedule["sync-model-registry"]
    assert schedule["task"] == "pipelines.registry_sync_all" and schedule["schedule"] == 300.0


@pytest.mark.slow
def test_the_demo_rag_chain_versions_sync_with_their_settings(project, tmp_path: Path) -> None:
    """The demo chain (pipelines.demo_models) logs its RagSettings as run params, prompt_template among them."""
    from io import StringIO

    from django.core.management import call_command

    from pipelines.demo_rag.chain import VARIANTS

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with override_settings(MLFLOW_TRACKING_URI=uri, MLFLOW_ARTIFACT_ROOT=str(tmp_path / "art"), MLFLOW_REGISTRY_URI=""):
        call_command("log_demo_models", stdout=StringIO())
        project.mlflow_registered_model = "support-assistant"
        project.save()
        result = registry_sync(project=project)

    assert result.created == ["1", "2"]
    one, two = ModelVersion.objects.order_by("version")
    assert one.prompt_template == VARIANTS["v1"].prompt_template == "{answer}"
    assert two.prompt_template == VARIANTS["v2"].prompt_template
    assert (one.params["top_k"], two.params["top_k"]) == ("1", "3")
    assert two.tags == {"reviewdesk.demo_variant": "v2"} and "variant v2" in two.description
