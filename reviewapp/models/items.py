from __future__ import annotations

from django.db import models

from reviewapp.models.projects import Project


class Item(models.Model):
    """One RAG output. Field names follow Databricks Agent Evaluation."""

    # Indexed by (project, id) below, which also serves "this project's items in id order" (listings,
    # cursors, latest items) without walking the whole table's primary key.
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="items", db_index=False)
    external_id = models.CharField(max_length=200)
    request = models.JSONField(help_text='Text, or a chat {"messages": [...]}.')
    response = models.TextField(blank=True, help_text="Markdown.")
    retrieved_context = models.JSONField(default=list, blank=True)
    model_name = models.CharField(max_length=200, blank=True)
    model_version = models.CharField(max_length=100, blank=True)
    trace_id = models.CharField(max_length=200, blank=True)
    source = models.CharField(max_length=100, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    # reviewapp.blind.request_hash of the request: items with the same one are "siblings" (answers to
    # the same request, e.g. by two model versions) that the queue spaces apart. Blank: unknown.
    request_hash = models.CharField(max_length=32, blank=True, default="", db_default="")
    priority = models.IntegerField(default=0)
    # Submitted reviews, kept in step by review_submit so lists and progress need no COUNT.
    review_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["project", "external_id"], name="item_external_id_unique")]
        indexes = [
            models.Index(fields=["project", "model_version"], name="item_project_version"),
            models.Index(fields=["project", "id"], name="item_project_id"),
            # End users' feedback names its answer by trace id (pipelines joins it to the item).
            models.Index(fields=["project", "trace_id"], name="item_project_trace"),
        ]

    def __str__(self) -> str:
        return f"{self.project_id}:{self.external_id}"

    @property
    def request_text(self) -> str:
        """The last user turn of a chat request, or the request itself."""
        if isinstance(self.request, dict):
            for message in reversed(self.request.get("messages") or []):
                if isinstance(message, dict) and message.get("role") == "user":
                    return str(message.get("content", ""))
            return ""
        return str(self.request)

    @property
    def is_chat(self) -> bool:
        return isinstance(self.request, dict)
