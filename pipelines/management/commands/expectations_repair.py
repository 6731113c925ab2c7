"""``manage.py expectations_repair``: clear expectations that repeat a failed answer (also run by ``migrate``)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from pipelines.datasets.expectations import expectations_fix


class Command(BaseCommand):
    help = (
        "Find reviews and curated labels whose expected response repeats the response they fail, clear it, "
        "re-run curation for those items and record each change in the audit log; then count, per dataset "
        "version, the frozen rows holding one (those versions need a new version). Idempotent; migrate runs it."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        repaired, versions = expectations_fix()
        self.stdout.write(
            f"Cleared {len(repaired.reviews)} review expectations and {len(repaired.labels)} curated label "
            f"expectations on {len(repaired.items)} items; {len(versions.flagged)} dataset versions hold "
            "rows with such expectations (they need a new version)."
        )
