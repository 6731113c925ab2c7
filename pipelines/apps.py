from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class PipelinesConfig(AppConfig):
    name = "pipelines"

    def ready(self) -> None:
        from pipelines import jobs  # noqa: F401 - registers pipelines' kinds of job
        from pipelines.sources.alerts import alerts_notices
        from reviewapp.project_notices import project_notice_provider_register
        from reviewapp.signals import items_ingested

        project_notice_provider_register("pipelines.alerts", alerts_notices)

        post_migrate.connect(_repair_expectations, sender=self, dispatch_uid="pipelines.repair_expectations")
        items_ingested.connect(_join_feedback, dispatch_uid="pipelines.join_feedback")


def _join_feedback(sender: Any, *, project: Any, item_ids: list[int], **kwargs: Any) -> None:
    """Newly ingested items: attach the end users' feedback that was waiting for them."""
    from pipelines.sources.feedback import feedback_join_items

    feedback_join_items(project=project, item_ids=item_ids)


def _repair_expectations(sender: AppConfig, *, using: str = "default", plan: Any = None, **kwargs: Any) -> None:
    """After ``migrate``: clear expectations that repeat a failed answer (pipelines.datasets.expectations).

    Only for the migrate command on a fully migrated default database (``plan`` is absent when a test
    flushes the database, and the models must match the tables); a no-op when there is nothing to fix.
    """
    if plan is None or using != "default":
        return
    from django.db import connections
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connections[using])
    if executor.migration_plan(executor.loader.graph.leaf_nodes()):
        return  # migrated to an older state: today's models may not match the tables
    from pipelines.datasets.expectations import expectations_fix

    repaired, versions = expectations_fix()
    stdout = kwargs.get("stdout")
    if stdout is not None and kwargs.get("verbosity", 1) and (repaired.changed or versions.changed):
        stdout.write(
            f"  Expectations repaired: {len(repaired.reviews)} reviews, {len(repaired.labels)} labels; "
            f"{len(versions.flagged)} dataset versions need a new version."
        )
