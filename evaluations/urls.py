"""Evaluation pages, mounted at /evaluations/."""

from __future__ import annotations

from django.urls import path

from evaluations import views

urlpatterns = [
    path("", views.evaluations_home, name="evaluations-home"),
    path("projects/<slug:slug>/", views.project_evaluations, name="evaluations-project"),
    path("projects/<slug:slug>/suites/", views.suite_create_view, name="evaluations-suite-create"),
    path("projects/<slug:slug>/suites/<int:pk>/", views.suite_detail, name="evaluations-suite"),
    path(
        "projects/<slug:slug>/suites/<int:pk>/versions/",
        views.suite_version_create_view,
        name="evaluations-suite-version-create",
    ),
    path("projects/<slug:slug>/runs/", views.run_start_view, name="evaluations-run-start"),
    path("runs/compare/", views.runs_compare_view, name="evaluations-compare"),
    path("runs/<int:pk>/", views.run_detail, name="evaluations-run"),
    path("runs/<int:pk>/status/", views.run_status, name="evaluations-run-status"),
    path("runs/<int:pk>/metrics/", views.run_metrics_view, name="evaluations-run-metrics"),
    path("runs/<int:pk>/cancel/", views.run_cancel_view, name="evaluations-run-cancel"),
    path("runs/<int:pk>/disagreements/", views.run_disagreements_send_view, name="evaluations-run-disagreements"),
]
