"""Background exports on a real Celery worker (Redis, the test database): the job writes a file that
downloads with the same bytes as the streamed export; a second delivery of the task changes nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.conf import settings

from pipelines.datasets.export_jobs import export_job_run
from pipelines.datasets.versions import dataset_create, dataset_version_create
from pipelines.models import ExportJob
from tests.pipelines.datasets_helpers import bearer, build_curated, session
from tests.workers import CeleryWorker, Cluster, wait_for

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker(cluster: Cluster) -> CeleryWorker:
    """One worker writing under this test's var folder, where the download reads the file."""
    return cluster.start_worker("export", REVIEWDESK_VAR_DIR=str(settings.VAR_DIR))


def test_a_background_export_writes_a_downloadable_file(project, reviewer, reviewer2, curator, worker):
    build_curated(project, reviewer, reviewer2, curator)
    dataset = dataset_create(project=project, user=curator, name="all")
    version = dataset_version_create(dataset=dataset, user=curator)
    client = bearer(curator, "export")
    created = client.post(
        "/api/v1/projects/support/exports/",
        {"dataset": dataset.pk, "version": 1, "format": "csv", "shape": "agent-eval"},
        content_type="application/json",
    )
    assert created.status_code == 202, created.json()
    job_id = created.json()["id"]
    assert created.json()["status"] == "queued" and created.json()["rows_total"] == 4

    def done() -> Any:
        job = ExportJob.objects.get(pk=job_id)
        return job.is_finished and job

    assert wait_for(done, timeout=60, interval=0.5), worker.log[-3000:]
    status = client.get(f"/api/v1/exports/{job_id}/").json()
    assert status["status"] == "done", status
    assert (status["rows_done"], status["percent"]) == (4, 100)
    download = client.get(status["download_url"])
    assert download.status_code == 200
    assert download["Content-Disposition"] == 'attachment; filename="support-all-v1-agent-eval.csv"'
    file_bytes = b"".join(download.streaming_content)
    streamed = client.get(
        f"/api/v1/datasets/{dataset.pk}/versions/{version.number}/export/?format=csv&shape=agent-eval"
    )
    assert file_bytes == b"".join(streamed.streaming_content)
    files = sorted(p.name for p in (Path(settings.VAR_DIR) / "exports").glob(f"job-{job_id}.csv*"))
    assert files == [f"job-{job_id}.csv"]  # no temporary file left behind
    # A redelivered task finds the job finished and leaves it alone.
    export_job_run(job_id=job_id)
    job = ExportJob.objects.get(pk=job_id)
    assert job.status == "done" and job.attempts == 1
    assert worker.succeeded("pipelines.export_job_run") == 1


def test_a_live_background_export_and_its_permissions(project, reviewer, reviewer2, curator, worker):
    build_curated(project, reviewer, reviewer2, curator)
    client = session(curator)
    created = client.post(
        "/api/v1/projects/support/exports/",
        {"format": "jsonl", "shape": "sft", "compression": "gzip", "filter": {"model_version": "1"}},
        content_type="application/json",
    )
    assert created.status_code == 202
    job_id = created.json()["id"]
    assert session(reviewer).get(f"/api/v1/exports/{job_id}/download/").status_code == 403
    assert wait_for(lambda: ExportJob.objects.get(pk=job_id).is_finished, timeout=60, interval=0.5), worker.log
    import gzip
    import json

    download = client.get(f"/api/v1/exports/{job_id}/download/")
    lines = gzip.decompress(b"".join(download.streaming_content)).decode().splitlines()
    assert [json.loads(line)["provenance"]["external_id"] for line in lines] == ["ext-0", "ext-2"]
    bad = client.post(
        "/api/v1/projects/support/exports/", {"format": "xml", "filter": {"nope": 1}}, content_type="application/json"
    )
    assert bad.status_code == 400 and "format" in [e["field"] for e in bad.json()["errors"]]
