from __future__ import annotations

from django.apps import AppConfig


class ReviewappConfig(AppConfig):
    name = "reviewapp"
    verbose_name = "Reviewdesk review"

    def ready(self) -> None:
        from reviewapp import job_kinds  # noqa: F401 - registers reviewapp's kinds of job
