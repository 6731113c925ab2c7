"""Label schema versions as the schema editor lists and compares them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Count

from reviewapp.consensus import question_snapshot
from reviewapp.models import Project, Question, Review, SchemaVersion


@dataclass(frozen=True)
class VersionRow:
    version: int
    questions: list[dict[str, Any]]
    reviews: int  # reviews that answered this version
    current: bool
    created_at: datetime | None


def schema_versions(*, project: Project) -> list[VersionRow]:
    """Every version, oldest first, with its review count; the current one even before its first snapshot."""
    counts = dict(
        Review.objects.filter(project=project)
        .values("schema_version")
        .annotate(n=Count("id"))
        .values_list("schema_version", "n")
    )
    rows = {
        v.version: VersionRow(
            version=v.version,
            questions=list(v.questions),
            reviews=counts.get(v.version, 0),
            current=v.version == project.schema_version,
            created_at=v.created_at,
        )
        for v in SchemaVersion.objects.filter(project=project).order_by("version")
    }
    if project.schema_version not in rows:
        # Projects whose questions never changed through the services have no snapshot yet.
        questions = [question_snapshot(q) for q in Question.objects.filter(project=project).order_by("order", "id")]
        rows[project.schema_version] = VersionRow(
            version=project.schema_version,
            questions=questions,
            reviews=counts.get(project.schema_version, 0),
            current=True,
            created_at=None,
        )
    return [rows[v] for v in sorted(rows)]
