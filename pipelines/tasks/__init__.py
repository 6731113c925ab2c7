"""Celery tasks of pipelines; Celery's autodiscovery imports this package, which imports each area."""

from pipelines.tasks import (  # noqa: F401
    assessments,
    datasets,
    demo,
    model_versions,
    monitoring,
    promotions,
    pushes,
    sources,
)
