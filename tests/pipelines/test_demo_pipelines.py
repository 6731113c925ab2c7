"""The demo's lakehouse side, loaded through the real services: versions, environments, gates, data."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import override_settings

from pipelines.demo import DATASET_NAME, DEMO_GATES
from pipelines.demo_traffic import SOURCE_NAME
from pipelines.models import (
    Dataset,
    DeliveryTarget,
    Environment,
    ModelVersion,
    PromotionGate,
    Source,
    SourcedItem,
)
from pipelines.releases.gates import gates_evaluate
from reviewapp.models import CuratedLabel, Project


@pytest.mark.django_db
@pytest.mark.slow
def test_demo_pipelines_load_everything_once_and_v2_passes_its_gates(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with override_settings(
        MLFLOW_TRACKING_URI=uri,
        MLFLOW_ARTIFACT_ROOT=str(tmp_path / "art"),
        MLFLOW_REGISTRY_URI="",
        DELTA_ROOT=str(tmp_path / "delta"),
    ):
        call_command("load_demo", stdout=StringIO())
        call_command("log_demo_models", stdout=StringIO())
        out = StringIO()
        call_command("load_demo_pipelines", "--backfill-hours=3", stdout=out)
        project = Project.objects.get(slug="support-assistant")

        assert project.mlflow_registered_model == "support-assistant"
        assert sorted(ModelVersion.objects.filter(project=project).values_list("version", flat=True)) == ["1", "2"]
        assert set(Environment.objects.filter(project=project).values_list("name", flat=True)) == {
            "staging",
            "production",
        }
        assert PromotionGate.objects.filter(project=project).count() == len(DEMO_GATES)
        dataset = Dataset.objects.get(project=project, name=DATASET_NAME)
        version = dataset.versions.get()
        assert version.row_count == CuratedLabel.objects.filter(project=project).count() > 0
        target = DeliveryTarget.objects.get(project=project)
        assert target.feed_enabled and target.target.startswith(str(tmp_path / "delta"))
        assert "Dataset 'Curated answers' v1 (created)" in out.getvalue()
        # The demo moves: its traffic source, 3 hours of past requests (2 an hour), pulled once.
        source = Source.objects.get(project=project, name=SOURCE_NAME)
        assert (source.kind, source.interval_seconds, source.last_status) == ("mlflow_traces", 15, "succeeded")
        assert "(created): 6 past requests logged" in out.getvalue()
        assert SourcedItem.objects.filter(source=source).count() == source.last_summary["created"]

        # The demo's story: v2 has the evidence to be promoted to production, v1 does not.
        production = Environment.objects.get(project=project, name="production")
        v1, v2 = (ModelVersion.objects.get(project=project, version=n) for n in ("1", "2"))
        report = gates_evaluate(model_version=v2, environment=production)
        assert report.passed
        assert not gates_evaluate(model_version=v1, environment=production).passed
        lines = {line.kind: line for line in report.lines}
        assert "24 reviews of 12 items" in lines["min_items"].detail  # two reviews per item, counted as items
        # Against v1 as the champion, the two versions are compared on the 12 requests both answered.
        production.current_version = v1
        production.save(update_fields=["current_version"])
        not_worse = next(line for line in gates_evaluate(model_version=v2, environment=production).lines
                         if line.kind == "not_worse_than_champion")  # fmt: skip
        assert not_worse.figures["shared"] == 12 and not_worse.figures["lower_bound"] is not None, not_worse.detail
        production.current_version = None
        production.save(update_fields=["current_version"])

        again = StringIO()
        call_command("load_demo_pipelines", stdout=again)
        assert "(present)" in again.getvalue() and "gates added: 0" in again.getvalue()
        assert "(present): 0 past requests logged" in again.getvalue()
        assert PromotionGate.objects.filter(project=project).count() == len(DEMO_GATES)
        assert dataset.versions.count() == 1
        assert DeliveryTarget.objects.filter(project=project).count() == 1
