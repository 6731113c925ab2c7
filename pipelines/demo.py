"""The demo's lakehouse side: model versions, environments, gates, a dataset version and a Delta feed.

Run after ``load_demo`` (project, items, reviews) and ``log_demo_models`` (the RAG chain as
``support-assistant`` v1 and v2 in the local MLflow registry). Everything goes through the same
services as the pages and the API, and running it again adds only what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reviewapp.demo.items import MODEL_NAME
from reviewapp.demo.project import PROJECT_SLUG
from reviewapp.models import Project

DATASET_NAME = "Curated answers"
# Evidence a version needs before it is promoted (the demo's v2 passes them, v1 does not).
DEMO_GATES: tuple[dict[str, Any], ...] = (
    {"kind": "min_items", "params": {"count": 10}},
    {"kind": "min_pass_rate", "params": {"threshold": 0.5, "confidence": 0.95}},
    # The demo reviews 12 requests of each version: compare on them (the default minimum is 20).
    {
        "kind": "not_worse_than_champion",
        "params": {"metric": "human_pass_rate", "margin": 0.05, "min_shared_items": 10},
    },
)


@dataclass
class DemoPipelinesResult:
    project: Project
    versions_synced: list[str] = field(default_factory=list)
    environments: list[str] = field(default_factory=list)
    gates_created: int = 0
    dataset_version: int | None = None
    dataset_version_created: bool = False
    delivery_target: str = ""
    traffic_source: str = ""
    traffic_source_created: bool = False
    traffic_backfilled: int = 0  # past requests logged now (0: the traffic experiment had them already)
    traffic_items: int = 0  # items the first pull of the traffic source made


def demo_pipelines_load(*, backfill_hours: int | None = None) -> DemoPipelinesResult:
    from pipelines.datasets.pushes import delivery_target_create
    from pipelines.datasets.versions import dataset_create, dataset_version_create
    from pipelines.models import Dataset, DatasetVersion, DeliveryTarget, PromotionGate, TargetKind
    from pipelines.releases.gates import gate_create
    from pipelines.releases.promotion import environments_ensure_default
    from pipelines.releases.registry import registry_sync

    project = Project.objects.filter(slug=PROJECT_SLUG).first()
    if project is None:
        raise LookupError("The demo project does not exist yet: run `manage.py load_demo` first.")
    result = DemoPipelinesResult(project=project)

    if not project.mlflow_registered_model:
        project.mlflow_registered_model = MODEL_NAME
        project.save(update_fields=["mlflow_registered_model"])
    synced = registry_sync(project=project)
    result.versions_synced = synced.created + synced.updated + synced.unchanged

    result.environments = [e.name for e in environments_ensure_default(project=project)]
    if not PromotionGate.objects.filter(project=project).exists():
        for gate in DEMO_GATES:
            gate_create(project=project, kind=gate["kind"], params=gate["params"], actor=None)
            result.gates_created += 1

    dataset = Dataset.objects.filter(project=project, name=DATASET_NAME).first()
    if dataset is None:
        dataset = dataset_create(
            project=project,
            user=None,
            name=DATASET_NAME,
            description="Every curated label of the demo: the evaluation set and the fine-tuning source.",
            filter={},
        )
    latest = DatasetVersion.objects.filter(dataset=dataset).order_by("-number").first()
    if latest is None:
        latest = dataset_version_create(dataset=dataset, user=None, note="Loaded with the demo.")
        result.dataset_version_created = True
    result.dataset_version = latest.number

    target = DeliveryTarget.objects.filter(project=project, kind=TargetKind.DELTA).first()
    if target is None:
        target = delivery_target_create(project=project, kind=TargetKind.DELTA, feed_enabled=True, user=None)
    result.delivery_target = target.target

    # The demo moves (pipelines.demo_traffic): the traffic source, days of past traffic, and a first
    # pull of it, so the monitoring page has lines as soon as the beat's refresh runs.
    from pipelines.demo_traffic import BACKFILL_HOURS, demo_traffic_backfill, demo_traffic_source_ensure
    from pipelines.sources.pulls import source_pull_execute, source_pull_request

    source, result.traffic_source_created = demo_traffic_source_ensure(project=project)
    result.traffic_source = source.name
    result.traffic_backfilled = demo_traffic_backfill(
        project=project, hours=BACKFILL_HOURS if backfill_hours is None else backfill_hours
    )
    if result.traffic_backfilled:
        pull = source_pull_request(source=source, actor=None, trigger="manual", enqueue=False)
        done = source_pull_execute(pull_id=pull.pk)
        result.traffic_items = done.created if done is not None else 0
    return result
