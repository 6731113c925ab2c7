from __future__ import annotations

from django.contrib import admin

from reviewapp.models import ApiToken, AuditEvent, Item, Membership, Project, Question, Review


class QuestionInline(admin.TabularInline):
    model = Question
    extra = 0


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "reviews_per_item", "schema_version"]
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


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "actor", "action", "target_type", "target_id", "project"]
    list_filter = ["action", "project"]

    def has_change_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False  # append-only

    def has_delete_permission(self, request, obj=None) -> bool:  # type: ignore[no-untyped-def]
        return False
