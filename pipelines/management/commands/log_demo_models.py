"""``python manage.py log_demo_models``: register the demo RAG chain as support-assistant v1 and v2 (idempotent)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from pipelines.adapters.errors import PipelineError


class Command(BaseCommand):
    help = "Log the demo RAG pipeline to MLflow as two registered versions of 'support-assistant'."

    def handle(self, *args: Any, **options: Any) -> None:
        from pipelines.demo_models import demo_models_ensure

        try:
            models = demo_models_ensure()
        except PipelineError as exc:
            raise CommandError(exc.message) from None
        for model in models:
            state = "registered" if model.created else "already registered"
            self.stdout.write(f"{model.version.uri} (variant {model.variant}): {state}")
        self.stdout.write(f"MLflow tracking URI: {settings.MLFLOW_TRACKING_URI}")
