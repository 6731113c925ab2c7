"""``manage.py ingest_traces --project SLUG --experiment NAME``: items from an MLflow experiment's traces."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from pipelines.adapters.errors import PipelineError
from pipelines.models import SourcePull
from pipelines.sources.commands import traces_pull_inline
from reviewapp.errors import ValidationFailed
from reviewapp.selectors.projects import project_get_by_slug

SKIPPED_SHOWN = 20


def _since(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"--since must be an ISO date or time (e.g. 2026-11-01T00:00:00Z), not {value!r}.") from exc


class Command(BaseCommand):
    help = (
        "Ingest RAG outputs from the traces of an MLflow experiment (the configured MLFLOW_TRACKING_URI). "
        "Each trace becomes an item with external_id = trace id, so re-running adds nothing twice. "
        "--sample-rate keeps a deterministic share of the traces (a higher rate keeps a superset). "
        "It runs a pull of the project's source 'ingest_traces:<experiment>' here (created, disabled, "
        "on first use; enable it on the Sources page to have the beat pull it)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, help="The project's slug.")
        parser.add_argument("--experiment", required=True, help="The MLflow experiment's name (or id).")
        parser.add_argument("--filter", default="", help="An MLflow trace filter, e.g. \"tag.env = 'prod'\".")
        parser.add_argument("--since", type=_since, help="Only traces started at or after this ISO time.")
        parser.add_argument("--sample-rate", type=float, default=1.0, help="Share of traces kept, in (0, 1].")
        parser.add_argument("--max", type=int, default=10_000, help="Read at most this many traces (default 10000).")

    def handle(self, *args: Any, **options: Any) -> None:
        project = project_get_by_slug(slug=options["project"])
        if project is None:
            raise CommandError(f"No project with slug '{options['project']}'.")
        try:
            pull = traces_pull_inline(
                project=project,
                experiment=options["experiment"],
                filter_string=options["filter"],
                since=options["since"],
                sample_rate=options["sample_rate"],
                max_traces=options["max"],
            )
        except (ValueError, PipelineError, ValidationFailed) as exc:
            raise CommandError(str(exc)) from exc
        if pull.status == SourcePull.Status.FAILED:
            raise CommandError(pull.error)
        experiment_id = (pull.watermark_to or {}).get("experiment_id") or options["experiment"]
        self.stdout.write(
            f"{project.slug}: {pull.scanned} traces read from experiment {experiment_id}: "
            f"{pull.created} items created, {pull.updated} updated, {pull.unchanged} unchanged, "
            f"{pull.sampled_out} sampled out, {pull.skipped} skipped."
        )
        reasons = list(pull.skipped_reasons.items())
        for trace_id, reason in reasons[:SKIPPED_SHOWN]:
            self.stdout.write(f"  skipped {trace_id}: {reason}")
        if pull.skipped > SKIPPED_SHOWN:
            self.stdout.write(f"  ... and {pull.skipped - SKIPPED_SHOWN} more skipped.")
