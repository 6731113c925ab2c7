"""Finished background exports keep their file for EXPORT_RETENTION_HOURS, then it is deleted."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from pipelines.datasets.export_jobs import (
    export_job_create,
    export_job_file,
    export_job_run,
    export_jobs_expire,
    exports_dir,
)
from pipelines.datasets.versions import dataset_create, dataset_version_create
from pipelines.models import ExportJob
from tests.pipelines.datasets_helpers import bearer, build_curated

pytestmark = pytest.mark.django_db


def finished_job(project, reviewer, reviewer2, curator) -> ExportJob:  # type: ignore[no-untyped-def]
    build_curated(project, reviewer, reviewer2, curator)
    dataset = dataset_create(project=project, user=curator, name="all")
    version = dataset_version_create(dataset=dataset, user=curator)
    job = export_job_create(project=project, user=curator, fmt="jsonl", shape="mlflow", version=version)
    export_job_run(job_id=job.pk)  # the task's service, run here
    job.refresh_from_db()
    assert job.status == ExportJob.Status.DONE
    return job


def test_files_older_than_the_retention_are_deleted_and_the_download_says_why(
    project, reviewer, reviewer2, curator, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.EXPORT_RETENTION_HOURS = 24
    job = finished_job(project, reviewer, reviewer2, curator)
    path = export_job_file(job)
    assert path is not None and path.is_file()
    client = bearer(curator, "export")
    assert client.get(f"/api/v1/exports/{job.pk}/download/").status_code == 200

    assert export_jobs_expire(now=timezone.now() + timedelta(hours=23)) == 0  # still within the retention
    assert path.is_file()

    stale_part = exports_dir() / "job-999.jsonl.0123abcd.part"
    stale_part.write_bytes(b"half")
    assert export_jobs_expire(now=timezone.now() + timedelta(hours=25)) == 1
    assert not path.exists() and not stale_part.exists()
    job.refresh_from_db()
    assert (job.status, job.file_path) == (ExportJob.Status.EXPIRED, "")
    assert job.is_finished  # the page stops polling it
    gone = client.get(f"/api/v1/exports/{job.pk}/download/")
    assert gone.status_code == 410 and gone.json()["code"] == "expired"
    assert export_jobs_expire(now=timezone.now() + timedelta(hours=25)) == 0  # nothing left to expire


def test_files_are_under_the_var_folder(project, reviewer, reviewer2, curator) -> None:  # type: ignore[no-untyped-def]
    job = finished_job(project, reviewer, reviewer2, curator)
    assert Path(settings.VAR_DIR) in export_job_file(job).parents  # type: ignore[union-attr]
