"""``python manage.py load_demo_pipelines``: model versions, environments, gates, a dataset and a Delta feed."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from pipelines.adapters.errors import PipelineError


class Command(BaseCommand):
    help = (
        "Complete the demo project for datasets and promotion: sync support-assistant's versions from the MLflow "
        "registry, add local staging/production environments, promotion gates, the 'Curated answers' dataset "
        "with a first version, and a local Delta delivery target. Run after load_demo and log_demo_models; "
        "safe to run again."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--backfill-hours",
            type=int,
            default=None,
            help="Hours of past simulated traffic to log on the first load (default 72; 0: none).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not (settings.DEBUG or getattr(settings, "TESTING", False)):
            raise CommandError("load_demo_pipelines is for the demo: run it with DEBUG=true.")
        from pipelines.demo import demo_pipelines_load

        try:
            result = demo_pipelines_load(backfill_hours=options["backfill_hours"])
        except LookupError as exc:
            raise CommandError(str(exc)) from None
        except PipelineError as exc:
            raise CommandError(exc.message) from None
        versions = ", ".join(f"v{v}" for v in result.versions_synced) or "none"
        self.stdout.write(f"Model versions of {result.project.mlflow_registered_model}: {versions}")
        self.stdout.write(f"Environments: {', '.join(result.environments)}; gates added: {result.gates_created}")
        made = "created" if result.dataset_version_created else "present"
        self.stdout.write(f"Dataset 'Curated answers' v{result.dataset_version} ({made})")
        self.stdout.write(f"Delta feed: {result.delivery_target}")
        made = "created" if result.traffic_source_created else "present"
        self.stdout.write(
            f"Traffic source '{result.traffic_source}' ({made}): {result.traffic_backfilled} past requests logged, "
            f"{result.traffic_items} items pulled"
        )
