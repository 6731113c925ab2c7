"""Logging finished runs to MLflow, once each, and retrying until it works.

A run is logged after it closes: ``run_mlflow_log_queue`` records the logging as a job of the one
jobs kernel (RunMlflowLog, keyed by the run) and sends ``evaluations.run_mlflow_log``. If the
tracking server is down the run is complete all the same: the job goes back to the queue with the
reason in its ``error`` (``run.mlflow_error``), and the kernel's sweeper sends it again every few
minutes until it succeeds. The job's lease keeps two attempts from logging the same run at once,
and the adapter reuses an MLflow run already logged for it.

One MLflow run per Reviewdesk run: params (suite, version, dataset, target, model version),
metrics per scorer (``<scorer>/mean``, ``/pass_rate``, ``/error_rate``, and judge-human
``/human_accuracy``, ``/human_kappa`` when curated labels exist) and ``eval_results.json``, one row
per item with each scorer's value, verdict, rationale and error.
"""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.utils import timezone

from evaluations.models import Run, RunMlflowLog, RunResult, RunRow
from evaluations.selectors import run_metrics
from evaluations.services.alignment import alignment_compute
from pipelines.adapters.errors import PipelineError
from reviewapp.jobs import job_claim, job_enqueue, job_fail, job_finish
from reviewapp.models import Item

RETRY_SECONDS = 300  # a run MLflow could not take is tried again this often (the kernel's sweeper)
TEXT_CELL_MAX = 2000
LOGGABLE = (Run.Status.SUCCEEDED, Run.Status.FAILED)


def run_mlflow_log_queue(*, run: Run) -> None:
    """Queue the logging of a run that just finished; its task is sent once this commits."""
    if run.status not in LOGGABLE:
        return
    RunMlflowLog.objects.get_or_create(run=run, defaults={"enqueued_at": timezone.now()})
    job_enqueue(RunMlflowLog, [run.pk])


def run_mlflow_log(*, run_id: int) -> bool:
    """Log the finished run to MLflow unless it already is; True when it is logged.

    Raises TransientPipelineError / PermanentPipelineError when MLflow refuses (the reason is kept on
    the job, which goes back to the queue: the sweeper retries it); False when the run is not
    loggable now (not finished, or another attempt holds it).
    """
    if not Run.objects.filter(pk=run_id, status__in=LOGGABLE).exists():
        return False
    RunMlflowLog.objects.get_or_create(run_id=run_id, defaults={"enqueued_at": timezone.now()})
    owner = job_claim(RunMlflowLog, run_id)
    if owner is None:
        return RunMlflowLog.objects.filter(pk=run_id, status=RunMlflowLog.Status.DONE).exists()
    run = Run.objects.select_related("project", "suite_version__suite").get(pk=run_id)
    from pipelines.adapters.mlflow_tracking import evaluation_run_log

    try:
        logged = evaluation_run_log(
            tracking_uri=settings.MLFLOW_TRACKING_URI,
            experiment_name=f"{settings.MLFLOW_EXPERIMENT_PREFIX}-{run.project.slug}",
            key=f"run-{run.pk}",
            run_name=f"{run.suite_version.suite.name} v{run.suite_version.number} · run {run.pk}",
            params=_params(run),
            metrics=_metrics(run),
            tags={
                "reviewdesk.run_id": str(run.pk),
                "reviewdesk.project": run.project.slug,
                "reviewdesk.suite": run.suite_version.suite.name,
                "reviewdesk.status": run.status,
            },
            table=_table(run),
            artifact_root=settings.MLFLOW_ARTIFACT_ROOT,
        )
    except PipelineError as exc:
        # Any refusal is tried again later (the run is complete either way): back to the queue.
        job_fail(RunMlflowLog, run_id, owner, exc.message[:2000], transient=True)
        raise
    job_finish(
        RunMlflowLog,
        run_id,
        owner,
        mlflow_run_id=logged.run_id,
        mlflow_experiment_id=logged.experiment_id,
        error="",
    )
    return True


def _model_version(run: Run) -> str:
    kind = run.target.get("kind", "stored")
    if kind == "mlflow_model":
        return str(run.target.get("model_uri", ""))
    if kind == "endpoint":
        return str(run.target.get("endpoint", ""))
    return str(run.dataset.get("model_version", ""))


def _params(run: Run) -> dict[str, Any]:
    version = run.suite_version
    return {
        "reviewdesk_run_id": run.pk,
        "project": run.project.slug,
        "suite": version.suite.name,
        "suite_version": version.number,
        "dataset": json.dumps(run.dataset, sort_keys=True),
        **({"dataset_version": run.dataset_version_label} if run.dataset_version else {}),
        "target": json.dumps(run.target, sort_keys=True),
        "target_kind": run.target.get("kind", "stored"),
        "model_version": _model_version(run) or "(all)",
        "items": run.items_total,
        "max_error_rate": run.max_error_rate,
        "scorers": json.dumps(
            [{k: e[k] for k in ("name", "scorer", "threshold")} for e in version.scorers], sort_keys=True
        ),
    }


def _metrics(run: Run) -> dict[str, float]:
    out: dict[str, float] = {"rows": run.rows_done, "rows_errored": run.rows_errored}
    if run.error_rate is not None:
        out["error_rate"] = run.error_rate
    if run.duration_seconds is not None:
        out["duration_seconds"] = run.duration_seconds
    for name, m in run_metrics(run=run).items():
        for key in ("mean", "pass_rate", "error_rate"):
            if m.get(key) is not None:
                out[f"{name}/{key}"] = float(m[key])
    for name, a in alignment_compute(run=run).items():
        if a.accuracy is not None:
            out[f"{name}/human_accuracy"] = a.accuracy
            out[f"{name}/human_n"] = a.n
        if a.kappa is not None:
            out[f"{name}/human_kappa"] = a.kappa
    return out


def _cell(text: Any) -> str:
    value = text if isinstance(text, str) else json.dumps(text, ensure_ascii=False)
    return value[:TEXT_CELL_MAX]


def _value_cell(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    return _cell(value)


def _table(run: Run) -> dict[str, list[Any]]:
    """One row per item: its request and response, then value / passed / rationale / error per scorer."""
    names = run.suite_version.scorer_names
    by_item: dict[int, dict[str, tuple[Any, ...]]] = {}
    results = RunResult.objects.filter(run=run).order_by("item_id")
    fields = ("item_id", "scorer", "value", "passed", "rationale", "error")
    for item_id, scorer, *rest in results.values_list(*fields).iterator(chunk_size=5000):
        by_item.setdefault(item_id, {})[scorer] = tuple(rest)
    ids = sorted(by_item)
    items = {i.pk: i for i in Item.objects.filter(pk__in=ids).only("id", "external_id", "request", "response")}
    generated = dict(RunRow.objects.filter(run=run, item_id__in=ids).values_list("item_id", "response"))
    table: dict[str, list[Any]] = {"item_id": [], "external_id": [], "request": [], "response": []}
    for name in names:
        for suffix in ("value", "passed", "rationale", "error"):
            table[f"{name}/{suffix}"] = []
    missing = (None, None, "", "")
    for pk in ids:
        item = items.get(pk)
        table["item_id"].append(pk)
        table["external_id"].append(item.external_id if item else "")
        table["request"].append(_cell(item.request) if item else "")
        table["response"].append(_cell(generated.get(pk, item.response if item else "")))
        for name in names:
            value, passed, rationale, error = by_item[pk].get(name, missing)
            table[f"{name}/value"].append(_value_cell(value))
            table[f"{name}/passed"].append(passed)
            table[f"{name}/rationale"].append(rationale)
            table[f"{name}/error"].append(error)
    return table
