"""The one read-only guard of an archived project (services.projects.project_archive)."""

from __future__ import annotations

from reviewapp.errors import ProjectArchived
from reviewapp.models import Project


def project_check_writable(project: Project) -> None:
    """Every service that ingests, queues, reviews, curates or edits a project calls this first:
    an archived project is read-only (ProjectArchived: a 403 with the reason, in pages and the API)."""
    if project.archived_at is not None:
        raise ProjectArchived(project.name)
