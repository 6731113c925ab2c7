"""A short summary per version, for lists: reviews, the primary pass rate with its interval, runs."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from django.db.models import Q

from evaluations.models import Run
from pipelines.evidence.intervals import wilson_interval
from pipelines.evidence.reviews import primary_pass_question
from pipelines.models import ModelVersion
from reviewapp.models import Project, Review

# --- a short summary per version, for lists ---------------------------------------------------


@dataclass
class VersionSummary:
    reviews: int = 0
    pass_rate: float | None = None
    pass_low: float | None = None
    pass_high: float | None = None
    passes: int = 0
    judged: int = 0
    runs: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def versions_summary(*, project: Project, versions: list[ModelVersion]) -> dict[int, VersionSummary]:
    """Per ModelVersion id: reviews, primary pass rate with its interval, runs — in three queries."""
    by_number = {v.version: v for v in versions}
    out = {v.pk: VersionSummary() for v in versions}
    if not versions:
        return out
    primary = primary_pass_question(project=project)
    rows = Review.objects.filter(
        project=project, returned_at__isnull=True, item__model_version__in=list(by_number)
    ).values_list("item__model_version", "answers")
    for number, answers in rows.iterator(chunk_size=5000):
        summary = out[by_number[number].pk]
        summary.reviews += 1
        value = (answers or {}).get(primary.key) if primary else None
        if isinstance(value, bool):
            summary.judged += 1
            summary.passes += int(value)
    for summary in out.values():
        ci = wilson_interval(summary.passes, summary.judged)
        if ci:
            summary.pass_rate = summary.passes / summary.judged
            summary.pass_low, summary.pass_high = ci
    uris = {v.uri: v for v in versions}
    runs = Run.objects.filter(project=project).filter(
        Q(dataset__model_version__in=list(by_number)) | Q(target__model_uri__in=list(uris))
    )
    for run in runs.only("id", "dataset", "target"):
        target = run.target or {}
        if target.get("kind", "stored") == "mlflow_model":
            match = uris.get(str(target.get("model_uri", "")))
        elif target.get("kind", "stored") == "stored":
            match = by_number.get(str((run.dataset or {}).get("model_version", "")))
        else:
            match = None
        if match is not None:
            out[match.pk].runs += 1
    return out
