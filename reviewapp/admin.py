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


class QuestionInline(admin.TabularInline):
    model = Question
    extra = 0


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "reviews_per_item", "schema_version", "self_adjudication"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [QuestionInline, MembershipInline]


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


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "actor", "action", "target_type", "target_id", "project"]
    list_filter = ["action", "project"]

    # Append-only: events are written by services (audit_record), never made, edited or removed by hand.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyAdmin(admin.ModelAdmin):
    """Written only by services (curation, question changes), so the admin shows them and no more."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


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
