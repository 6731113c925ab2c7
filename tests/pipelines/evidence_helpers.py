"""Helpers for the registry, evidence and gate tests: a real SQLite MLflow registry with tiny pyfunc models,
and builders for reviews, preferences and evaluation runs with known figures.

The registry is arranged with MLflow itself (it is the outside world here); the code under test
reaches it only through ``pipelines.adapters.mlflow_registry``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.utils import timezone

from evaluations.models import Run, RunResult, Suite, SuiteVersion
from pipelines.models import ModelVersion
from reviewapp.models import Item, PairwiseTask, Preference, Project, Review

EXPERIMENT = "evidence-tests"


@dataclass
class Registry:
    uri: str
    artifacts: Path


def _model_class() -> Any:
    import mlflow.pyfunc

    class EchoModel(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]  # MLflow reads hints
            return model_input

    return EchoModel


@contextmanager
def mlflow_at(registry: Registry) -> Iterator[Any]:
    """MLflow's fluent API pointed at the test registry for the block, then put back."""
    import mlflow

    old_tracking, old_registry = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(registry.uri)
    mlflow.set_registry_uri(registry.uri)
    try:
        yield mlflow
    finally:
        mlflow.set_tracking_uri(old_tracking)
        mlflow.set_registry_uri(old_registry)


def registry_create(root: Path) -> Registry:
    return Registry(uri=f"sqlite:///{root / 'mlflow.db'}", artifacts=root / "artifacts")


def log_version(
    registry: Registry,
    *,
    model: str,
    params: dict[str, str],
    prompt_template: str = "",
    template_as: str = "param",  # "param" | "artifact" | "tag"
    description: str = "",
) -> str:
    """Log a run with ``params`` and a prompt template, register its tiny model; the new version number."""
    from mlflow import MlflowClient

    with mlflow_at(registry) as mlflow:
        client = MlflowClient(tracking_uri=registry.uri, registry_uri=registry.uri)
        experiment = client.get_experiment_by_name(EXPERIMENT)
        if experiment is None:
            registry.artifacts.mkdir(parents=True, exist_ok=True)
            experiment_id = client.create_experiment(EXPERIMENT, artifact_location=registry.artifacts.as_uri())
        else:
            experiment_id = experiment.experiment_id
        with mlflow.start_run(experiment_id=experiment_id) as run:
            run_params = dict(params)
            if prompt_template and template_as == "param":
                run_params["prompt_template"] = prompt_template
            mlflow.log_params(run_params)
            if prompt_template and template_as == "artifact":
                mlflow.log_text(prompt_template, "prompt_template.txt")
            if prompt_template and template_as == "tag":
                mlflow.set_tag("prompt_template", prompt_template)
            info = mlflow.pyfunc.log_model(
                name="model", python_model=_model_class()(), pip_requirements=["mlflow"], registered_model_name=model
            )
        version = str(info.registered_model_version)
        if description:
            client.update_model_version(model, version, description=description)
        assert run.info.run_id
        return version


def registry_client(registry: Registry) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=registry.uri, registry_uri=registry.uri)


# --- evidence builders ------------------------------------------------------------------------


def model_version(project: Project, number: str, *, name: str = "support-bot", **fields: Any) -> ModelVersion:
    from tests.pipelines.promotion_fixtures import project_model_name

    project_model_name(project, name)
    defaults = {"synced_at": timezone.now(), "status": "READY", **fields}
    return ModelVersion.objects.update_or_create(
        project=project, registered_model=name, version=number, defaults=defaults
    )[0]


_counter = {"n": 0}


def items_for(
    project: Project, version: str, count: int, *, prefix: str = "", requests: list[str] | None = None
) -> list[Item]:
    """``count`` items answered by ``version``; ``requests`` gives their requests (for pairing versions)."""
    out = []
    for i in range(count):
        _counter["n"] += 1
        n = _counter["n"]
        out.append(
            Item.objects.create(
                project=project,
                external_id=f"{prefix or 'it'}-{version}-{n}",
                request=requests[i] if requests else f"Question {n}?",
                response=f"Answer {n} by v{version}",
                model_name="support-bot",
                model_version=version,
            )
        )
    return out


def reviews_for(
    project: Project, version: str, answers: list[dict[str, Any]], reviewer: Any, *, requests: list[str] | None = None
) -> list[Item]:
    """One item per answer dict, each reviewed once by ``reviewer`` with those answers."""
    items = items_for(project, version, len(answers), requests=requests)
    now = timezone.now()
    for item, given in zip(items, answers, strict=True):
        Review.objects.create(
            project=project, item=item, reviewer=reviewer, answers=given, submitted_at=now, updated_at=now
        )
    return items


def preferences(
    project: Project, *, a: str, b: str, outcomes: list[str], reviewers: list[Any], one_task: bool = False
) -> None:
    """One pair task per outcome ("a" wins, "b" wins, "tie", "both_bad"), each by its reviewer; with
    ``one_task`` every outcome is a judgement of the same pair (the reviewers must differ)."""
    task = None
    for outcome, reviewer in zip(outcomes, reviewers, strict=True):
        if task is None or not one_task:
            item_a, item_b = items_for(project, a, 1, prefix="pa")[0], items_for(project, b, 1, prefix="pb")[0]
            task = PairwiseTask.objects.create(project=project, item_a=item_a, item_b=item_b, version_a=a, version_b=b)
        winner = {"a": (item_a, a, b), "b": (item_b, b, a)}.get(outcome)
        Preference.objects.create(
            project=project,
            task=task,
            reviewer=reviewer,
            left_item=item_a,
            right_item=item_b,
            left_model_version=a,
            right_model_version=b,
            choice={"a": "a", "b": "b"}.get(outcome, outcome),
            outcome="win" if winner else outcome,
            winner_item=winner[0] if winner else None,
            winner_model_version=winner[1] if winner else "",
            loser_model_version=winner[2] if winner else "",
            submitted_at=timezone.now(),
        )


def suite(project: Project, name: str = "Core", scorers: tuple[str, ...] = ("correctness",)) -> Suite:
    s = Suite.objects.create(project=project, name=name)
    SuiteVersion.objects.create(
        suite=s,
        number=1,
        scorers=[
            {"name": n, "scorer": "exact_match", "threshold": 0.5, "params": {}, "human_question": ""} for n in scorers
        ],
    )
    return s


def finished_run(
    project: Project,
    suite_obj: Suite,
    *,
    version: str,
    scores: dict[str, list[float | None]],
    verdicts: dict[str, list[bool]] | None = None,
    status: str = Run.Status.SUCCEEDED,
    target: dict[str, Any] | None = None,
    finished_days_ago: float = 0,
    requests: list[str] | None = None,
) -> Run:
    """A run over stored responses of ``version`` (or ``target``), with per-item results and stored metrics.

    ``requests``: the rows' requests, so that runs of two versions pair up by request.
    """
    from evaluations.selectors import run_metrics_compute

    suite_version = suite_obj.versions.order_by("-number").first()
    n_items = max(len(v) for v in [*scores.values(), *(verdicts or {}).values()])
    items = items_for(project, version, n_items, prefix="run", requests=requests)
    finished = timezone.now() - dt.timedelta(days=finished_days_ago)
    run = Run.objects.create(
        project=project,
        suite_version=suite_version,
        dataset={} if target else {"model_version": version},
        target=target or {"kind": "stored"},
        status=status,
        items_total=n_items,
        rows_done=n_items,
        finished_at=finished,
    )
    for scorer in set(scores) | set(verdicts or {}):
        numbers = scores.get(scorer, [])
        passes = (verdicts or {}).get(scorer, [])
        for i, item in enumerate(items):
            number = numbers[i] if i < len(numbers) else None
            passed = passes[i] if i < len(passes) else None
            if number is None and passed is None:
                continue
            RunResult.objects.create(
                run=run,
                item=item,
                scorer=scorer,
                value=number if number is not None else passed,
                number=number,
                passed=passed,
            )
    run.metrics = run_metrics_compute(run=run)
    run.save(update_fields=["metrics"])
    return run
