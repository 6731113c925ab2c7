from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from reviewapp.jobs import Job


class QueueMode(models.TextChoices):
    SHARED = "shared", "Shared pool"
    ASSIGNED = "assigned", "Assigned items only"


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
    queue_mode = models.CharField(
        max_length=16,
        choices=QueueMode.choices,
        default=QueueMode.SHARED,
        help_text="Shared: anyone may take unassigned items. Assigned: reviewers get only items assigned to them.",
    )
    gold_rate = models.FloatField(
        default=0.0,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="Share of leases that are gold items (0 to 1), mixed in unannounced.",
    )
    self_adjudication = models.BooleanField(
        default=False,
        help_text="Let a curator decide an item they reviewed themselves (marked as self-adjudicated).",
    )
    # Blind review (reviewapp/blind.py): reviewers see no model name, version, trace id, source,
    # version-identifying metadata or external id unless this is on. Other roles always see them.
    show_model_to_reviewers = models.BooleanField(
        default=False, help_text="Show reviewers which model and version wrote each answer."
    )
    sibling_spacing = models.PositiveSmallIntegerField(
        default=10,
        validators=[MaxValueValidator(1000)],
        help_text="Other items a reviewer gets between two answers to the same request (0: off).",
    )
    mlflow_registered_model = models.CharField(max_length=300, blank=True)
    # Archived: read-only (no ingest, queue, reviews or edits) and hidden from lists until restored.
    archived_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        # Who may create projects besides instance admins: the model's own "add_project" permission,
        # granted to a user (or a group) by an instance admin.

    def __str__(self) -> str:
        return self.name

    @property
    def is_archived(self) -> bool:
        return self.archived_at is not None

    def registered_models(self) -> set[str]:
        """The registered model(s) whose versions this project may evaluate and promote (set by an admin);
        a model URI of any other registered model is refused (its code is not this project's)."""
        name = self.mlflow_registered_model.strip()
        return {name} if name else set()


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


# Which consensus rules fit each kind of question (see reviewapp.consensus); the first is the default.
# Plain strings, because Question's Meta builds a check constraint from it.
CONSENSUS_RULE_ORDER: dict[str, tuple[str, ...]] = {
    "pass_fail": ("majority", "unanimous"),
    "choice": ("majority", "unanimous"),
    "multi_choice": ("majority", "unanimous"),
    "rating": ("median", "unanimous"),
    "context_relevance": ("median", "unanimous"),
    "expected_facts": ("union", "intersection", "unanimous"),
    # Free text has no automatic consensus: a curator decides unless every reviewer wrote the same.
    "text": ("unanimous", "skip"),
    "expected_response": ("unanimous",),
}
CONSENSUS_RULES: dict[str, frozenset[str]] = {k: frozenset(v) for k, v in CONSENSUS_RULE_ORDER.items()}
CONSENSUS_DEFAULTS: dict[str, str] = {k: v[0] for k, v in CONSENSUS_RULE_ORDER.items()}


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

    class ConsensusRule(models.TextChoices):
        """How the reviews of an item combine into its curated label (see reviewapp.consensus)."""

        MAJORITY = "majority", "Majority vote (per option for multiple choice); ties go to adjudication"
        MEDIAN = "median", "Median; adjudication when the spread exceeds max_spread"
        UNION = "union", "Every fact any reviewer gave"
        INTERSECTION = "intersection", "Only the facts every reviewer gave"
        UNANIMOUS = "unanimous", "Only when every reviewer gives the same answer"
        SKIP = "skip", "Not combined (left out of the curated label)"

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
    # Blank means the kind's default (CONSENSUS_DEFAULTS), so rows from before this field need no backfill.
    consensus_rule = models.CharField(max_length=16, choices=ConsensusRule.choices, blank=True, default="")
    max_spread = models.PositiveSmallIntegerField(
        default=1,
        validators=[MaxValueValidator(10)],
        help_text="rating / context_relevance: reviewers disagree when highest minus lowest exceeds this.",
    )

    class Meta:
        ordering = ["order", "id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "key"], name="question_key_unique"),
            models.CheckConstraint(
                condition=models.Q(consensus_rule="")
                | models.Q(
                    *[
                        models.Q(kind=kind, consensus_rule__in=sorted(rules))
                        for kind, rules in sorted(CONSENSUS_RULES.items())
                    ],
                    _connector=models.Q.OR,
                ),
                name="question_consensus_rule_fits_kind",
            ),
            models.CheckConstraint(condition=models.Q(max_spread__lte=10), name="question_max_spread_range"),
        ]

    def __str__(self) -> str:
        return f"{self.project.slug}:{self.key}"

    @property
    def effective_consensus_rule(self) -> str:
        return self.consensus_rule or CONSENSUS_DEFAULTS.get(self.kind, "unanimous")

    def clean(self) -> None:
        allowed = CONSENSUS_RULES.get(self.kind)
        if self.consensus_rule and allowed is not None and self.consensus_rule not in allowed:
            names = ", ".join(sorted(allowed))
            raise ValidationError({"consensus_rule": f"A {self.kind} question combines by one of: {names}."})


class ProjectSync(Job):
    """Bring every item of a project in line with its settings after a change (reviews per item, a
    consensus rule): its review slots, then its curated label or adjudication. Items go in id order;
    ``cursor`` (the last item done) is committed with each batch, so a new claim resumes there."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        SUPERSEDED = "superseded", "Superseded by a later change"

    ACTIVE = (Status.QUEUED, Status.RUNNING)

    class Reason(models.TextChoices):
        REVIEWS_PER_ITEM = "reviews_per_item", "Reviews per item changed"
        CONSENSUS = "consensus", "A consensus rule changed"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="syncs")
    reason = models.CharField(max_length=32, choices=Reason.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    cursor = models.BigIntegerField(default=0)  # id of the last item done
    items_total = models.PositiveIntegerField(default=0)
    items_done = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.project} sync {self.pk} ({self.status})"

    @property
    def percent(self) -> int:
        if self.status == self.Status.DONE:
            return 100
        return round(100 * self.items_done / self.items_total) if self.items_total else 0
