"""The one jobs kernel (reviewapp.jobs): claim, renew, finish and fail, and the one sweeper over every kind.

The sweeper and worker tests are parametrised over the registry, so a kind added to it is covered
(and fails here until ``ROWS`` below can make a row of it). The worker test here only simulates the
kill (a claim with a dead owner, its message purged); a real SIGKILL of a worker mid-job, per kind,
is the test named in ``REAL_KILLS`` below, and a kind without one fails here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from evaluations.models import RunChunk, RunMlflowLog
from evaluations.services.chunks import run_chunk_execute
from evaluations.services.runs import run_start
from evaluations.services.suites import suite_create
from pipelines.datasets.assessments import assessment_syncs_prepare, mlflow_dataset_export_create
from pipelines.datasets.export_jobs import export_job_create
from pipelines.datasets.pushes import push_create
from pipelines.models import (
    AssessmentSync,
    Environment,
    ExportJob,
    MlflowDatasetExport,
    MonitoringRefresh,
    PromotionRequest,
    Push,
    Rollout,
    SourcePull,
)
from pipelines.releases.rollout.queueing import rollout_create
from pipelines.sources.pulls import source_pull_request
from pipelines.sources.services import source_create
from reviewapp.celery import app
from reviewapp.jobs import (
    Job,
    JobKind,
    job_claim,
    job_fail,
    job_finish,
    job_kind_get,
    job_kinds,
    job_renew,
    jobs_sweep,
)
from reviewapp.models import Project, ProjectSync
from reviewapp.services.projects import project_set_reviews_per_item
from tests.evaluations.conftest import curate, ingest, rag_row
from tests.factories import make_items, member
from tests.pipelines.promotion_fixtures import versions
from tests.pipelines.test_delta_push import canonical, make_version
from tests.workers import Cluster, wait_for

KINDS = [kind.name for kind in job_kinds()]


# --- one row of each kind, as created by its own service -------------------------------------------


def run_chunk_row(project: Project, _tmp: Any) -> RunChunk:
    ingest(project, [rag_row(n) for n in range(3)])
    version = suite_create(project=project, name="Kernel", scorers=["pii"], config={}, actor=None).versions.get()
    run = run_start(project=project, suite_version=version, actor=None)
    return RunChunk.objects.get(run=run)


def run_mlflow_log_row(project: Project, tmp_path: Any) -> RunMlflowLog:
    """A run that just finished: its MLflow logging is queued."""
    chunk = run_chunk_row(project, tmp_path)
    run_chunk_execute(chunk_id=chunk.pk)
    return RunMlflowLog.objects.get(run_id=chunk.run_id)


def push_row(project: Project, tmp_path: Any) -> Push:
    with override_settings(DELTA_ROOT=str(tmp_path / "delta")):
        version = make_version(project, [canonical(n) for n in range(3)])
        return push_create(project=project, dataset_version=version, user=None)


def export_job_row(project: Project, _tmp: Any) -> ExportJob:
    version = make_version(project, [canonical(n) for n in range(3)], name="exported")
    return export_job_create(project=project, user=None, fmt="jsonl", shape="mlflow", version=version)


def rollout_row(project: Project, _tmp: Any) -> Rollout:
    """A rollout of a version the registry does not know: a worker that takes it fails it on its first step."""
    (v1,) = versions(project, 1, name="jobs-kernel-model")
    environment = Environment.objects.create(project=project, name="staging", alias="kernel", ready_timeout_seconds=2)
    request = PromotionRequest.objects.create(
        project=project, model_version=v1, environment=environment, requested_by=member(project, "engineer")
    )
    with transaction.atomic():
        return rollout_create(request=request, environment=environment, to_version=v1, from_version=None)


def assessment_sync_row(project: Project, _tmp: Any) -> AssessmentSync:
    """A label version's ledger row, for a trace MLflow does not have: a worker fails it with the reason."""
    (item,) = ingest(project, [rag_row(0, trace_id="tr-00000000000000000000000000000001")])
    reviewer = member(project, "reviewer")
    curate(item, reviewer, {"correct": True})
    (sync_id,) = assessment_syncs_prepare(project=project)
    return AssessmentSync.objects.get(pk=sync_id)


def mlflow_dataset_export_row(project: Project, _tmp: Any) -> MlflowDatasetExport:
    version = make_version(project, [canonical(n) for n in range(3)], name="to-mlflow")
    return mlflow_dataset_export_create(version=version)


def project_sync_row(project: Project, _tmp: Any) -> ProjectSync:
    """Reviews per item changed on a project with items: the sync of its slots and labels is queued."""
    make_items(project, 3)
    return project_set_reviews_per_item(project=project, reviews_per_item=2).sync  # type: ignore[attr-defined]


def source_pull_row(project: Project, _tmp: Any) -> SourcePull:
    """A pull of an experiment MLflow does not have: a worker that takes it fails it with the reason."""
    source = source_create(
        project=project,
        values={"name": "kernel", "kind": "mlflow_traces", "settings": {"experiment": "no-such-kernel-experiment"}},
        actor=None,
    )
    return source_pull_request(source=source, actor=None)


def monitoring_refresh_row(project: Project, _tmp: Any) -> MonitoringRefresh:
    from pipelines.sources.monitoring import monitoring_refresh_queue

    (refresh_id,) = monitoring_refresh_queue(projects=[project])
    return MonitoringRefresh.objects.get(pk=refresh_id)


ROWS: dict[str, Callable[[Project, Any], Job]] = {
    "reviewapp.project_sync": project_sync_row,
    "evaluations.run_chunk": run_chunk_row,
    "evaluations.run_mlflow_log": run_mlflow_log_row,
    "pipelines.push": push_row,
    "pipelines.export_job": export_job_row,
    "pipelines.rollout": rollout_row,
    "pipelines.assessment_sync": assessment_sync_row,
    "pipelines.mlflow_dataset_export": mlflow_dataset_export_row,
    "pipelines.source_pull": source_pull_row,
    "pipelines.monitoring_refresh": monitoring_refresh_row,
}
# Kinds whose row above a worker can finish for real here; the others end failed, through their own path.
SUCCEEDS = {
    "reviewapp.project_sync",
    "evaluations.run_chunk",
    "evaluations.run_mlflow_log",
    "pipelines.push",
    "pipelines.export_job",
    "pipelines.mlflow_dataset_export",
    "pipelines.monitoring_refresh",
}


# For each kind, the test that SIGKILLs a real worker in the middle of a job of the kind and asserts
# that another worker, after the sweeper, finishes it exactly once.
REAL_KILLS: dict[str, str] = {
    "reviewapp.project_sync": "tests/reviewapp/test_project_sync_workers.py"
    "::test_a_sync_killed_half_way_resumes_at_its_cursor_on_another_worker",
    "evaluations.run_chunk": "tests/evaluations/test_run_workers.py"
    "::test_a_worker_killed_mid_run_its_chunk_is_finished_by_another_after_the_sweeper",
    "evaluations.run_mlflow_log": "tests/test_jobs_killed_workers.py"
    "::test_an_evaluation_runs_mlflow_logging_killed_half_way_logs_one_mlflow_run",
    "pipelines.push": "tests/pipelines/test_pushes_workers.py"
    "::test_a_push_killed_half_way_is_finished_once_by_another_worker",
    "pipelines.export_job": "tests/test_jobs_killed_workers.py"
    "::test_an_export_killed_half_way_is_written_once_complete",
    "pipelines.rollout": "tests/pipelines/test_rollout_soak_worker.py"
    "::test_a_soak_killed_half_way_resumes_on_another_worker",
    "pipelines.assessment_sync": "tests/test_jobs_killed_workers.py"
    "::test_an_assessment_sync_killed_half_way_writes_each_assessment_once",
    "pipelines.mlflow_dataset_export": "tests/test_jobs_killed_workers.py"
    "::test_an_mlflow_dataset_export_killed_half_way_makes_one_dataset",
    "pipelines.source_pull": "tests/pipelines/test_sources_workers.py"
    "::test_a_pull_killed_mid_way_is_finished_by_another_worker_without_duplicates",
    "pipelines.monitoring_refresh": "tests/pipelines/test_monitoring_workers.py"
    "::test_a_refresh_killed_half_way_is_finished_by_another_worker_and_equals_a_full_recompute",
}


def make_row(name: str, project: Project, tmp_path: Any) -> Job:
    assert name in ROWS, f"Job kind {name} has no row factory in tests/test_jobs_kernel.py: add one."
    return ROWS[name](project, tmp_path)


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, list[Any]]]:
    """Tasks sent to the broker (Celery's boundary): (name, args)."""
    calls: list[tuple[str, list[Any]]] = []

    def send_task(name: str, args: Any = None, *_rest: Any, **_kwargs: Any) -> None:
        calls.append((name, list(args or [])))

    monkeypatch.setattr(app, "send_task", send_task)
    return calls


def kind_named(name: str) -> JobKind:
    return next(k for k in job_kinds() if k.name == name)


# --- the registry and the schedule ---------------------------------------------------------------


def test_the_registry_holds_every_kind_and_their_tasks_exist() -> None:
    app.loader.import_default_modules()
    assert "evaluations.run_chunk" in KINDS
    for kind in job_kinds():
        assert kind.task in app.tasks, kind.name
        assert issubclass(kind.model, Job) and job_kind_get(kind.model) is kind
        statuses = {value for value, _ in kind.model._meta.get_field("status").choices}
        for state in ("JOB_QUEUED", "JOB_RUNNING", "JOB_DONE", "JOB_FAILED"):
            assert getattr(kind.model, state) in statuses, (kind.name, state)


def test_beat_sweeps_every_kind_at_its_interval() -> None:
    """The sweeper's beat entries come from the registry (tests/test_beat_schedule.py starts beat itself)."""
    from tests.test_beat_schedule import assert_every_kind_swept_at_its_interval, sweeper_entries

    app.loader.import_default_modules()
    assert_every_kind_swept_at_its_interval(sweeper_entries(app.conf.beat_schedule))


def test_every_kind_has_a_real_kill_test() -> None:
    """A registered kind needs a test that kills a real worker mid-job (add it to REAL_KILLS)."""
    assert set(KINDS) - set(REAL_KILLS) == set(), "kinds without a real SIGKILL-mid-job test"
    assert set(REAL_KILLS) - set(KINDS) == set(), "REAL_KILLS names kinds no longer registered"
    for name, node in REAL_KILLS.items():
        path, test = node.split("::")
        source = (settings.BASE_DIR / path).read_text()
        assert re.search(rf"^def {test}\(", source, re.M), (name, node)
        body = source[source.index(f"def {test}(") :].split("\ndef ", 1)[0]
        assert ".kill()" in body or "kill_when(" in body, (name, node)  # it really kills a worker


# --- claim, renew, finish, fail ------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("name", KINDS)
def test_a_job_is_claimed_once_renewed_by_its_owner_and_finished(name: str, project: Project, tmp_path: Any) -> None:
    model = kind_named(name).model
    row = make_row(name, project, tmp_path)
    owner = job_claim(model, row.pk)
    assert owner is not None
    assert job_claim(model, row.pk) is None  # held: a second worker (or a redelivery) gets nothing
    row.refresh_from_db()
    assert (row.status, row.lease_owner, row.attempts) == (model.JOB_RUNNING, owner, 1)
    assert row.started_at is not None and row.lease_expires_at > timezone.now()

    assert job_renew(model, row.pk, owner) and not job_renew(model, row.pk, "someone-else")
    assert not job_finish(model, row.pk, "someone-else")
    assert job_finish(model, row.pk, owner)
    row.refresh_from_db()
    assert (row.status, row.lease_owner, row.lease_expires_at) == (model.JOB_DONE, "", None)
    assert row.finished_at is not None
    assert job_claim(model, row.pk) is None  # finished is final


@pytest.mark.django_db
@pytest.mark.parametrize("name", KINDS)
def test_an_expired_lease_is_taken_over_and_the_old_owner_can_no_longer_write(
    name: str, project: Project, tmp_path: Any
) -> None:
    model = kind_named(name).model
    row = make_row(name, project, tmp_path)
    dead = job_claim(model, row.pk)
    assert dead is not None
    model._default_manager.filter(pk=row.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    alive = job_claim(model, row.pk)
    assert alive is not None and alive != dead
    assert not job_renew(model, row.pk, dead) and not job_fail(model, row.pk, dead, "late", transient=False)
    row.refresh_from_db()
    assert (row.status, row.lease_owner, row.attempts) == (model.JOB_RUNNING, alive, 2)


@pytest.mark.django_db
@pytest.mark.parametrize("name", KINDS)
def test_a_transient_failure_requeues_and_a_permanent_one_fails(name: str, project: Project, tmp_path: Any) -> None:
    model = kind_named(name).model
    row = make_row(name, project, tmp_path)
    owner = job_claim(model, row.pk)
    assert owner is not None and job_fail(model, row.pk, owner, "server down", transient=True)
    row.refresh_from_db()
    assert (row.status, row.lease_owner, row.error) == (model.JOB_QUEUED, "", "server down")
    owner = job_claim(model, row.pk)
    assert owner is not None and job_fail(model, row.pk, owner, "bad input", transient=False)
    row.refresh_from_db()
    assert (row.status, row.error, row.attempts) == (model.JOB_FAILED, "bad input", 2)
    assert row.finished_at is not None and job_claim(model, row.pk) is None


@pytest.mark.django_db
@pytest.mark.parametrize("name", [k.name for k in job_kinds() if k.max_attempts is not None])
def test_no_claim_beyond_the_kinds_attempts(name: str, project: Project, tmp_path: Any) -> None:
    kind = kind_named(name)
    row = make_row(name, project, tmp_path)
    limit = kind.max_attempts() if callable(kind.max_attempts) else kind.max_attempts
    kind.model._default_manager.filter(pk=row.pk).update(attempts=limit)
    assert job_claim(kind.model, row.pk) is None


# --- the sweeper ---------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("name", KINDS)
def test_every_kind_is_swept(
    name: str, project: Project, tmp_path: Any, sent: list[tuple[str, list[Any]]], django_capture_on_commit_callbacks
) -> None:
    """A worker died holding the row (lease expired): the one sweeper puts it back and sends its task."""
    kind = kind_named(name)
    model = kind.model
    row = make_row(name, project, tmp_path)
    past = timezone.now() - timedelta(seconds=5)
    model._default_manager.filter(pk=row.pk).update(
        status=model.JOB_RUNNING, lease_owner="dead-worker", lease_expires_at=past, attempts=1
    )
    sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        swept = jobs_sweep()
    assert swept[name].requeued >= 1
    row.refresh_from_db()
    assert (row.status, row.lease_owner, row.lease_expires_at) == (model.JOB_QUEUED, "", None)
    assert (kind.task, [row.pk]) in sent

    # out of attempts: failed instead, with the reason
    if kind.max_attempts is not None:
        limit = kind.max_attempts() if callable(kind.max_attempts) else kind.max_attempts
        model._default_manager.filter(pk=row.pk).update(
            status=model.JOB_RUNNING, lease_owner="dead-worker", lease_expires_at=past, attempts=limit
        )
        with django_capture_on_commit_callbacks(execute=True):
            swept = jobs_sweep()
        row.refresh_from_db()
        assert swept[name].failed == 1 and row.status == model.JOB_FAILED and "Gave up after" in row.error


@pytest.mark.django_db
@pytest.mark.parametrize("name", KINDS)
def test_a_queued_job_whose_message_was_lost_is_sent_again(
    name: str, project: Project, tmp_path: Any, sent: list[tuple[str, list[Any]]], django_capture_on_commit_callbacks
) -> None:
    kind = kind_named(name)
    row = make_row(name, project, tmp_path)
    resend = kind.resend_after_seconds() if callable(kind.resend_after_seconds) else kind.resend_after_seconds
    kind.model._default_manager.filter(pk=row.pk).update(
        status=kind.model.JOB_QUEUED, enqueued_at=timezone.now() - timedelta(seconds=float(resend) + 5)
    )
    sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        jobs_sweep()
    assert (kind.task, [row.pk]) in sent
    sent.clear()
    with django_capture_on_commit_callbacks(execute=True):
        jobs_sweep()  # just sent: not again
    assert (kind.task, [row.pk]) not in sent


# --- a killed worker, on real workers ------------------------------------------------------------


@pytest.fixture
def short_leases(tmp_path: Any) -> Iterator[Cluster]:
    """Workers with short leases: a dead worker's job is claimable again within seconds."""
    from tests.workers import cluster_running

    with cluster_running(
        tmp_path,
        EVALUATION_CHUNK_LEASE_SECONDS="4",
        DELIVERY_PUSH_LEASE_SECONDS="4",
        ROLLOUT_LEASE_SECONDS="4",
        ROLLOUT_STEP_MAX_ATTEMPTS="1",
        MLFLOW_REGISTRY_URI=f"sqlite:///{tmp_path / 'mlflow.db'}",  # the cluster's store: no model there
        REVIEWDESK_VAR_DIR=str(tmp_path / "var"),
        DELTA_ROOT=str(tmp_path / "delta"),
    ) as started:
        yield started


@pytest.mark.slow  # real Celery workers (its own cluster, not the `cluster` fixture)
@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("name", KINDS)
def test_a_killed_workers_job_is_taken_up_again(name: str, project: Project, tmp_path: Any, short_leases: Cluster):
    """What a worker killed mid-job leaves (the row running under its lease, its message gone with it):
    the one sweeper hands the row to another worker, which finishes it. (A real SIGKILL mid-job, per
    kind: REAL_KILLS above.)"""
    from reviewapp.tasks import jobs_sweep as jobs_sweep_task

    kind = kind_named(name)
    model = kind.model
    row = make_row(name, project, tmp_path)  # its service sent its task, which no worker took yet
    dead = job_claim(model, row.pk)
    assert dead is not None
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(short_leases.queue)  # the message died with the worker
    model._default_manager.filter(pk=row.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    attempts = model._default_manager.get(pk=row.pk).attempts

    rescuer = short_leases.start_worker("rescuer")

    def finished() -> bool:
        jobs_sweep_task.delay()  # what beat does every 30 s, here every poll
        row.refresh_from_db()
        return row.status not in (model.JOB_QUEUED, model.JOB_RUNNING)

    assert wait_for(finished, timeout=120, interval=1.0), rescuer.log[-4000:]
    assert row.attempts == attempts + 1, rescuer.log[-4000:]  # claimed once more, by the rescuer
    assert row.status == (model.JOB_DONE if name in SUCCEEDS else model.JOB_FAILED), (row.error, rescuer.log[-4000:])
    assert "reviewapp.jobs_sweep" in rescuer.log and f"{kind.task}[" in rescuer.log
