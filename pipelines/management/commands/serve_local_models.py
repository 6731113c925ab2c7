"""``python manage.py serve_local_models``: (re)start every local environment's endpoint after a reboot.

For each local environment that serves a version, its model servers (the current version, and the
canary beside it when a rollout stopped half-way) and its proxy are started as the rollout engine
left them (``pipelines.releases.serving.local_endpoint_restore``); what already runs is left alone, so the
command is safe to run at every start-up. ``--stop`` stops every local model server and proxy.
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from pipelines.adapters.errors import PipelineError
from pipelines.models import Environment, Rollout
from pipelines.releases.serving import local_endpoint_restore, local_serving_stop_all


class Command(BaseCommand):
    help = "(Re)start the local MLflow model servers and endpoints of every local environment (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", help="Only this project's environments (its slug).")
        parser.add_argument("--stop", action="store_true", help="Stop every local model server and endpoint.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["stop"]:
            local_serving_stop_all()
            self.stdout.write("Stopped every local model server and endpoint.")
            return
        environments = (
            Environment.objects.filter(serving_kind=Environment.ServingKind.LOCAL, local_port__isnull=False)
            .select_related("project", "current_version")
            .order_by("project__slug", "name")
        )
        if options["project"]:
            environments = environments.filter(project__slug=options["project"])
        busy = set(
            Rollout.objects.filter(status__in=[Rollout.Status.QUEUED, Rollout.Status.RUNNING]).values_list(
                "environment_id", flat=True
            )
        )
        failed = []
        for environment in environments:
            label = f"{environment.project.slug}/{environment.name}"
            if environment.pk in busy:
                self.stdout.write(f"{label}: a rollout is in progress; its worker manages the endpoint")
                continue
            try:
                result = local_endpoint_restore(
                    environment=environment,
                    deadline=time.monotonic() + environment.ready_timeout_seconds,
                    heartbeat=lambda: None,
                )
            except PipelineError as exc:
                failed.append(label)
                self.stderr.write(f"{label}: {exc.message}")
                continue
            if not result["routes"]:
                self.stdout.write(f"{label}: serves no version yet")
                continue
            split = ", ".join(f"v{r['version']} {r['weight']}%" for r in result["routes"])
            state = f"started {', '.join(result['started'])}" if result["started"] else "already running"
            self.stdout.write(f"{label}: {split} on http://127.0.0.1:{environment.local_port}/invocations ({state})")
        if failed:
            raise CommandError(f"could not start: {', '.join(failed)}")
