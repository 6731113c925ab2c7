"""Background exports: a row first (ExportJob), then a task that writes the file under a lease.

``export_job_run`` claims the row through the jobs kernel (reviewapp.jobs: a conditional UPDATE; a
second delivery of the task finds it claimed and returns), streams the export into
``<VAR_DIR>/exports/job-<id>.<ext>.part`` and renames it into place when complete, so a killed or
retried job starts over on a fresh temporary file and a
download never sees half a file. The jobs kernel's sweeper re-queues RUNNING jobs whose lease
expired, and then ``export_jobs_expire`` deletes old files.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from pipelines.datasets.exports import (
    Progress,
    export_filename,
    export_stream,
    live_export_rows,
    live_question_keys,
    version_export_rows,
)
from pipelines.models import DatasetVersion, ExportJob
from reviewapp.jobs import job_claim, job_enqueue, job_fail, job_finish, job_held, job_renew
from reviewapp.models import Project
from reviewapp.services.audit import audit_record
from reviewapp.usertypes import signed_in

if TYPE_CHECKING:
    from reviewapp.usertypes import Actor

MAX_ATTEMPTS = 3


def exports_dir() -> Path:
    path = Path(settings.VAR_DIR) / "exports"
    path.mkdir(parents=True, exist_ok=True)
    return path


def export_job_create(
    *,
    project: Project,
    user: Actor,
    fmt: str,
    shape: str,
    compression: str = "",
    version: DatasetVersion | None = None,
    filter: dict[str, Any] | None = None,
) -> ExportJob:
    """Record the job and enqueue it once the row is committed. Arguments are validated by the caller
    (the same parameter checks as the streaming endpoints)."""
    with transaction.atomic():
        job = ExportJob.objects.create(
            project=project,
            version=version,
            filter={} if version is not None else (filter or {"curated_only": True}),
            format=fmt,
            shape=shape,
            compression=compression,
            rows_total=version.row_count if version is not None else None,
            created_by=signed_in(user),
            enqueued_at=timezone.now(),
        )
        audit_record(
            actor=user,
            action="export.job_create",
            target=job,
            project=project,
            data={"version": version.pk if version else None, "format": fmt, "shape": shape},
        )
        job_enqueue(ExportJob, [job.pk])  # pipelines.export_job_run, by name, once this commits
    return job


def export_job_download_name(job: ExportJob) -> str:
    if job.version_id is not None:
        version = job.version
        assert version is not None
        stem = f"{job.project.slug}-{version.dataset.name}-v{version.number}"
    else:
        stem = f"{job.project.slug}-curated-job{job.pk}"
    return export_filename(stem=_safe(stem), shape=job.shape, fmt=job.format, compression=job.compression)


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in text)


def _claim(job_id: int) -> tuple[ExportJob, str] | None:
    """Take the job if it is queued, or running under an expired lease; None if someone else has it."""
    # Each attempt starts the file over: its row count and start time too.
    token = job_claim(ExportJob, job_id, rows_done=0, started_at=timezone.now(), error="")
    if token is None:
        return None
    return ExportJob.objects.select_related("project", "version__dataset__project").get(pk=job_id), token


def export_job_run(*, job_id: int) -> None:
    """Write the job's file (idempotent: a finished or claimed job is left alone)."""
    claim = _claim(job_id)
    if claim is None:
        return
    job, token = claim

    def progress(done: int) -> None:
        job_renew(ExportJob, job.pk, token, rows_done=done)

    counter = Progress(progress)
    if job.version is not None:
        rows = version_export_rows(version=job.version, shape=job.shape, progress=counter)
        keys = list(job.version.question_keys or [])
    else:
        rows = live_export_rows(project=job.project, filter=job.filter, shape=job.shape, progress=counter)
        keys = live_question_keys(project=job.project)
    name = f"job-{job.pk}.{job.format}" + (".gz" if job.compression == "gzip" else "")
    final = exports_dir() / name
    part = final.with_name(f"{name}.{token}.part")  # per claim: a stale writer never shares our file
    try:
        with part.open("wb") as out:
            for chunk in export_stream(
                rows, fmt=job.format, shape=job.shape, question_keys=keys, compression=job.compression
            ):
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        size = part.stat().st_size
        if not ExportJob.objects.filter(job_held(ExportJob, job.pk, token)).exists():
            part.unlink(missing_ok=True)  # our lease was swept and another worker owns the job now
            return
        os.replace(part, final)
    except Exception as exc:
        part.unlink(missing_ok=True)
        job_fail(ExportJob, job.pk, token, f"{type(exc).__name__}: {exc}"[:2000], transient=False)
        raise
    job_finish(
        ExportJob,
        job.pk,
        token,
        rows_done=counter.done,
        rows_total=counter.done,
        file_path=str(final.relative_to(Path(settings.VAR_DIR))),
        file_size=size,
    )


def export_job_file(job: ExportJob) -> Path | None:
    if job.status != ExportJob.Status.DONE or not job.file_path:
        return None
    path = Path(settings.VAR_DIR) / job.file_path
    return path if path.is_file() else None


def export_jobs_expire(*, now: Any = None) -> int:
    """Delete the files of exports finished more than EXPORT_RETENTION_HOURS ago; how many expired.

    The job rows stay (who exported what, when), marked expired, so a download link says why it is
    gone. Temporary ``.part`` files older than the retention (a claim that died) go too.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(hours=settings.EXPORT_RETENTION_HOURS)
    expired = 0
    for job in ExportJob.objects.filter(status=ExportJob.Status.DONE, finished_at__lt=cutoff).only("pk", "file_path"):
        if job.file_path:
            (Path(settings.VAR_DIR) / job.file_path).unlink(missing_ok=True)
        expired += ExportJob.objects.filter(pk=job.pk, status=ExportJob.Status.DONE).update(
            status=ExportJob.Status.EXPIRED, file_path=""
        )
    folder = exports_dir()
    for part in folder.glob("*.part*"):
        try:
            if part.stat().st_mtime < cutoff.timestamp():
                part.unlink(missing_ok=True)
        except FileNotFoundError:
            continue
    return expired
