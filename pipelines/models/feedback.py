"""End users' feedback on production answers: thumbs, ratings and comments from the app's users.

Kept apart from reviewers' labels (``reviewapp.Review``, ``CuratedLabel``): it is what the people
who got the answer said, not a judgement made against the project's questions, and it is untrusted
input. A row names its answer by ``trace_id`` and/or ``external_id``; ``item`` is set once an item
with that id exists in the project (``pipelines.sources.feedback``), which may be later than the
feedback. ``client_id`` makes sending idempotent: a project never stores two rows with one id.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from reviewapp.models import Item, Project

RATING_MIN, RATING_MAX = 1, 5
THUMBS_UP, THUMBS_DOWN = 1, -1


class Feedback(models.Model):
    class Kind(models.TextChoices):
        THUMBS = "thumbs", "Thumbs up/down"
        RATING = "rating", "Rating (1–5)"  # noqa: RUF001 - an en dash for people
        COMMENT = "comment", "Comment"

    class Origin(models.TextChoices):
        API = "api", "REST API"
        MLFLOW = "mlflow", "MLflow trace assessment"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="end_user_feedback")
    # Set when the answer's item is known; an item deleted later leaves the feedback waiting again.
    item = models.ForeignKey(Item, null=True, blank=True, on_delete=models.SET_NULL, related_name="end_user_feedback")
    trace_id = models.CharField(max_length=200, blank=True)
    external_id = models.CharField(max_length=200, blank=True)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    # Thumbs: +1 up, -1 down. Rating: 1..5. Comment: null.
    value = models.SmallIntegerField(null=True, blank=True)
    comment = models.TextField(blank=True, help_text="Untrusted text from an end user.")
    user_ref = models.CharField(max_length=200, blank=True, help_text="The app's id of the end user, if given.")
    client_id = models.CharField(max_length=200, help_text="The sender's id of this feedback; unique per project.")
    origin = models.CharField(max_length=8, choices=Origin.choices, default=Origin.API)
    created_at = models.DateTimeField(help_text="When the end user gave it (as sent; else when received).")
    received_at = models.DateTimeField()
    joined_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "client_id"], name="feedback_client_id_unique"),
            models.CheckConstraint(condition=~Q(trace_id="", external_id=""), name="feedback_names_its_answer"),
            models.CheckConstraint(
                condition=(
                    Q(kind="thumbs", value__in=[THUMBS_UP, THUMBS_DOWN])
                    | Q(kind="rating", value__gte=RATING_MIN, value__lte=RATING_MAX)
                    | Q(kind="comment", value__isnull=True)
                ),
                name="feedback_value_fits_kind",
            ),
        ]
        indexes = [
            models.Index(fields=["item", "id"], name="feedback_item"),
            models.Index(fields=["project", "id"], name="feedback_project_id"),
            models.Index(fields=["project", "trace_id"], name="feedback_project_trace"),
            # Rows waiting for their item, found when it arrives.
            models.Index(
                fields=["project", "external_id"], name="feedback_waiting_external", condition=Q(item__isnull=True)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.project_id}:{self.client_id}"

    @property
    def value_label(self) -> str:
        if self.kind == self.Kind.THUMBS:
            return "up" if self.value == THUMBS_UP else "down"
        if self.kind == self.Kind.RATING:
            return str(self.value)
        return ""
