"""REST API routes of datasets, versions, exports and export jobs."""

from __future__ import annotations

from django.urls import URLPattern, path

from pipelines.api.datasets.datasets import (
    DatasetDetailApi,
    DatasetVersionDetailApi,
    DatasetVersionDiffApi,
    DatasetVersionRowsApi,
    DatasetVersionsApi,
    ProjectDatasetsApi,
)
from pipelines.api.datasets.exports import CuratedExportApi, DatasetVersionExportApi
from pipelines.api.datasets.jobs import ExportJobApi, ExportJobDownloadApi, ProjectExportJobsApi

urlpatterns: list[URLPattern] = [
    path("projects/<slug:slug>/datasets/", ProjectDatasetsApi.as_view(), name="api-datasets"),
    path("projects/<slug:slug>/curated/export/", CuratedExportApi.as_view(), name="api-curated-export"),
    path("projects/<slug:slug>/exports/", ProjectExportJobsApi.as_view(), name="api-export-jobs"),
    path("datasets/<int:pk>/", DatasetDetailApi.as_view(), name="api-dataset"),
    path("datasets/<int:pk>/versions/", DatasetVersionsApi.as_view(), name="api-dataset-versions"),
    path("datasets/<int:pk>/versions/<int:number>/", DatasetVersionDetailApi.as_view(), name="api-dataset-version"),
    path(
        "datasets/<int:pk>/versions/<int:number>/diff/",
        DatasetVersionDiffApi.as_view(),
        name="api-dataset-version-diff",
    ),
    path(
        "datasets/<int:pk>/versions/<int:number>/rows/",
        DatasetVersionRowsApi.as_view(),
        name="api-dataset-version-rows",
    ),
    path(
        "datasets/<int:pk>/versions/<int:number>/export/",
        DatasetVersionExportApi.as_view(),
        name="api-dataset-version-export",
    ),
    path("exports/<int:pk>/", ExportJobApi.as_view(), name="api-export-job"),
    path("exports/<int:pk>/download/", ExportJobDownloadApi.as_view(), name="api-export-job-download"),
]
