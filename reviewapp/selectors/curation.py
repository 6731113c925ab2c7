"""Curation: schema versions, the adjudication queue and its side-by-side comparison, curated labels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db.models import BooleanField, Count, Exists, OuterRef, Prefetch, QuerySet, Value
from django.http import Http404

from reviewapp.consensus import consensus_compute, question_snapshot, reviews_basis
from reviewapp.models import ApiToken, Item, Project, Question, Review
from reviewapp.models.curation import Adjudication, CuratedLabel, SchemaVersion
from reviewapp.permissions import Capability
from reviewapp.selectors.projects import project_get_for_user, questions_for_project

if TYPE_CHECKING:
    from reviewapp.selectors.projects import AnyUser


def schema_questions_for_version(*, project: Project, version: int) -> list[dict[str, Any]]:
    """The questions that reviews of ``version`` answered, as snapshots (see reviewapp.consensus).

    Falls back to today's questions for a version that has no snapshot (data from before versions
    were recorded).
    """
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
