"""A project may only touch its own outside resources (issue 11 §1), at the interfaces people use:
ports and serving endpoints are owned; Delta and Unity Catalog targets are confined; endpoint keys
come only from REVIEWDESK_SECRET_* variables and outgoing URLs never reach private or metadata
addresses unless allowed; only the project's registered model is evaluated or promoted; model servers
start without the application's secrets. Each case failed before its fix."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from evaluations.endpoints import endpoint_create
from evaluations.services.suites import suite_create
from pipelines.adapters.errors import PermanentPipelineError, PipelineError
from pipelines.adapters.llm_client import EndpointConfig, chat_complete
from pipelines.models import Environment, ModelVersion
from pipelines.releases.serving.local import local_proxy_ensure, local_routes_read, local_serving_stop_all, port_owner
from pipelines.releases.webhooks import webhook_deliver
from pipelines.wiring import mlflow_config, outbound_rules
from reviewapp.errors import ValidationFailed
from reviewapp.models import Membership, Project
from tests.factories import ProjectFactory, member, standard_questions
from tests.fakes.http import FakeHttpServer, Reply, Request, route
from tests.pipelines.promotion_fixtures import engineers, versions

pytestmark = pytest.mark.django_db


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def session(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def other() -> Project:
    """Project A, whose resources project B (the ``project`` fixture, "support") must not touch."""
    project = ProjectFactory(slug="alpha", name="Alpha bank")
    standard_questions(project)
    return project


# --- ports and serving endpoints --------------------------------------------------------------------


def test_an_environment_cannot_take_another_projects_port_or_endpoint(project, other) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    Environment.objects.create(project=other, name="production", alias="champion", local_port=port)
    Environment.objects.create(
        project=other, name="dbx", alias="dbx", serving_kind="databricks", serving_endpoint="alpha-prod"
    )
    mine = Environment.objects.create(project=project, name="staging", alias="staging", local_port=free_port())
    stranger = session(member(project, "admin", username="bea"))
    both = member(project, "admin", username="ana")
    Membership.objects.create(project=other, user=both, role="reviewer")  # may see project A
    url = "/api/v1/projects/support/environments/staging/"

    refused = stranger.patch(url, {"local_port": port}, content_type="application/json")
    assert refused.status_code == 409, refused.json()
    assert "already in use" in refused.json()["detail"] and "Alpha" not in refused.json()["detail"]
    named = session(both).patch(url, {"local_port": port}, content_type="application/json")
    assert named.status_code == 409 and "Alpha bank" in named.json()["detail"]
    endpoint = stranger.patch(url, {"serving_endpoint": "alpha-prod"}, content_type="application/json")
    assert endpoint.status_code == 409 and "already in use" in endpoint.json()["detail"]
    created = stranger.post(
        "/api/v1/projects/support/environments/",
        {"name": "qa", "local_port": port},
        content_type="application/json",
    )
    assert created.status_code == 409
    mine.refresh_from_db()
    assert mine.local_port != port and not Environment.objects.filter(project=project, name="qa").exists()


def test_default_environments_of_a_second_project_get_their_own_ports(project, other) -> None:  # type: ignore[no-untyped-def]
    from pipelines.releases.promotion import environments_ensure_default

    first = environments_ensure_default(project=other, base_port=6400)
    second = environments_ensure_default(project=project, base_port=6400)
    ports = [e.local_port for e in first + second]
    assert ports[:2] == [6401, 6402] and len(set(ports)) == 4


def test_the_local_proxy_refuses_routes_for_an_environment_that_does_not_own_its_port(
    project, other, settings, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    settings.LOCAL_SERVING_DIR = tmp_path / "serving"
    port = free_port()
    owner = Environment.objects.create(project=other, name="production", alias="champion", local_port=port)
    intruder = Environment.objects.create(project=project, name="staging", alias="staging", local_port=free_port())
    try:
        proxy = local_proxy_ensure(port=port, deadline=time.monotonic() + 30, environment=owner)
        assert local_routes_read(port=port)["owner"] == port_owner(owner)
        with pytest.raises(PermanentPipelineError, match="does not own"):
            local_proxy_ensure(port=port, deadline=time.monotonic() + 30, environment=intruder)
        # Even a routes file written behind the engine's back for another owner is not taken.
        import json

        Path(proxy["routes"]).write_text(
            json.dumps(
                {
                    "generation": 9,
                    "routes": [{"name": "x", "version": "9", "port": 1, "weight": 100}],
                    "owner": port_owner(intruder),
                }
            )
        )
        time.sleep(0.3)
        assert local_routes_read(port=port)["routes"] == [] and local_routes_read(port=port)["generation"] == 0
    finally:
        local_serving_stop_all()


# --- Delta and Unity Catalog targets ----------------------------------------------------------------


@pytest.fixture
def curators(project, other, settings, tmp_path: Path) -> dict[str, Client]:  # type: ignore[no-untyped-def]
    settings.DELTA_ROOT = str(tmp_path / "delta")
    settings.DELTA_ALLOWED_ROOTS = [str(tmp_path / "delta"), "s3://lake/reviewdesk/"]
    return {
        "b": session(member(project, "curator", username="cory")),
        "a": session(member(other, "curator", username="alba")),
    }


def create_target(client: Client, slug: str, target: str, kind: str = "delta") -> Any:
    return client.post(
        f"/api/v1/projects/{slug}/delivery-targets/", {"kind": kind, "target": target}, content_type="application/json"
    )


@pytest.mark.parametrize(
    "target",
    [
        "/etc/reviewdesk",
        str(Path.home() / ".ssh" / "table"),
        "s3://other-bucket/curated",
        "s3://169.254.169.254/latest/meta-data",
        "s3://metadata.google.internal/x",
        "gs://[fd00:ec2::254]/x",
    ],
)
def test_delta_targets_outside_the_allowed_roots_or_on_metadata_hosts_are_refused(curators, target: str) -> None:  # type: ignore[no-untyped-def]
    response = create_target(curators["b"], "support", target)
    assert response.status_code == 400, response.json()
    assert response.json()["errors"][0]["field"] == "target"


def test_a_symlink_out_of_the_root_is_refused(curators, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "delta").mkdir()
    (tmp_path / "delta" / "escape").symlink_to(tmp_path / "outside", target_is_directory=True)
    assert create_target(curators["b"], "support", str(tmp_path / "delta" / "escape" / "t")).status_code == 400


def test_a_table_location_belongs_to_one_project(curators, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "delta"
    assert create_target(curators["a"], "alpha", str(root / "alpha" / "curated")).status_code == 201
    assert create_target(curators["a"], "alpha", "s3://lake/reviewdesk/alpha").status_code == 201
    for clash in (str(root / "alpha" / "curated"), str(root / "alpha" / "curated" / "inner"), str(root / "alpha")):
        response = create_target(curators["b"], "support", clash)
        assert response.status_code == 409, (clash, response.json())
        assert "already in use" in response.json()["detail"] and "Alpha" not in response.json()["detail"]
    assert create_target(curators["b"], "support", "s3://lake/reviewdesk/alpha/").status_code == 409
    page = curators["b"].post(
        "/projects/support/deliveries/targets/", {"kind": "delta", "target": str(root / "alpha" / "curated")}
    )
    assert page.status_code == 409 and "already in use" in page.content.decode()
    assert create_target(curators["b"], "support", str(root / "support" / "curated")).status_code == 201


def test_unity_catalog_targets_only_in_the_schemas_allowed_to_the_project(curators, settings) -> None:  # type: ignore[no-untyped-def]
    settings.UC_ALLOWED_SCHEMAS_RAW = "alpha=main.alpha;*=sandbox.*"
    refused = create_target(curators["b"], "support", "main.alpha.curated", kind="unity_catalog")
    assert refused.status_code == 400 and "UC_ALLOWED_SCHEMAS" in refused.json()["errors"][0]["message"]
    assert create_target(curators["a"], "alpha", "main.alpha.curated", kind="unity_catalog").status_code == 201
    assert create_target(curators["b"], "support", "sandbox.anything.t", kind="unity_catalog").status_code == 201
    settings.UC_ALLOWED_SCHEMAS_RAW = ""
    assert create_target(curators["b"], "support", "sandbox.anything.u", kind="unity_catalog").status_code == 400


# --- secrets and outgoing URLs ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["DATABASE_URL", "SECRET_KEY", "AWS_SECRET_ACCESS_KEY", "DATABRICKS_TOKEN", "OPENAI_KEY"]
)
def test_endpoint_keys_come_only_from_prefixed_variables(name: str, client: Client) -> None:
    with pytest.raises(ValidationFailed) as caught:
        endpoint_create(
            name="leaky", kind="openai_compatible", url="https://api.openai.com/v1", model="m", credential_env=name
        )
    assert (
        caught.value.errors[0]["field"] == "credential_env"
        and "REVIEWDESK_SECRET_" in caught.value.errors[0]["message"]
    )
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw-for-tests-1")
    client.force_login(admin)
    form = {
        "name": "leaky",
        "kind": "openai_compatible",
        "url": "https://api.openai.com/v1",
        "model": "m",
        "credential_env": name,
        "timeout_seconds": "30",
        "max_retries": "3",
        "max_concurrency": "4",
    }
    assert client.post("/admin/evaluations/endpoint/add/", form).status_code == 200  # the form shows the error
    endpoint_create(
        name="ok",
        kind="openai_compatible",
        url="https://api.openai.com/v1",
        model="m",
        credential_env="REVIEWDESK_SECRET_OPENAI_KEY",
    )


def test_a_declared_endpoint_cannot_read_an_application_secret(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SECRET_KEY", "s3cr3t-value-never-sent")
    endpoint = EndpointConfig(
        name="e", kind="openai_compatible", url="http://127.0.0.1:9/v1", credential_env="SECRET_KEY"
    )
    with pytest.raises(PermanentPipelineError) as caught:
        chat_complete(endpoint, [{"role": "user", "content": "hi"}], rules=outbound_rules())
    assert "REVIEWDESK_SECRET_" in caught.value.message and "s3cr3t" not in caught.value.message


@pytest.mark.parametrize(
    "url",
    [
        "http://10.1.2.3/v1",
        "http://192.168.0.10:8000/v1",
        "http://169.254.169.254/latest",
        "http://[fd00:ec2::254]/",
        "http://metadata.google.internal/computeMetadata/v1",
        "http://localhost:11434/v1",
        "http://127.0.0.1:8000/v1",
    ],
)
def test_endpoint_urls_to_private_and_metadata_addresses_are_refused(url: str, settings) -> None:  # type: ignore[no-untyped-def]
    settings.OUTBOUND_ALLOWED_HOSTS = []
    with pytest.raises(ValidationFailed) as caught:
        endpoint_create(name="inside", kind="openai_compatible", url=url, model="m")
    assert caught.value.errors[0]["field"] == "url"
    assert url not in caught.value.errors[0]["message"]


def test_the_operator_may_allow_a_private_network_but_never_metadata(settings) -> None:  # type: ignore[no-untyped-def]
    settings.OUTBOUND_ALLOWED_HOSTS = ["10.0.0.0/8", "vllm.internal"]
    endpoint_create(name="vllm", kind="openai_compatible", url="http://10.1.2.3/v1", model="m")
    endpoint_create(name="named", kind="openai_compatible", url="http://vllm.internal/v1", model="m")
    with pytest.raises(ValidationFailed):
        endpoint_create(name="meta", kind="openai_compatible", url="http://169.254.169.254/", model="m")


class Chat(FakeHttpServer):
    @route("POST", r"/v1/chat/completions")
    def chat(self, request: Request) -> Reply:
        return Reply(200, {"model": "m", "choices": [{"message": {"content": "hello"}}]})

    @route("POST", r"/hook")
    def hook(self, request: Request) -> Reply:
        return Reply(204)


def test_calls_and_webhooks_to_loopback_need_the_operators_permission(settings) -> None:  # type: ignore[no-untyped-def]
    with Chat().running() as server:
        endpoint = EndpointConfig(name="local", kind="openai_compatible", url=f"{server.url}/v1", model="m")
        settings.PROMOTION_WEBHOOK_URLS = [f"{server.url}/hook"]
        assert (
            chat_complete(endpoint, [{"role": "user", "content": "hi"}], rules=outbound_rules()).content == "hello"
        )  # tests allow loopback
        assert webhook_deliver(url=f"{server.url}/hook", payload={"event": "x"}) == 204
        sent = len(server.requests)
        settings.OUTBOUND_ALLOWED_HOSTS = []
        with pytest.raises(PermanentPipelineError) as chat_error:
            chat_complete(endpoint, [{"role": "user", "content": "hi"}], rules=outbound_rules())
        with pytest.raises(PermanentPipelineError) as hook_error:
            webhook_deliver(url=f"{server.url}/hook", payload={"event": "x"})
        assert len(server.requests) == sent  # nothing left the process
        for error in (chat_error.value, hook_error.value):
            assert "loopback" in error.message and server.url not in error.message and "127.0.0.1" not in error.message


def test_a_databricks_host_on_a_metadata_address_is_never_called(settings) -> None:  # type: ignore[no-untyped-def]
    from pipelines.adapters.databricks import DatabricksConfig, workspace_client

    config = DatabricksConfig(
        host="http://169.254.169.254", token="dapi-x", timeout_seconds=1, outbound=outbound_rules()
    )
    with pytest.raises(PermanentPipelineError, match="metadata"):
        workspace_client(config)


# --- model code ---------------------------------------------------------------------------------------


def test_promotions_accept_only_the_projects_registered_model(project) -> None:  # type: ignore[no-untyped-def]
    erin, _ezra, _ada = engineers(project)
    versions(project, 1, name="support-assistant")
    # A row of another registered model in this project (e.g. left from before the project renamed its model).
    ModelVersion.objects.create(
        project=project, registered_model="someone-elses-model", version="7", synced_at=timezone.now()
    )
    Environment.objects.create(project=project, name="production", alias="champion", local_port=free_port())
    response = session(erin).post(
        "/api/v1/promotions/",
        {
            "project": "support",
            "model_version": "7",
            "registered_model": "someone-elses-model",
            "environment": "production",
            "reason": "it is faster",
        },
        content_type="application/json",
    )
    assert response.status_code == 400, response.json()
    assert response.json()["errors"][0]["field"] == "model_version"
    assert "support-assistant" in response.json()["errors"][0]["message"]


def test_evaluation_targets_accept_only_the_projects_registered_model(project, settings) -> None:  # type: ignore[no-untyped-def]
    project.mlflow_registered_model = "support-assistant"
    project.save(update_fields=["mlflow_registered_model"])
    suite = suite_create(project=project, name="Core", scorers=["pii"], config=None, actor=None)
    client = session(member(project, "engineer", username="evan"))

    def start(target: dict[str, Any]) -> Any:
        return client.post(
            "/api/v1/runs/",
            {"project": "support", "suite": suite.pk, "target": target},
            content_type="application/json",
        )

    foreign = start({"kind": "mlflow_model", "model_uri": "models:/someone-elses-model/1"})
    assert foreign.status_code == 400, foreign.json()
    assert foreign.json()["errors"][0]["field"] == "target.model_uri"
    settings.EVALUATION_ENDPOINTS = [
        {"name": "sneaky", "kind": "mlflow_model", "model": "models:/someone-elses-model/1"}
    ]
    via_endpoint = start({"kind": "endpoint", "endpoint": "sneaky"})
    assert via_endpoint.status_code == 400 and via_endpoint.json()["errors"][0]["field"] == "target.endpoint"


@pytest.mark.slow
def test_a_model_server_starts_without_the_applications_secrets(settings, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from pipelines.demo_models import demo_models_ensure
    from pipelines.releases.serving.local import local_model_server_ensure, local_model_server_stop

    settings.MLFLOW_TRACKING_URI = f"sqlite:///{tmp_path / 'mlflow.db'}"
    settings.MLFLOW_ARTIFACT_ROOT = str(tmp_path / "mlartifacts")
    settings.LOCAL_SERVING_DIR = tmp_path / "serving"
    monkeypatch.setenv("DATABASE_URL", "postgres://app:db-password@db/reviewdesk")
    monkeypatch.setenv("SECRET_KEY", "the-django-secret-key")
    monkeypatch.setenv("DATABRICKS_TOKEN", "dapi-secret")
    monkeypatch.setenv("REVIEWDESK_SECRET_OPENAI_KEY", "sk-secret")
    uri = "models:/support-assistant/1"
    try:
        demo_models_ensure(model_name="support-assistant")
        server = local_model_server_ensure(model_uri=uri, deadline=time.monotonic() + 120, heartbeat=lambda: None)
        environ = Path(f"/proc/{server['pid']}/environ").read_bytes().split(b"\0")
        names = {entry.split(b"=", 1)[0].decode() for entry in environ if entry}
        assert "PATH" in names and "MLFLOW_TRACKING_URI" in names  # it still runs and finds its model
        for secret in ("DATABASE_URL", "SECRET_KEY", "DATABRICKS_TOKEN", "REVIEWDESK_SECRET_OPENAI_KEY"):
            assert secret not in names
        assert b"db-password" not in b"\0".join(environ) and os.environ["SECRET_KEY"].encode() not in b"\0".join(
            environ
        )
    finally:
        local_model_server_stop(model_uri=uri)


@pytest.mark.slow
def test_evaluation_model_code_runs_without_the_applications_secrets(settings, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """An ``mlflow_model`` target's code runs in its own process: no database URL, secret key, tokens
    or registry address in its environment."""

    from pipelines.adapters import mlflow_registry
    from pipelines.demo_models import demo_models_ensure

    settings.MLFLOW_TRACKING_URI = f"sqlite:///{tmp_path / 'mlflow.db'}"
    settings.MLFLOW_ARTIFACT_ROOT = str(tmp_path / "mlartifacts")
    monkeypatch.setenv("DATABASE_URL", "postgres://app:db-password@db/reviewdesk")
    monkeypatch.setenv("SECRET_KEY", "the-django-secret-key")
    monkeypatch.setenv("DATABRICKS_TOKEN", "dapi-secret")
    monkeypatch.setenv("REVIEWDESK_SECRET_OPENAI_KEY", "sk-secret")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "postgresql://mlflow:mlflow-password@db/mlflow")
    demo_models_ensure(model_name="support-assistant")
    uri = "models:/support-assistant/2"

    [answer] = mlflow_registry.pyfunc_predict(
        mlflow_config(), model_uri=uri, inputs=[{"request": "Can I get a refund?"}]
    )
    runner = mlflow_registry.pyfunc_model_load(mlflow_config(), uri)
    try:
        assert "refund" in answer["response"].lower() and answer["retrieved_context"]
        assert runner.pid != os.getpid() and runner.alive()
        environ = Path(f"/proc/{runner.pid}/environ").read_bytes()
        names = {entry.split(b"=", 1)[0].decode() for entry in environ.split(b"\0") if entry}
        assert "PATH" in names
        for secret in ("DATABASE_URL", "SECRET_KEY", "DATABRICKS_TOKEN", "REVIEWDESK_SECRET_OPENAI_KEY"):
            assert secret not in names
        assert b"db-password" not in environ and b"mlflow-password" not in environ and b"sk-secret" not in environ
        assert mlflow_registry.pyfunc_model_load(mlflow_config(), uri) is runner  # one process per model, reused
    finally:
        runner.stop()


@pytest.mark.slow
def test_a_workspace_that_does_not_answer_is_reported_without_its_address() -> None:
    from pipelines.adapters import databricks

    port = free_port()  # nothing listens here
    with pytest.raises(PipelineError) as caught:
        databricks.serving_endpoint_get(
            databricks.DatabricksConfig(
                host=f"http://127.0.0.1:{port}", token="dapi-x", timeout_seconds=2, outbound=outbound_rules()
            ),
            name="e",
        )
    assert "127.0.0.1" not in caught.value.message and str(port) not in caught.value.message
