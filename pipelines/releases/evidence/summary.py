"""A short summary per version, for lists: reviews, the primary pass rate with its interval, runs."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from django.db.models import Q

from evaluations.models import Run
from pipelines.models import ModelVersion
from pipelines.releases.evidence.reviews import primary_pass_question
from reviewapp import item_stats
from reviewapp.models import CuratedLabel, Project, Review

# --- a short summary per version, for lists ---------------------------------------------------


@dataclass
class VersionSummary:
    """Per item (``reviewapp.item_stats``): ``judged`` items answer the primary question."""

    reviews: int = 0  # current reviews of the version's items
    items: int = 0  # items with a current review or a curated label
    pass_rate: float | None = None  # mean of the judged items' values
    pass_low: float | None = None  # 95%: Wilson over items, or a bootstrap over items for split votes
    pass_high: float | None = None
    passes: float = 0  # sum of the judged items' values
    judged: int = 0  # n: items with a value for the primary question
    judged_reviews: int = 0  # reviews behind those values
    runs: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def versions_summary(*, project: Project, versions: list[ModelVersion]) -> dict[int, VersionSummary]:
    """Per ModelVersion id: reviews, items, the primary pass rate over items with its interval, runs (four queries)."""
    by_number = {v.version: v for v in versions}
    out = {v.pk: VersionSummary() for v in versions}
    if not versions:
        return out
    primary = primary_pass_question(project=project)
    numbers = list(by_number)
    per_version: dict[str, dict[int, item_stats.ItemAnswers]] = {n: {} for n in numbers}
    rows = Review.objects.filter(project=project, returned_at__isnull=True, item__model_version__in=numbers)
    for number, item_id, answers in rows.values_list("item__model_version", "item_id", "answers").iterator(
        chunk_size=5000
    ):
        entry = per_version[number].setdefault(item_id, item_stats.ItemAnswers(item_id=item_id, reviews=[]))
        entry.reviews.append(answers or {})  # type: ignore[union-attr]
    labels = CuratedLabel.objects.filter(project=project, item__model_version__in=numbers)
    for number, item_id, answers in labels.values_list("item__model_version", "item_id", "answers"):
        entry = per_version[number].setdefault(item_id, item_stats.ItemAnswers(item_id=item_id, reviews=[]))
        entry.curated = answers or {}
    for number, entries in per_version.items():
        summary = out[by_number[number].pk]
        summary.reviews = sum(len(e.reviews or []) for e in entries.values())
        summary.items = len(entries)
        if primary is None:
            continue
        values, counts, curated = item_stats.question_values(entries.values(), key=primary.key, kind="pass_fail")
        figure = item_stats.items_rate(list(values.values()), reviews=sum(counts.values()), curated=curated)
        summary.judged, summary.judged_reviews, summary.passes = figure.items, figure.reviews, figure.passes or 0
        summary.pass_rate, summary.pass_low, summary.pass_high = figure.value, figure.low, figure.high
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
