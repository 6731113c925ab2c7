from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from evaluations.models import Endpoint, JudgeCacheEntry


@admin.register(Endpoint)
class EndpointAdmin(admin.ModelAdmin):
    """Admin-managed endpoints. REVIEWDESK_ENDPOINTS entries are not rows; they win, and their names are refused."""

    list_display = ["name", "kind", "url", "endpoint_name", "model", "credential_env", "max_concurrency", "enabled"]
    list_filter = ["kind", "enabled"]
    search_fields = ["name", "url", "endpoint_name", "model"]
    fieldsets = [
        (None, {"fields": ["name", "kind", "enabled", "description"]}),
        ("Where", {"fields": ["url", "endpoint_name", "model", "credential_env"]}),
        ("Limits", {"fields": ["timeout_seconds", "max_retries", "max_concurrency", "rate_limit_rpm"]}),
    ]


@admin.register(JudgeCacheEntry)
class JudgeCacheEntryAdmin(admin.ModelAdmin):
    list_display = ["judge", "prompt_version", "endpoint", "value", "created_at"]
    list_filter = ["judge", "prompt_version", "value"]
    readonly_fields = ["key", "judge", "prompt_version", "endpoint", "value", "rationale", "created_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
