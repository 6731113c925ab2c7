"""REST API v1. Where two operations share a URL, one class combines their two APIViews."""

from __future__ import annotations

from django.urls import URLPattern, path

from reviewapp.api.items import ProjectItemsApi
from reviewapp.api.projects import ProjectDetailApi, ProjectListApi
from reviewapp.api.queue import AssignmentRenewApi, AssignmentSkipApi, QueueNextApi
from reviewapp.api.reviews import ProjectReviewsApi, ReviewApi
from reviewapp.api.tokens import TokenRevokeApi, TokensApi

urlpatterns: list[URLPattern] = [
    path("projects/", ProjectListApi.as_view(), name="api-project-list"),
    path("projects/<slug:slug>/", ProjectDetailApi.as_view(), name="api-project-detail"),
    path("projects/<slug:slug>/items/", ProjectItemsApi.as_view(), name="api-items"),
    path("projects/<slug:slug>/queue/next/", QueueNextApi.as_view(), name="api-queue-next"),
    path("projects/<slug:slug>/reviews/", ProjectReviewsApi.as_view(), name="api-reviews"),
    path("assignments/<int:pk>/renew/", AssignmentRenewApi.as_view(), name="api-assignment-renew"),
    path("assignments/<int:pk>/skip/", AssignmentSkipApi.as_view(), name="api-assignment-skip"),
    path("reviews/<int:pk>/", ReviewApi.as_view(), name="api-review"),
    path("tokens/", TokensApi.as_view(), name="api-tokens"),
    path("tokens/<int:pk>/", TokenRevokeApi.as_view(), name="api-token-revoke"),
]
