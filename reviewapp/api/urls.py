"""REST API v1. Where two operations share a URL, one class combines their two APIViews."""

from __future__ import annotations

from django.urls import URLPattern, path

from reviewapp.api.assignments import (
    GroupDetailApi,
    ItemSendBackApi,
    ProjectAssignmentsApi,
    ProjectGroupsApi,
    QueueSettingsApi,
)
from reviewapp.api.audit import AuditListApi
from reviewapp.api.curation import AdjudicationApi, AdjudicationListApi, CuratedLabelListApi, SchemaVersionListApi
from reviewapp.api.flags import ProjectFlagsApi
from reviewapp.api.gold import GoldAccuracyApi, GoldDetailApi, ProjectGoldApi
from reviewapp.api.items import ProjectItemsApi
from reviewapp.api.label_schema import ProjectSchemaApi
from reviewapp.api.members import (
    InvitationDetailApi,
    MemberDetailApi,
    ProjectInvitationsApi,
    ProjectMembersApi,
    UserDetailApi,
    UsersApi,
)
from reviewapp.api.pairwise import (
    PairwiseNextApi,
    PairwisePreferenceSubmitApi,
    PairwiseResultsApi,
    PairwiseTasksCreateApi,
)
from reviewapp.api.projects import (
    ProjectArchiveApi,
    ProjectDetailApi,
    ProjectListApi,
    ProjectRestoreApi,
    ProjectSyncApi,
)
from reviewapp.api.queue import AssignmentRenewApi, AssignmentSkipApi, QueueNextApi
from reviewapp.api.reviews import ProjectReviewsApi, ReviewApi
from reviewapp.api.stats import ProjectStatsApi
from reviewapp.api.tokens import TokenRevokeApi, TokensApi

urlpatterns: list[URLPattern] = [
    path("projects/", ProjectListApi.as_view(), name="api-project-list"),
    path("projects/<slug:slug>/", ProjectDetailApi.as_view(), name="api-project-detail"),
    path("projects/<slug:slug>/archive/", ProjectArchiveApi.as_view(), name="api-project-archive"),
    path("projects/<slug:slug>/restore/", ProjectRestoreApi.as_view(), name="api-project-restore"),
    path("projects/<slug:slug>/syncs/<int:pk>/", ProjectSyncApi.as_view(), name="api-project-sync"),
    path("projects/<slug:slug>/items/", ProjectItemsApi.as_view(), name="api-items"),
    path("projects/<slug:slug>/queue/next/", QueueNextApi.as_view(), name="api-queue-next"),
    path("projects/<slug:slug>/reviews/", ProjectReviewsApi.as_view(), name="api-reviews"),
    path("projects/<slug:slug>/assignments/", ProjectAssignmentsApi.as_view(), name="api-assignments"),
    path("projects/<slug:slug>/groups/", ProjectGroupsApi.as_view(), name="api-groups"),
    path("projects/<slug:slug>/groups/<int:pk>/", GroupDetailApi.as_view(), name="api-group"),
    path("projects/<slug:slug>/queue-settings/", QueueSettingsApi.as_view(), name="api-queue-settings"),
    path("projects/<slug:slug>/items/<int:pk>/send-back/", ItemSendBackApi.as_view(), name="api-item-send-back"),
    path("projects/<slug:slug>/flags/", ProjectFlagsApi.as_view(), name="api-flags"),
    path("projects/<slug:slug>/gold/", ProjectGoldApi.as_view(), name="api-gold"),
    path("projects/<slug:slug>/gold/accuracy/", GoldAccuracyApi.as_view(), name="api-gold-accuracy"),
    path("projects/<slug:slug>/gold/<int:item_id>/", GoldDetailApi.as_view(), name="api-gold-detail"),
    path("projects/<slug:slug>/audit/", AuditListApi.as_view(), name="api-audit"),
    path("projects/<slug:slug>/stats/", ProjectStatsApi.as_view(), name="api-stats"),
    path("projects/<slug:slug>/adjudications/", AdjudicationListApi.as_view(), name="api-adjudications"),
    path("projects/<slug:slug>/adjudications/<int:item_id>/", AdjudicationApi.as_view(), name="api-adjudication"),
    path("projects/<slug:slug>/curated-labels/", CuratedLabelListApi.as_view(), name="api-curated-labels"),
    path("projects/<slug:slug>/schema/", ProjectSchemaApi.as_view(), name="api-project-schema"),
    path("projects/<slug:slug>/schema-versions/", SchemaVersionListApi.as_view(), name="api-schema-versions"),
    path("projects/<slug:slug>/pairwise/tasks/", PairwiseTasksCreateApi.as_view(), name="api-pairwise-tasks"),
    path("projects/<slug:slug>/pairwise/next/", PairwiseNextApi.as_view(), name="api-pairwise-next"),
    path(
        "projects/<slug:slug>/pairwise/preferences/",
        PairwisePreferenceSubmitApi.as_view(),
        name="api-pairwise-preferences",
    ),
    path("projects/<slug:slug>/pairwise/results/", PairwiseResultsApi.as_view(), name="api-pairwise-results"),
    path("projects/<slug:slug>/members/", ProjectMembersApi.as_view(), name="api-members"),
    path("projects/<slug:slug>/members/<str:username>/", MemberDetailApi.as_view(), name="api-member"),
    path("projects/<slug:slug>/invitations/", ProjectInvitationsApi.as_view(), name="api-invitations"),
    path("projects/<slug:slug>/invitations/<int:pk>/", InvitationDetailApi.as_view(), name="api-invitation"),
    path("users/", UsersApi.as_view(), name="api-users"),
    path("users/<str:username>/", UserDetailApi.as_view(), name="api-user"),
    path("assignments/<int:pk>/renew/", AssignmentRenewApi.as_view(), name="api-assignment-renew"),
    path("assignments/<int:pk>/skip/", AssignmentSkipApi.as_view(), name="api-assignment-skip"),
    path("reviews/<int:pk>/", ReviewApi.as_view(), name="api-review"),
    path("tokens/", TokensApi.as_view(), name="api-tokens"),
    path("tokens/<int:pk>/", TokenRevokeApi.as_view(), name="api-token-revoke"),
]
