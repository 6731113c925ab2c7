from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from reviewapp.forms import AdminLoginForm
from reviewapp.models import (
    Adjudication,
    ApiToken,
    AuditEvent,
    CuratedLabel,
    Flag,
    GoldAnswer,
    Invitation,
    Item,
    Membership,
    Project,
    Question,
    Review,
    ReviewerGroup,
    SchemaVersion,
)

# The admin's sign-in is throttled like the app's (reviewapp.services.login_throttle).
admin.site.login_form = AdminLoginForm


class ReadOnlyAdmin(admin.ModelAdmin):
    """Written only by services (projects, schema, members, curation, audit), which validate, version and
    audit each change; the admin shows these rows and no more, so it stays an operator's tool."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class QuestionInline(ReadOnlyInline):
    model = Question
    fields = ["order", "key", "title", "kind", "assessment_type", "required", "consensus_rule"]


class MembershipInline(ReadOnlyInline):
    model = Membership
    fields = ["user", "role", "created_at"]


@admin.register(Project)
class ProjectAdmin(ReadOnlyAdmin):
    """Projects, their questions and members change on the project's own pages (and the REST API)."""

    list_display = ["name", "slug", "reviews_per_item", "schema_version", "self_adjudication"]
    inlines = [QuestionInline, MembershipInline]


@admin.register(Question)
class QuestionAdmin(ReadOnlyAdmin):
    list_display = ["key", "project", "kind", "required", "order"]
    list_filter = ["project", "kind"]


@admin.register(Membership)
class MembershipAdmin(ReadOnlyAdmin):
    list_display = ["user", "project", "role", "created_at"]
    list_filter = ["project", "role"]
    search_fields = ["user__username"]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """Append-only: events are written by services (audit_record), never made, edited or removed by hand."""

    list_display = ["created_at", "actor", "action", "target_type", "target_id", "project"]
    list_filter = ["action", "project"]


@admin.register(Invitation)
class InvitationAdmin(ReadOnlyAdmin):
    list_display = ["prefix", "project", "role", "email", "created_by", "expires_at", "accepted_by", "revoked_at"]
    list_filter = ["project", "role"]
    exclude = ["secret_hash"]


@admin.register(Item)
class ItemAdmin(admin.ModelAdmin):
    list_display = ["external_id", "project", "model_version", "review_count", "created_at"]
    list_filter = ["project", "model_version"]
    search_fields = ["external_id", "trace_id"]


@admin.register(Review)
class ReviewAdmin(admin.ModelAdmin):
    list_display = ["id", "item", "reviewer", "submitted_at"]
    list_filter = ["project"]
    raw_id_fields = ["item", "assignment"]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "prefix", "user", "scopes", "project", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "secret_hash"]


@admin.register(ReviewerGroup)
class ReviewerGroupAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "created_at"]
    list_filter = ["project"]
    filter_horizontal = ["members"]


@admin.register(Flag)
class FlagAdmin(admin.ModelAdmin):
    list_display = ["created_at", "kind", "item", "created_by", "project"]
    list_filter = ["project", "kind"]
    raw_id_fields = ["item"]


@admin.register(GoldAnswer)
class GoldAnswerAdmin(admin.ModelAdmin):
    """Change gold answers through the API or services (they are validated and audited there)."""

    list_display = ["item", "project", "created_by", "updated_at"]
    list_filter = ["project"]
    readonly_fields = ["project", "item", "answers", "note", "created_by"]


@admin.register(CuratedLabel)
class CuratedLabelAdmin(ReadOnlyAdmin):
    list_display = ["item", "method", "decided_by", "schema_version", "reviews_changed_at", "updated_at"]
    list_filter = ["project", "method"]
    raw_id_fields = ["item"]


@admin.register(Adjudication)
class AdjudicationAdmin(ReadOnlyAdmin):
    list_display = ["item", "status", "reason", "opened_at", "decided_at"]
    list_filter = ["project", "status", "reason"]


@admin.register(SchemaVersion)
class SchemaVersionAdmin(ReadOnlyAdmin):
    list_display = ["project", "version", "created_at", "updated_at"]
    list_filter = ["project"]
