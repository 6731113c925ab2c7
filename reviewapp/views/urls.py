"""The browser UI for reviewers (htmx); the REST API lives under /api/v1/."""

from __future__ import annotations

from django.urls import path
from django.views.generic import RedirectView

from reviewapp.views import (
    adjudication,
    assignments,
    audit,
    curate,
    dashboard,
    instance,
    invitations,
    members,
    pairwise,
    project_setup,
    projects,
    review,
    reviews,
    schema,
    tokens,
)
from reviewapp.views.slots import queue_urls

urlpatterns = [
    path("", projects.project_list, name="project-list"),
    path("projects/new/", project_setup.project_new, name="project-new"),
    path("projects/guidelines-preview/", project_setup.guidelines_preview, name="guidelines-preview"),
    path("projects/<slug:slug>/settings/", project_setup.project_settings, name="project-settings"),
    path("projects/<slug:slug>/settings/sync/", project_setup.project_sync_progress, name="project-sync-progress"),
    path("projects/<slug:slug>/archive/", project_setup.project_archive_view, name="project-archive"),
    path("projects/<slug:slug>/restore/", project_setup.project_restore_view, name="project-restore"),
    *queue_urls(review.QUEUE, review.review_submit_view),
    path("projects/<slug:slug>/review/<int:slot_id>/flag/", review.review_flag_view, name="review-flag"),
    path("projects/<slug:slug>/assignments/", assignments.assignments_page, name="assignments-page"),
    path("projects/<slug:slug>/assignments/assign/", assignments.assignments_assign, name="assignments-assign"),
    path("projects/<slug:slug>/assignments/settings/", assignments.assignments_settings, name="assignments-settings"),
    path("projects/<slug:slug>/groups/", assignments.groups_create, name="groups-create"),
    path("projects/<slug:slug>/audit/", audit.audit_page, name="audit-page"),
    path("projects/<slug:slug>/schema/", schema.schema_editor, name="schema-editor"),
    path("projects/<slug:slug>/schema/diff/", schema.schema_version_diff, name="schema-diff"),
    path("projects/<slug:slug>/dashboard/", dashboard.project_dashboard, name="project-dashboard"),
    path("projects/<slug:slug>/reviewers/", dashboard.reviewer_dashboard, name="reviewer-dashboard"),
    *queue_urls(pairwise.QUEUE, pairwise.pairwise_submit_view),
    path("projects/<slug:slug>/pairwise/new/", curate.pairwise_create, name="pairwise-create"),
    path("projects/<slug:slug>/pairwise/new/preview/", curate.pairwise_create_preview, name="pairwise-preview"),
    path("projects/<slug:slug>/curate/", curate.curate_page, name="curate-page"),
    path("projects/<slug:slug>/curate/items/<int:item_id>/", curate.curate_item, name="curate-item"),
    path(
        "projects/<slug:slug>/curate/items/<int:item_id>/send-back/", curate.curate_send_back, name="curate-send-back"
    ),
    path("projects/<slug:slug>/curate/items/<int:item_id>/gold/", curate.curate_gold_set, name="curate-gold-set"),
    path(
        "projects/<slug:slug>/curate/items/<int:item_id>/gold/delete/",
        curate.curate_gold_delete,
        name="curate-gold-delete",
    ),
    path("projects/<slug:slug>/curate/flags/<int:flag_id>/", curate.curate_flag_close, name="curate-flag-close"),
    path("projects/<slug:slug>/pairwise/results/", pairwise.pairwise_results_view, name="pairwise-results"),
    path("projects/<slug:slug>/adjudicate/", adjudication.adjudication_queue, name="adjudication-queue"),
    path("projects/<slug:slug>/adjudicate/<int:item_id>/", adjudication.adjudication_item, name="adjudication-item"),
    path(
        "projects/<slug:slug>/adjudicate/settings/",
        adjudication.adjudication_settings,
        name="adjudication-settings",
    ),
    path("projects/<slug:slug>/members/", members.members_page, name="members-page"),
    path("projects/<slug:slug>/members/add/", members.member_add_view, name="member-add"),
    path("projects/<slug:slug>/members/<str:username>/role/", members.member_role_view, name="member-role"),
    path("projects/<slug:slug>/members/<str:username>/remove/", members.member_remove_view, name="member-remove"),
    path("projects/<slug:slug>/invitations/", members.invitation_create_view, name="invitation-create"),
    path(
        "projects/<slug:slug>/invitations/<int:pk>/revoke/",
        members.invitation_revoke_view,
        name="invitation-revoke",
    ),
    path("projects/<slug:slug>/members/groups/", members.group_create_view, name="members-group-create"),
    path("projects/<slug:slug>/members/groups/<int:pk>/", members.group_update_view, name="members-group-update"),
    path(
        "projects/<slug:slug>/members/groups/<int:pk>/delete/",
        members.group_delete_view,
        name="members-group-delete",
    ),
    path("invite/<str:token>/", invitations.invitation_accept_view, name="invitation-accept"),
    path("instance/", instance.instance_page, name="instance-page"),
    path("instance/users/<str:username>/", instance.instance_user_action, name="instance-user"),
    path("reviews/", reviews.review_list, name="review-list"),
    path("reviews/<int:pk>/", reviews.review_detail, name="review-detail"),
    path("settings/", RedirectView.as_view(pattern_name="token-list"), name="settings"),
    path("settings/tokens/", tokens.token_list, name="token-list"),
    path("settings/tokens/<int:pk>/revoke/", tokens.token_revoke, name="token-revoke"),
]
