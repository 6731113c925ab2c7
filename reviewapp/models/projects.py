from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models


class Project(models.Model):
    """A RAG application under review."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    description = models.TextField(blank=True)
    guidelines = models.TextField(blank=True, help_text="Reviewer guidelines (markdown).")
    reviews_per_item = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(1), MaxValueValidator(20)]
    )
    lease_seconds = models.PositiveIntegerField(
        default=600, validators=[MinValueValidator(30)], help_text="How long a reviewer holds an item."
    )
    # Bumped whenever the question set changes after reviews exist; reviews keep the one they answered.
    schema_version = models.PositiveIntegerField(default=1)
    mlflow_registered_model = models.CharField(max_length=300, blank=True)
    serving_endpoint = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    REVIEWER = "reviewer", "Reviewer"
    CURATOR = "curator", "Curator"
    ENGINEER = "engineer", "Engineer"
    ADMIN = "admin", "Admin"


class Membership(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=Role.choices, default=Role.REVIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "user"], name="membership_unique")]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} on {self.project}"


class Question(models.Model):
    """One question of a project's label schema (MLflow: a label schema)."""

    class Kind(models.TextChoices):
        PASS_FAIL = "pass_fail", "Pass / fail"
        RATING = "rating", "Rating"
        CHOICE = "choice", "Single choice"
        MULTI_CHOICE = "multi_choice", "Multiple choice"
        TEXT = "text", "Free text"
        EXPECTED_RESPONSE = "expected_response", "Expected response"
        EXPECTED_FACTS = "expected_facts", "Expected facts"
        CONTEXT_RELEVANCE = "context_relevance", "Relevance of each retrieved chunk"

    class AssessmentType(models.TextChoices):
        FEEDBACK = "feedback", "Feedback (judges the output)"
        EXPECTATION = "expectation", "Expectation (ground truth)"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="questions")
    key = models.SlugField(max_length=64)
    title = models.CharField(max_length=200)
    instructions = models.TextField(blank=True)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    assessment_type = models.CharField(max_length=16, choices=AssessmentType.choices, default=AssessmentType.FEEDBACK)
    required = models.BooleanField(default=True)
    order = models.PositiveIntegerField(default=0)
    # rating / context_relevance: {"min": 1, "max": 5, "min_label": "...", "max_label": "..."}
    # choice / multi_choice: {"choices": ["a", "b"]}
    options = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["order", "id"]
        constraints = [models.UniqueConstraint(fields=["project", "key"], name="question_key_unique")]

    def __str__(self) -> str:
        return f"{self.project.slug}:{self.key}"
