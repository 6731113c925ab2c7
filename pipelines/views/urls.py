"""Page routes of pipelines, mounted at the site root (each area keeps its own list)."""

from __future__ import annotations

from pipelines.views import datasets, feedback, model_versions, monitoring, promotions, pushes, sources

urlpatterns = (
    datasets.urlpatterns
    + pushes.urlpatterns
    + model_versions.urlpatterns
    + promotions.urlpatterns
    + feedback.urlpatterns
    + sources.urlpatterns
    + monitoring.urlpatterns
)
