"""The browser UI for reviewers (htmx); the REST API lives under /api/v1/."""

from __future__ import annotations

from django.urls import path
from django.views.generic import RedirectView

from reviewapp.views import projects, review, reviews, tokens

urlpatterns = [
    path("", projects.project_list, name="project-list"),
    path("projects/<slug:slug>/review/", review.review_page, name="review-page"),
    path("projects/<slug:slug>/review/<int:assignment_id>/submit/", review.review_submit_view, name="review-submit"),
    path("projects/<slug:slug>/review/<int:assignment_id>/skip/", review.review_skip_view, name="review-skip"),
    path("projects/<slug:slug>/review/<int:assignment_id>/renew/", review.review_renew_view, name="review-renew"),
    path("reviews/", reviews.review_list, name="review-list"),
    path("reviews/<int:pk>/", reviews.review_detail, name="review-detail"),
    path("settings/", RedirectView.as_view(pattern_name="token-list"), name="settings"),
    path("settings/tokens/", tokens.token_list, name="token-list"),
    path("settings/tokens/<int:pk>/revoke/", tokens.token_revoke, name="token-revoke"),
]
