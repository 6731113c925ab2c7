"""REST API v1 routes of pipelines, mounted under /api/v1/ (each area keeps its own list)."""

from __future__ import annotations

from pipelines.api import alerts, datasets, feedback, model_versions, monitoring, promotions, pushes, sources

urlpatterns = (
    datasets.urlpatterns
    + pushes.urlpatterns
    + model_versions.urlpatterns
    + promotions.urlpatterns
    + feedback.urlpatterns
    + sources.urlpatterns
    + monitoring.urlpatterns
    + alerts.urlpatterns
)
