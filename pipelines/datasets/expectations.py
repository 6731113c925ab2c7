"""Expectations that repeat a failed answer, in reviews, labels and frozen dataset versions.

``expectations_fix`` is what ``manage.py expectations_repair`` and every ``migrate`` run: the review
app clears such expectations from reviews and curated labels and re-runs curation
(``reviewapp.services.expectations``); then ``dataset_versions_check_expectations`` counts, per
dataset version, the frozen rows that still hold one. Versions are immutable, so their rows are not
rewritten: the count (``DatasetVersion.failed_expectation_rows``) makes the dataset page and API say
"needs a new version", each change of it is in the audit log, and the ``sft`` / ``preference``
exports skip such rows anyway.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import Q

from pipelines.datasets.exports import row_fails_response
from pipelines.models import DatasetRow, DatasetVersion
from reviewapp.models import Project, Question, SchemaVersion
from reviewapp.services.answers import expectation_repeats_failed
from reviewapp.services.audit import audit_record
from reviewapp.services.expectations import ExpectationRepair, expectations_repair


@dataclass
class VersionCheck:
    flagged: dict[int, int] = field(default_factory=dict)  # version id -> rows holding a failed expectation
    changed: list[int] = field(default_factory=list)  # versions whose count changed in this run


def row_repeats_failed(data: dict[str, Any]) -> bool:
    """A canonical row whose expected response is the response its label fails."""
    return expectation_repeats_failed(
        response=str(data.get("response") or ""),
        expected=data.get("expected_response"),
        failed=row_fails_response(data),
    )


def _pass_fail_keys(project: Project) -> set[str]:
    keys = set(Question.objects.filter(project=project, kind=Question.Kind.PASS_FAIL).values_list("key", flat=True))
    for questions in SchemaVersion.objects.filter(project=project).values_list("questions", flat=True):
        keys.update(
            q["key"] for q in questions or [] if isinstance(q, dict) and q.get("kind") == Question.Kind.PASS_FAIL
        )
    return keys


def dataset_versions_check_expectations(*, project: Project | None = None) -> VersionCheck:
    """Count each version's rows whose expected response repeats a failed response; record changes."""
    result = VersionCheck()
    projects = [project] if project is not None else list(Project.objects.filter(datasets__isnull=False).distinct())
    for p in projects:
        keys = _pass_fail_keys(p)
        versions = DatasetVersion.objects.filter(dataset__project=p).select_related("dataset").order_by("id")
        for version in versions:
            count, bad = 0, []
            if keys:
                failing = Q()
                for key in keys:  # only rows that fail something can hold one: the rest is never read
                    failing |= Q(**{f"data__feedback__{key}": False})
                rows = DatasetRow.objects.filter(Q(version=version) & failing).values_list("row_id", "data")
                bad = [row_id for row_id, data in rows.iterator(chunk_size=2_000) if row_repeats_failed(data)]
                count = len(bad)
            if count:
                result.flagged[version.pk] = count
            if count == version.failed_expectation_rows:
                continue
            with transaction.atomic():
                DatasetVersion.objects.filter(pk=version.pk).update(failed_expectation_rows=count)
                audit_record(
                    actor=None,
                    action="dataset.version_expectations_checked",
                    target=version,
                    project=p,
                    data={
                        "dataset": version.dataset_id,
                        "version": version.number,
                        "failed_expectation_rows": count,
                        "row_ids": bad[:100] if count else [],
                        "needs_new_version": count > 0,
                    },
                )
            result.changed.append(version.pk)
    return result


def expectations_fix() -> tuple[ExpectationRepair, VersionCheck]:
    """Repair reviews and labels, then report the dataset versions that still hold such rows."""
    repaired = expectations_repair()
    return repaired, dataset_versions_check_expectations()
