"""REST API v1 routes of evaluations, mounted under /api/v1/ beside reviewapp's."""

from __future__ import annotations

from django.urls import URLPattern, path

from evaluations.api import (
    ProjectSuitesApi,
    RunCancelApi,
    RunDetailApi,
    RunDisagreementsApi,
    RunResultsApi,
    RunsApi,
    RunsCompareApi,
    SuiteDetailApi,
    SuiteVersionCreateApi,
)

urlpatterns: list[URLPattern] = [
    path("projects/<slug:slug>/suites/", ProjectSuitesApi.as_view(), name="api-suites"),
    path("projects/<slug:slug>/suites/<int:pk>/", SuiteDetailApi.as_view(), name="api-suite"),
    path("projects/<slug:slug>/suites/<int:pk>/versions/", SuiteVersionCreateApi.as_view(), name="api-suite-versions"),
    path("runs/", RunsApi.as_view(), name="api-runs"),
    path("runs/compare/", RunsCompareApi.as_view(), name="api-runs-compare"),
    path("runs/<int:pk>/", RunDetailApi.as_view(), name="api-run"),
    path("runs/<int:pk>/results/", RunResultsApi.as_view(), name="api-run-results"),
    path("runs/<int:pk>/cancel/", RunCancelApi.as_view(), name="api-run-cancel"),
    path("runs/<int:pk>/disagreements/", RunDisagreementsApi.as_view(), name="api-run-disagreements"),
]
