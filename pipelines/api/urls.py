"""REST API v1 routes of pipelines, mounted under /api/v1/ (each area keeps its own list)."""

from __future__ import annotations

from pipelines.api import datasets, model_versions, monitoring, promotions, pushes

urlpatterns = (
    datasets.urlpatterns
    + pushes.urlpatterns
    + model_versions.urlpatterns
    + promotions.urlpatterns
    + monitoring.urlpatterns
)
