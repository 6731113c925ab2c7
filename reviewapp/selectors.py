"""Reads. Every entity is fetched through one permission-checked getter (``*_get_for_user``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.db.models import BooleanField, Count, Exists, OuterRef, Prefetch, Q, QuerySet, Subquery, Value
from django.http import Http404
from django.utils import timezone

from reviewapp.models import ApiToken, Assignment, Item, Membership, Project, Question, Review, Role, Skip
from reviewapp.models.audit import AuditEvent
from reviewapp.models.curation import Adjudication, CuratedLabel, SchemaVersion
from reviewapp.models.flags import Flag
from reviewapp.models.gold import SCORABLE_KINDS, GoldAnswer
from reviewapp.models.groups import ReviewerGroup
from reviewapp.models.pairwise import PairwiseSkip, PairwiseSlot, PairwiseTask, Preference
from reviewapp.models.projects import QueueMode
from reviewapp.permissions import SCOPE_FOR_CAPABILITY, Capability, role_allows

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

    AnyUser = AbstractBaseUser | AnonymousUser


def role_for(*, user: AnyUser, project: Project) -> str | None:
    if not user.is_authenticated:
        return None
    if getattr(user, "is_superuser", False):
        return Role.ADMIN
    return Membership.objects.filter(project=project, user=user).values_list("role", flat=True).first()


def check_token(*, token: ApiToken | None, project: Project, capability: Capability) -> None:
    """An API token must carry the scope for ``capability`` and, when pinned, name this project."""
    if token is None:
        return
    if token.project_id is not None and token.project_id != project.pk:
        raise Http404("No such project.")
    scope = SCOPE_FOR_CAPABILITY.get(capability)
    if scope is None or (scope and scope not in token.scopes):
        raise PermissionDenied(f"This API token lacks the '{scope or capability}' scope.")


def project_get_for_user(
    *, user: AnyUser, slug: str, capability: Capability = Capability.VIEW, token: ApiToken | None = None
) -> Project:
    """The project, if ``user`` is a member allowed ``capability``.

    Non-members get 404 (they must not learn the project exists); members without the
    capability get 403.
    """
    if not user.is_authenticated:
        raise Http404("No such project.")
    # One round trip for the project and the caller's role: this runs on every request.
    projects = Project.objects.filter(slug=slug)
    if not getattr(user, "is_superuser", False):
        member_role = Membership.objects.filter(project=OuterRef("pk"), user=user).values("role")[:1]
        projects = projects.annotate(member_role=Subquery(member_role))
    project = projects.first()
    role = None
    if project is not None:
        role = Role.ADMIN if getattr(user, "is_superuser", False) else project.member_role  # type: ignore[attr-defined]
    if project is None or role is None:
        raise Http404("No such project.")
    check_token(token=token, project=project, capability=capability)
    if not role_allows(role, capability):
        raise PermissionDenied(f"Your role ({role}) on this project does not allow '{capability}'.")
    project.user_role = role  # type: ignore[attr-defined]  # for templates: what the user may do
    return project


def assignment_get_for_user(*, user: AnyUser, pk: int, token: ApiToken | None = None) -> Assignment:
    """A lease the user may act on (their own, in a project where they may review)."""
    assignment = Assignment.objects.select_related("item", "project").filter(pk=pk).first()
    if assignment is None:
        raise Http404("This item is no longer in the queue (it may have been removed).")
    project_get_for_user(user=user, slug=assignment.project.slug, capability=Capability.REVIEW, token=token)
    return assignment


def review_get_for_user(*, user: AnyUser, pk: int, for_write: bool = False, token: ApiToken | None = None) -> Review:
    """A review: its author may read and edit it; curators and admins may read any."""
    review = Review.objects.select_related("item", "project", "reviewer").filter(pk=pk).first()
    if review is None:
        raise Http404("No such review.")
    if review.reviewer_id == getattr(user, "pk", None):
        checked = project_get_for_user(user=user, slug=review.project.slug, capability=Capability.REVIEW, token=token)
    elif for_write:
        project_get_for_user(user=user, slug=review.project.slug, capability=Capability.VIEW, token=token)
        raise PermissionDenied("Only the reviewer who wrote a review may edit it.")
    else:
        checked = project_get_for_user(user=user, slug=review.project.slug, capability=Capability.EXPORT, token=token)
    review.project.user_role = checked.user_role  # type: ignore[attr-defined]  # what the caller may see (blind review)
    return review


def item_get_for_user(*, user: AnyUser, project: Project, pk: int) -> Item:
    item = Item.objects.filter(project=project, pk=pk).first()
    if item is None:
        raise Http404("No such item in this project (it may have been removed).")
    return item


def questions_for_project(*, project: Project) -> list[Question]:
    return list(Question.objects.filter(project=project).order_by("order", "id"))


@dataclass(frozen=True)
class ProjectProgress:
    project: Project
    role: str
    items: int
    slots: int
    reviews: int
    my_reviews: int
    has_pairwise: bool = False  # the project has pairwise comparison tasks

    @property
    def percent(self) -> int:
        return round(100 * min(self.reviews, self.slots) / self.slots) if self.slots else 0


def project_list_for_user(*, user: AnyUser) -> list[ProjectProgress]:
    """The user's projects with review progress, in a fixed number of queries."""
    if not user.is_authenticated:
        return []
    projects = (
        Project.objects.all()
        if getattr(user, "is_superuser", False)
        else Project.objects.filter(memberships__user=user)
    )
    roles = dict(Membership.objects.filter(user=user).values_list("project_id", "role"))
    rows = projects.annotate(
        n_items=Count("items", distinct=True),
        # A subquery, not a join: joining tasks as well as items would multiply the rows counted.
        has_pairwise=Exists(PairwiseTask.objects.filter(project=OuterRef("pk"))),
    ).order_by("name")
    reviews = dict(
        Review.objects.filter(project__in=[p.pk for p in rows])
        .values("project_id")
        .annotate(n=Count("id"))
        .values_list("project_id", "n")
    )
    mine = dict(
        Review.objects.filter(reviewer=user).values("project_id").annotate(n=Count("id")).values_list("project_id", "n")
    )
    return [
        ProjectProgress(
            project=p,
            role=roles.get(p.pk, Role.ADMIN),
            items=p.n_items,
            slots=p.n_items * p.reviews_per_item,
            reviews=reviews.get(p.pk, 0),
            my_reviews=mine.get(p.pk, 0),
            has_pairwise=p.has_pairwise,
        )
        for p in rows
    ]


@dataclass(frozen=True)
class QueueProgress:
    done: int  # reviews this user submitted in the project
    left: int  # items still open to this user

    @property
    def total(self) -> int:
        return self.done + self.left

    @property
    def percent(self) -> int:
        return round(100 * self.done / self.total) if self.total else 100


def items_closed_to_user(*, project: Project, user: AnyUser) -> list[QuerySet[Any]]:
    """Subqueries of the item ids this user may never lease a slot of.

    Items they hold or held a slot of (so never the same reviewer twice), skipped, or whose review
    by them a curator sent back (that slot reopened for someone else).
    """
    return [
        Assignment.objects.filter(project=project, reviewer=user).values("item_id"),
        Skip.objects.filter(project=project, reviewer=user).values("item_id"),
        Review.objects.filter(project=project, reviewer=user, returned_at__isnull=False).values("item_id"),
    ]


def _free_slots_for_user(*, project: Project, user: AnyUser) -> QuerySet[Assignment]:
    now = timezone.now()
    slots = Assignment.objects.filter(project=project, submitted_at__isnull=True, is_gold=False).filter(
        Q(reviewer__isnull=True) | Q(expires_at__lt=now)
    )
    for closed in items_closed_to_user(project=project, user=user):
        slots = slots.exclude(item_id__in=closed)
    return slots


def open_slots_for_user(*, project: Project, user: AnyUser) -> QuerySet[Assignment]:
    """Review slots this user could lease now, in queue order (priority, then oldest).

    Unfilled, free or expired, not gold (gold items come through ``services.gold``), on items not
    closed to them (``items_closed_to_user``), and open to them under the project's queue mode:
    assigned to them or one of their groups, or, in a shared pool, assigned to nobody. For counting
    and listing; queue_next leases through ``queue_sources_for_user`` (the same rules, indexed).
    """
    their_groups = ReviewerGroup.members.through.objects.filter(user_id=user.pk, reviewergroup__project=project).values(
        "reviewergroup_id"
    )
    theirs = Q(assigned_to=user.pk) | Q(assigned_group__in=their_groups)
    if project.queue_mode != QueueMode.ASSIGNED:
        theirs |= Q(assigned_to__isnull=True, assigned_group__isnull=True)
    return _free_slots_for_user(project=project, user=user).filter(theirs).order_by("-priority", "id")


def queue_sources_for_user(*, project: Project, user: AnyUser) -> list[QuerySet[Assignment]]:
    """``open_slots_for_user`` split by assignment, each part in queue order on its own index.

    One query with "assigned to me OR to my group OR to nobody" would walk the project's queue
    index past every slot assigned to someone else (280 ms at 100,000 items when most are assigned
    to others); each part here is an ordered scan of its own partial index instead
    (``assignment_open_assigned_to``, ``assignment_open_group``, ``assignment_open_unassigned``).
    queue_next leases the best first row among them.
    """
    free = _free_slots_for_user(project=project, user=user)
    group_ids = list(
        ReviewerGroup.members.through.objects.filter(user_id=user.pk, reviewergroup__project=project).values_list(
            "reviewergroup_id", flat=True
        )
    )
    sources = [free.filter(assigned_to=user.pk), *(free.filter(assigned_group=g) for g in group_ids)]
    if project.queue_mode != QueueMode.ASSIGNED:
        sources.append(free.filter(assigned_to__isnull=True, assigned_group__isnull=True))
    return [source.order_by("-priority", "id") for source in sources]


def queue_progress(*, project: Project, user: AnyUser) -> QueueProgress:
    done = Review.objects.filter(project=project, reviewer=user).count()
    left = open_slots_for_user(project=project, user=user).order_by().values("item_id").distinct().count()
    held = Assignment.objects.filter(project=project, reviewer=user, submitted_at__isnull=True).count()
    return QueueProgress(done=done, left=left + held)


def item_list(*, project: Project) -> QuerySet[Item]:
    return Item.objects.filter(project=project).order_by("id")


def review_list(*, project: Project) -> QuerySet[Review]:
    return Review.objects.filter(project=project).select_related("reviewer", "item").order_by("id")


def review_list_for_reviewer(*, user: AnyUser, project: Project | None = None) -> QuerySet[Review]:
    qs = Review.objects.filter(reviewer=user).select_related("item", "project")
    # The caller's role in each review's project (blind review decides what they see), no extra query.
    if getattr(user, "is_superuser", False):
        qs = qs.annotate(viewer_role=Value(Role.ADMIN))
    else:
        qs = qs.annotate(
            viewer_role=Subquery(Membership.objects.filter(project=OuterRef("project"), user=user).values("role")[:1])
        )
    if project is not None:
        qs = qs.filter(project=project)
    return qs.order_by("-submitted_at", "-id")


def item_has_reviews(*, item: Item) -> bool:
    return Review.objects.filter(item=item).exists()


# --- assignment, groups, flags, gold, audit (curators) -----------------------------------------


def reviewers_for_project(*, project: Project) -> QuerySet[Any]:
    """Members whose role lets them review, by username."""
    roles = [role for role in Role.values if role_allows(role, Capability.REVIEW)]
    return (
        get_user_model()
        .objects.filter(memberships__project=project, memberships__role__in=roles)
        .order_by("username")
        .distinct()
    )


def reviewers_by_username(*, project: Project, usernames: list[str]) -> tuple[list[Any], list[str]]:
    """The project's reviewers with these usernames, in the given order, and the names not found."""
    found = {u.username: u for u in reviewers_for_project(project=project).filter(username__in=usernames)}
    return [found[n] for n in dict.fromkeys(usernames) if n in found], [n for n in usernames if n not in found]


def reviewer_group_list(*, project: Project) -> QuerySet[ReviewerGroup]:
    return ReviewerGroup.objects.filter(project=project).prefetch_related("members").order_by("name", "id")


def reviewer_group_get(*, project: Project, pk: int) -> ReviewerGroup:
    """A group of ``project`` (whose access the caller checked); 404 for any other."""
    group = ReviewerGroup.objects.filter(project=project, pk=pk).select_related("project").first()
    if group is None:
        raise Http404("No such reviewer group in this project.")
    return group


def assignment_list(*, project: Project) -> QuerySet[Assignment]:
    """Every review slot of the project, with who it is assigned to and who holds or filled it."""
    return (
        Assignment.objects.filter(project=project)
        .select_related("item", "assigned_to", "assigned_group", "reviewer")
        .order_by("id")
    )


@dataclass(frozen=True)
class OpenSlotCount:
    assigned_to: str | None  # username
    group: str | None  # group name
    slots: int


def open_slot_counts(*, project: Project) -> list[OpenSlotCount]:
    """Open review slots per assignee (nobody, a reviewer, a group), most first."""
    rows = (
        Assignment.objects.filter(project=project, submitted_at__isnull=True, is_gold=False)
        .values("assigned_to__username", "assigned_group__name")
        .annotate(n=Count("id"))
        .order_by("-n")
    )
    return [OpenSlotCount(r["assigned_to__username"], r["assigned_group__name"], r["n"]) for r in rows]


def flaggable_item_get_for_user(*, user: AnyUser, project: Project, pk: int) -> Item:
    """An item the user may flag: one they hold a lease on or reviewed, or any item for a curator.

    Anything else is a 404, so a reviewer cannot probe which items exist in the queue.
    """
    item = Item.objects.filter(project=project, pk=pk).first()
    if item is not None:
        if role_allows(role_for(user=user, project=project), Capability.CURATE):
            return item
        holds = Assignment.objects.filter(item=item, reviewer=user.pk).exists()
        if holds or Review.objects.filter(item=item, reviewer=user.pk).exists():
            return item
    raise Http404("No such item among the ones you hold or reviewed.")


def flag_list(*, project: Project) -> QuerySet[Flag]:
    return Flag.objects.filter(project=project).select_related("item", "created_by").order_by("-id")


def gold_answer_list(*, project: Project) -> QuerySet[GoldAnswer]:
    return GoldAnswer.objects.filter(project=project).select_related("item", "created_by").order_by("id")


def gold_answer_get(*, project: Project, item_id: int) -> GoldAnswer:
    gold = GoldAnswer.objects.filter(project=project, item_id=item_id).select_related("item", "project").first()
    if gold is None:
        raise Http404("This item is not a gold item.")
    return gold


def audit_event_list(*, project: Project, action: str | None = None) -> QuerySet[AuditEvent]:
    """The project's audit log, newest first."""
    events = AuditEvent.objects.filter(project=project).select_related("actor")
    if action:
        events = events.filter(action=action)
    return events.order_by("-id")


def audit_actions(*, project: Project) -> list[str]:
    # order_by() first: the model's default ordering would add created_at to SELECT DISTINCT,
    # and each action would come back once per event.
    rows = AuditEvent.objects.filter(project=project).order_by().values_list("action", flat=True).distinct()
    return sorted(rows)


@dataclass(frozen=True)
class GoldAccuracy:
    """One reviewer's record on gold items.

    ``n`` gold reviews; ``correct`` of them got every scorable known answer right, and
    ``accuracy`` is their share, with a 95% Wilson score interval (sound for small n and for
    0 or 100%). ``per_question`` is ``{key: (correct, compared)}``.
    """

    reviewer_id: int
    username: str
    n: int
    correct: int
    per_question: dict[str, tuple[int, int]]
    accuracy: float | None
    ci_low: float | None
    ci_high: float | None


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float | None, float | None]:
    if n == 0:
        return None, None
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def gold_accuracy_for_reviewers(*, project: Project) -> list[GoldAccuracy]:
    """Each reviewer's accuracy on the project's gold items, best first.

    Every current (not returned) review of a gold item counts, whenever it was made, except the
    review of the curator who set that item's gold answers. Only scorable questions (pass/fail,
    rating, choices, chunk relevance) that the gold answers cover are compared, by equality of
    the validated values.
    """
    scorable = {q.key for q in questions_for_project(project=project) if q.kind in SCORABLE_KINDS}
    golds = {
        item_id: ({k: v for k, v in answers.items() if k in scorable}, created_by)
        for item_id, answers, created_by in GoldAnswer.objects.filter(project=project).values_list(
            "item_id", "answers", "created_by_id"
        )
    }
    rows = (
        Review.objects.filter(project=project, item_id__in=list(golds), returned_at__isnull=True)
        .values_list("reviewer_id", "reviewer__username", "item_id", "answers")
        .order_by("reviewer_id", "id")
    )
    tallies: dict[int, dict[str, Any]] = {}
    for reviewer_id, username, item_id, answers in rows:
        known, created_by = golds[item_id]
        if reviewer_id == created_by or not known:
            continue
        tally = tallies.setdefault(reviewer_id, {"username": username, "n": 0, "correct": 0, "per": {}})
        tally["n"] += 1
        all_right = True
        for key, value in known.items():
            right = answers.get(key) == value
            all_right = all_right and right
            got, seen = tally["per"].get(key, (0, 0))
            tally["per"][key] = (got + int(right), seen + 1)
        tally["correct"] += int(all_right)
    result = []
    for reviewer_id, t in tallies.items():
        low, high = wilson_interval(t["correct"], t["n"])
        result.append(
            GoldAccuracy(
                reviewer_id=reviewer_id,
                username=t["username"],
                n=t["n"],
                correct=t["correct"],
                per_question=dict(sorted(t["per"].items())),
                accuracy=t["correct"] / t["n"] if t["n"] else None,
                ci_low=low,
                ci_high=high,
            )
        )
    return sorted(result, key=lambda a: (-(a.accuracy or 0), -a.n, a.username))


def api_token_list_for_user(*, user: AnyUser) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(user=user).select_related("project").order_by("-created_at")


def project_get_by_slug(*, slug: str) -> Project | None:
    """Unchecked lookup for operators' management commands; everything user-facing uses project_get_for_user."""
    return Project.objects.filter(slug=slug).first()


def api_token_get_by_prefix(*, prefix: str) -> ApiToken | None:
    """Unchecked lookup for operators' management commands (the prefix is the public part of a token)."""
    return ApiToken.objects.select_related("user", "project").filter(prefix=prefix).first()


def api_token_get_for_user(*, user: AnyUser, pk: int) -> ApiToken:
    """One of the user's own API tokens; anybody else's is a 404 (their existence is not revealed)."""
    token = ApiToken.objects.select_related("project").filter(pk=pk, user_id=getattr(user, "pk", None)).first()
    if token is None:
        raise Http404("No such API token.")
    return token


# --- curation: schema versions, adjudication, curated labels -----------------------------------


def schema_questions_for_version(*, project: Project, version: int) -> list[dict[str, Any]]:
    """The questions that reviews of ``version`` answered, as snapshots (see services.consensus).

    Falls back to today's questions for a version that has no snapshot (data from before versions
    were recorded).
    """
    from reviewapp.services.consensus import question_snapshot

    snapshot = SchemaVersion.objects.filter(project=project, version=version).values_list("questions", flat=True)
    for questions in snapshot:
        return list(questions)
    return [question_snapshot(q) for q in questions_for_project(project=project)]


def consensus_questions_for_version(
    *, project: Project, version: int, questions: list[Question] | None = None
) -> list[dict[str, Any]]:
    """The questions of ``version``, combined by today's rules.

    What was asked comes from the version's snapshot; how answers combine (rule, max_spread) is
    project policy, so a question that still exists with the same kind uses its current rule.
    ``questions``: today's questions when the caller already has them (saves a query).
    """
    if questions is None:
        questions = questions_for_project(project=project)
    current = {q.key: q for q in questions}
    out = []
    for q in schema_questions_for_version(project=project, version=version):
        now = current.get(q["key"])
        if now is not None and now.kind == q["kind"]:
            q = {**q, "consensus_rule": now.effective_consensus_rule, "max_spread": now.max_spread}
        out.append(q)
    return out


def schema_version_list(*, project: Project) -> QuerySet[SchemaVersion]:
    return SchemaVersion.objects.filter(project=project).order_by("version")


def adjudication_list(
    *, project: Project, status: str | None = Adjudication.Status.OPEN, user: AnyUser | None = None
) -> QuerySet[Adjudication]:
    """The curators' queue, oldest first; ``status=None`` lists open and decided ones.

    With ``user``, each row carries ``reviewed_by_you`` and ``decidable_by_you`` (False for an item
    the user reviewed, unless the project allows self-adjudication).
    """
    qs = Adjudication.objects.filter(project=project).select_related("item")
    if status:
        qs = qs.filter(status=status)
    if user is not None:
        own = Exists(Review.objects.filter(item_id=OuterRef("item_id"), reviewer_id=user.pk))
        qs = qs.annotate(
            reviewed_by_you=own,
            decidable_by_you=Value(True, output_field=BooleanField()) if project.self_adjudication else ~own,
        )
    return qs.order_by("id")


def adjudication_counts(*, project: Project) -> dict[str, int]:
    counts = dict(
        Adjudication.objects.filter(project=project).values("status").annotate(n=Count("id")).values_list("status", "n")
    )
    return {status: counts.get(status, 0) for status in Adjudication.Status.values}


def adjudication_get_for_user(*, user: AnyUser, slug: str, item_id: int, token: ApiToken | None = None) -> Adjudication:
    """An item of the project's adjudication queue, for curators (CURATE).

    Non-members get 404, members who may not curate 403, and an item that is not in the queue 404.
    """
    project = project_get_for_user(user=user, slug=slug, capability=Capability.CURATE, token=token)
    adjudication = Adjudication.objects.select_related("item").filter(project=project, item_id=item_id).first()
    if adjudication is None:
        raise Http404("This item is not in the adjudication queue (its reviews may agree, or be too few).")
    adjudication.project = project  # keeps project.user_role for the page
    return adjudication


def adjudication_next(
    *, project: Project, after: Adjudication | None = None, user: AnyUser | None = None
) -> Adjudication | None:
    """The next open item after ``after`` in queue order, wrapping around; None when the queue is empty.

    With ``user``, only items that user may decide (not their own reviews, unless self-adjudication is on).
    """
    qs = adjudication_list(project=project, user=user)
    if user is not None:
        qs = qs.filter(decidable_by_you=True)
    if after is None:
        return qs.first()
    return qs.filter(id__gt=after.pk).first() or qs.exclude(pk=after.pk).first()


def curated_label_list(*, project: Project) -> QuerySet[CuratedLabel]:
    return (
        CuratedLabel.objects.filter(project=project)
        .select_related("item", "decided_by")
        .prefetch_related(Prefetch("reviews", queryset=Review.objects.only("id").order_by("id")))
        .order_by("id")
    )


@dataclass(frozen=True)
class ComparisonCell:
    review: Review
    value: Any
    asked: bool  # the question was in the schema version this review answered


@dataclass(frozen=True)
class ComparisonRow:
    """One question across all reviews of an item, with how the reviews combine."""

    key: str
    title: str
    kind: str
    rule: str
    agreed: bool | None  # None: not combined (the question is not in the version being combined)
    reason: str
    suggestion: Any
    cells: list[ComparisonCell]


@dataclass(frozen=True)
class AdjudicationDetail:
    adjudication: Adjudication
    item: Item
    label: CuratedLabel | None
    reviews: list[Review]  # every submitted review of the item, oldest first
    basis_version: int | None  # the schema version combined; None when the reviews span versions
    versions: list[int]
    questions: list[Question]  # today's questions: what a decision answers
    rows: list[ComparisonRow]
    prefill: dict[str, Any]  # the decided answers, else the consensus or its suggestions

    @property
    def mixed(self) -> bool:
        return self.basis_version is None and len(self.versions) > 1

    @property
    def rows_by_key(self) -> dict[str, ComparisonRow]:
        return {row.key: row for row in self.rows}


def adjudication_detail(*, adjudication: Adjudication) -> AdjudicationDetail:
    """All reviews of the item side by side, question by question, for the deciding page and the API."""
    from reviewapp.services.consensus import consensus_compute, reviews_basis

    project, item = adjudication.project, adjudication.item
    label = CuratedLabel.objects.select_related("decided_by").filter(item=item).first()
    current = Review.objects.filter(item=item, returned_at__isnull=True)  # sent-back reviews no longer count
    reviews = list(current.select_related("reviewer").order_by("submitted_at", "id"))
    basis, basis_version = reviews_basis(reviews, reviews_per_item=project.reviews_per_item)
    versions = sorted({r.schema_version for r in reviews})
    # Reviews across versions are not combined into a label; the comparison still shows where they agree.
    consensus = consensus_compute(
        questions=consensus_questions_for_version(project=project, version=basis_version or project.schema_version),
        answer_sets=[r.answers for r in (basis if basis_version is not None else reviews)],
        n_chunks=len(item.retrieved_context or []),
    )
    outcomes = consensus.by_key()
    asked = {v: {q["key"]: q for q in schema_questions_for_version(project=project, version=v)} for v in versions}
    questions = questions_for_project(project=project)
    titles: dict[str, tuple[str, str]] = {q.key: (q.title, q.kind) for q in questions}
    for v in versions:  # questions removed since still show what their reviewers said
        for key, q in asked[v].items():
            titles.setdefault(key, (str(q.get("title", key)), str(q.get("kind", ""))))
    rows = []
    for key, (title, kind) in titles.items():
        outcome = outcomes.get(key)
        rows.append(
            ComparisonRow(
                key=key,
                title=title,
                kind=kind,
                rule=outcome.rule if outcome else "",
                agreed=outcome.agreed if outcome else None,
                reason=outcome.reason if outcome else "",
                suggestion=outcome.value if outcome else None,
                cells=[
                    ComparisonCell(review=r, value=r.answers.get(key), asked=key in asked[r.schema_version])
                    for r in reviews
                ],
            )
        )
    if label is not None:
        prefill = dict(label.answers)
    else:
        kinds = {q.key: q.kind for q in questions}
        prefill = {k: v for k, v in consensus.answers.items() if outcomes[k].kind == kinds.get(k)}
    return AdjudicationDetail(
        adjudication=adjudication,
        item=item,
        label=label,
        reviews=reviews,
        basis_version=basis_version,
        versions=versions,
        questions=questions,
        rows=rows,
        prefill=prefill,
    )


# --- pairwise comparison ----------------------------------------------------------------------


def pairwise_slot_get_for_user(*, user: AnyUser, pk: int, token: ApiToken | None = None) -> PairwiseSlot:
    """A pairwise lease the user may act on (in a project where they may review)."""
    slot = PairwiseSlot.objects.select_related("project", "task").filter(pk=pk).first()
    if slot is None:
        raise Http404("This pair is no longer in the queue (it may have been removed).")
    project_get_for_user(user=user, slug=slot.project.slug, capability=Capability.REVIEW, token=token)
    return slot


def pairwise_open_slots_for_user(*, project: Project, user: AnyUser) -> QuerySet[PairwiseSlot]:
    """Pair slots this user could lease now: unfilled, free or expired, of pairs they never touched."""
    now = timezone.now()
    touched = PairwiseSlot.objects.filter(project=project, reviewer=user).values("task_id")
    skipped = PairwiseSkip.objects.filter(project=project, reviewer=user).values("task_id")
    judged = Preference.objects.filter(project=project, reviewer=user).values("task_id")
    return (
        PairwiseSlot.objects.filter(project=project, submitted_at__isnull=True)
        .filter(Q(reviewer__isnull=True) | Q(expires_at__lt=now))
        .exclude(task_id__in=touched)
        .exclude(task_id__in=skipped)
        .exclude(task_id__in=judged)
    )


def pairwise_progress(*, project: Project, user: AnyUser) -> QueueProgress:
    done = Preference.objects.filter(project=project, reviewer=user).count()
    left = pairwise_open_slots_for_user(project=project, user=user).values("task_id").distinct().count()
    held = PairwiseSlot.objects.filter(project=project, reviewer=user, submitted_at__isnull=True).count()
    return QueueProgress(done=done, left=left + held)


def pairwise_task_count(*, project: Project) -> int:
    return PairwiseTask.objects.filter(project=project).count()
