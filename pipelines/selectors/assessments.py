"""Reads for the assessment side of curated datasets: a dataset version as an evaluation run needs it.

evaluations' core reaches pipelines only through its adapters (``make lint`` checks it), so a face
that starts a run over a curated dataset version calls :func:`dataset_version_for_run` and hands the
plain :class:`VersionSnapshot` to ``evaluations.services.runs.run_start``: the version's item ids in
row order and, per item, the expectations (``expected_response``, ``expected_facts``,
``guidelines``) and human answers (the canonical row's ``feedback``) it snapshotted.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from evaluations.services.datasets import VersionSnapshot
from pipelines.models import DatasetRow, DatasetVersion
from pipelines.selectors.datasets import dataset_version_list
from reviewapp.errors import ValidationFailed
from reviewapp.models import Project
from reviewapp.typed_input import field_error

FIELD = "dataset_version"


def dataset_version_list_for_runs(*, project: Project) -> QuerySet[DatasetVersion]:
    """The project's dataset versions, newest dataset version first (the run form's picker)."""
    return dataset_version_list(project=project)


def dataset_version_get_for_run(*, project: Project, pk: Any) -> DatasetVersion:
    """The version, if it belongs to ``project``; else ValidationFailed naming ``dataset_version``."""
    try:
        version_id = int(pk)
    except (TypeError, ValueError):
        raise ValidationFailed([field_error(FIELD, "Give a dataset version id.")], "The run cannot start.") from None
    version = DatasetVersion.objects.select_related("dataset").filter(pk=version_id).first()
    if version is None or version.dataset.project_id != project.pk:
        raise ValidationFailed(
            [field_error(FIELD, f"No dataset version {version_id} in this project.")],
            "The run cannot start.",
        )
    return version


def version_info(version: DatasetVersion) -> dict[str, Any]:
    """What a run records about the version it ran over."""
    return {
        "id": version.pk,
        "dataset_id": version.dataset_id,
        "name": version.dataset.name,
        "number": version.number,
        "content_hash": version.content_hash,
        "row_count": version.row_count,
    }


def dataset_version_snapshot(*, version: DatasetVersion) -> VersionSnapshot:
    """The version's item ids in row order and, per item, its snapshotted expectations and answers."""
    rows = (
        DatasetRow.objects.filter(version=version)
        .order_by("position")
        # Only the keys scorers need: the canonical rows also hold requests, responses and contexts.
        .values_list("item_id", "data__expected_response", "data__expected_facts", "data__guidelines", "data__feedback")
    )
    item_ids: list[int] = []
    expectations: dict[int, dict[str, Any]] = {}
    for item_id, expected_response, expected_facts, guidelines, feedback in rows.iterator(chunk_size=2000):
        item_ids.append(int(item_id))
        expectations[int(item_id)] = {
            "expected_response": expected_response,
            "expected_facts": expected_facts,
            "guidelines": guidelines,
            "human": feedback,
        }
    return VersionSnapshot(
        project_id=version.dataset.project_id,
        info=version_info(version),
        item_ids=item_ids,
        expectations=expectations,
    )


def dataset_version_for_run(*, project: Project, pk: Any) -> VersionSnapshot:
    """The version ``pk`` of ``project``, ready for ``run_start(dataset_version=...)``."""
    return dataset_version_snapshot(version=dataset_version_get_for_run(project=project, pk=pk))
