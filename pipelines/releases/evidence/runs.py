"""The evaluation runs that evaluated a version, their scores, and each run's evidence (metrics, alignment)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Q
from django.urls import reverse

from evaluations.models import Run, RunResult
from evaluations.selectors import run_metrics
from evaluations.services.alignment import alignment_compute
from evaluations.services.compare import run_pairs
from pipelines.models import ModelVersion

# --- runs -------------------------------------------------------------------------------------


def _run_is_for(run: Run, version: ModelVersion) -> bool:
    target = run.target or {}
    kind = target.get("kind", "stored")
    if kind == "mlflow_model":
        return str(target.get("model_uri", "")).rstrip("/") == version.uri
    if kind == "stored":
        return str((run.dataset or {}).get("model_version", "")) == version.version
    return False


def runs_for_version(*, version: ModelVersion, suite_id: int | None = None) -> list[Run]:
    """The project's evaluation runs of this version, newest first (see the module doc)."""
    runs = (
        Run.objects.filter(project_id=version.project_id)
        .filter(Q(dataset__model_version=version.version) | Q(target__model_uri=version.uri))
        .select_related("suite_version__suite")
        .order_by("-id")
    )
    if suite_id is not None:
        runs = runs.filter(suite_version__suite_id=suite_id)
    return [run for run in runs if _run_is_for(run, version)]


def latest_suite_run(*, version: ModelVersion, suite_id: int) -> Run | None:
    """The newest succeeded run of the suite (any of its versions) for this version."""
    for run in runs_for_version(version=version, suite_id=suite_id):
        if run.status == Run.Status.SUCCEEDED:
            return run
    return None


def run_scores(*, run: Run, scorer: str, statistic: str) -> list[float]:
    """Per-row values of one scorer in a run: numbers for ``mean``, 0/1 verdicts for ``pass_rate``."""
    results = RunResult.objects.filter(run=run, scorer=scorer, error="")
    if statistic == "pass_rate":
        return [1.0 if p else 0.0 for p in results.filter(passed__isnull=False).values_list("passed", flat=True)]
    return [float(n) for n in results.filter(number__isnull=False).values_list("number", flat=True)]


def run_scores_paired(
    *, champion_run: Run, run: Run, scorer: str, statistic: str
) -> tuple[dict[str, float], dict[str, float]]:
    """One scorer's per-row values of two runs, keyed so that rows of the same item (or request) share a key.

    Rows pair as on the compare page (``evaluations.services.compare.run_pairs``: by item, else by
    request); a row without a partner keeps a key of its own, so it counts as "only in" its run.
    """
    _, pairs, _, _ = run_pairs(champion_run, run)
    partner_a = {id_a: f"pair:{id_a}:{id_b}" for id_a, id_b in pairs}
    partner_b = {id_b: f"pair:{id_a}:{id_b}" for id_a, id_b in pairs}

    def values(of: Run, partner: dict[int, str], side: str) -> dict[str, float]:
        results = RunResult.objects.filter(run=of, scorer=scorer, error="")
        if statistic == "pass_rate":
            rows = results.filter(passed__isnull=False).values_list("item_id", "passed")
        else:
            rows = results.filter(number__isnull=False).values_list("item_id", "number")
        return {partner.get(item_id, f"{side}:{item_id}"): float(value) for item_id, value in rows}

    return values(champion_run, partner_a, "a"), values(run, partner_b, "b")


@dataclass
class RunEvidence:
    id: int
    suite_id: int
    suite_name: str
    suite_version: int
    status: str
    target: str
    created_at: str
    finished_at: str | None
    items: int
    metrics: dict[str, dict[str, Any]]
    alignment: dict[str, dict[str, Any]]
    url: str


def _run_evidence(run: Run, *, with_alignment: bool) -> RunEvidence:
    alignment = {}
    if with_alignment and run.status == Run.Status.SUCCEEDED:
        alignment = {name: a.as_dict() for name, a in alignment_compute(run=run).items()}
    return RunEvidence(
        id=run.pk,
        suite_id=run.suite_version.suite_id,
        suite_name=run.suite_version.suite.name,
        suite_version=run.suite_version.number,
        status=run.status,
        target=run.target_label,
        created_at=run.created_at.isoformat(),
        finished_at=run.finished_at.isoformat() if run.finished_at else None,
        items=run.items_total,
        metrics=run_metrics(run=run),
        alignment=alignment,
        url=reverse("evaluations-run", args=[run.pk]),
    )
