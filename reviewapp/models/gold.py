from __future__ import annotations

from django.conf import settings
from django.db import models

from reviewapp.models.items import Item
from reviewapp.models.projects import Project, Question

# Question kinds whose answers can be checked against a known answer (free text cannot).
SCORABLE_KINDS = frozenset(
    {
        Question.Kind.PASS_FAIL,
        Question.Kind.RATING,
        Question.Kind.CHOICE,
        Question.Kind.MULTI_CHOICE,
        Question.Kind.CONTEXT_RELEVANCE,
    }
)


class GoldAnswer(models.Model):
    """The known answers of a gold item, set by a curator. Reviewers never read it.

    ``answers`` has the shape of a review's answers, for some or all of the project's questions
    (checked with ``services.answers.answers_validate``). How gold items reach reviewers is
    described in ``services/gold.py``.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="gold_answers")
    item = models.OneToOneField(Item, on_delete=models.CASCADE, related_name="gold_answer")
    answers = models.JSONField()
    note = models.TextField(blank=True, help_text="Why these are the right answers (curators only).")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["project", "id"], name="gold_answer_project")]

    def __str__(self) -> str:
        return f"gold answers of item {self.item_id}"
