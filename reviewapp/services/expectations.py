"""Repair of expectations that repeat a failed answer (reviews and curated labels stored before
review_submit / review_edit / adjudication_decide refused them).

Until then the review page prefilled the expected response with the model's answer, so a reviewer
who failed an answer without touching that field stored the wrong answer as "what it should have
said". ``expectations_repair`` finds every review and curated label whose answers fail the response
(a pass/fail question answered fail) while their expected response is that same response (spacing
collapsed), clears the expectation, re-runs curation for the item, and records each change in the
audit log. It is idempotent: a second run finds nothing. Dataset versions are frozen snapshots and
are not touched here (``pipelines.datasets_repair`` reports which versions hold such rows).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from reviewapp.consensus import reviews_basis, reviews_fingerprint
from reviewapp.models import CuratedLabel, Item, Project, Question, Review, SchemaVersion
from reviewapp.selectors.curation import schema_questions_for_version
from reviewapp.services.answers import answers_fail, expectation_repeats_failed
from reviewapp.services.audit import audit_record
from reviewapp.services.curation import (
    curated_label_revise,
    curation_item_update,
    item_current_reviews,
    item_lock_for_curation,
    related_or_none,
)

Kind = Question.Kind


@dataclass
class ExpectationRepair:
    reviews: list[int] = field(default_factory=list)  # ids of the reviews whose expectation was cleared
    labels: list[int] = field(default_factory=list)  # ids of the curated labels cleared
    items: list[int] = field(default_factory=list)  # items whose curation was re-run

    @property
    def changed(self) -> int:
        return len(self.reviews) + len(self.labels)


def _pass_fail_keys(project: Project) -> set[str]:
    """Pass/fail question keys of today's questions and of every schema version's snapshot."""
    keys = set(Question.objects.filter(project=project, kind=Kind.PASS_FAIL).values_list("key", flat=True))
    for questions in SchemaVersion.objects.filter(project=project).values_list("questions", flat=True):
        keys.update(q["key"] for q in questions or [] if isinstance(q, dict) and q.get("kind") == Kind.PASS_FAIL)
    return keys


class _Schemas:
    """Question snapshots per schema version of one project, read once each."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self._cache: dict[int, list[dict[str, Any]]] = {}

    def questions(self, version: int) -> list[dict[str, Any]]:
        if version not in self._cache:
            self._cache[version] = schema_questions_for_version(project=self.project, version=version)
        return self._cache[version]

    def bad_keys(self, *, version: int, answers: Any, response: str) -> list[str]:
        """The expected-response keys of ``answers`` that repeat the response those answers fail."""
        questions = self.questions(version)
        if not answers_fail(questions=questions, answers=answers):
            return []
        return [
            q["key"]
            for q in questions
            if q.get("kind") == Kind.EXPECTED_RESPONSE
            and expectation_repeats_failed(response=response, expected=answers.get(q["key"]), failed=True)
        ]


def expectations_repair(*, project: Project | None = None) -> ExpectationRepair:
    """Clear expectations that repeat a failed answer, in every project (or one); see the module doc."""
    result = ExpectationRepair()
    projects = [project] if project is not None else list(Project.objects.order_by("id"))
    for p in projects:
        keys = _pass_fail_keys(p)
        if not keys:
            continue  # nothing can fail an answer in this project
        failing = Q()
        for key in keys:
            failing |= Q(**{f"answers__{key}": False})
        item_ids = set(Review.objects.filter(Q(project=p) & failing).values_list("item_id", flat=True))
        item_ids |= set(CuratedLabel.objects.filter(Q(project=p) & failing).values_list("item_id", flat=True))
        schemas = _Schemas(p)
        for item_id in sorted(item_ids):
            _repair_item(Item(pk=item_id, project=p), schemas, result)
    return result


def _repair_item(item: Item, schemas: _Schemas, result: ExpectationRepair) -> None:
    """One item in one transaction: its reviews, its adjudicated label, then curation again."""
    with transaction.atomic():
        locked = item_lock_for_curation(item)
        if locked is None:
            return
        project = locked.project
        label = related_or_none(locked, "curated_label")
        current = item_current_reviews(locked)
        basis, _ = reviews_basis(current, reviews_per_item=project.reviews_per_item)
        # A decision whose reviews have not changed stays current after the repair (no reopen for it).
        decision_current = (
            label is not None
            and label.method == CuratedLabel.Method.ADJUDICATED
            and reviews_fingerprint(basis or current) == (label.agreement or {}).get("basis")
        )
        fixed_reviews = []
        for review in Review.objects.filter(item=locked).order_by("id"):
            bad = schemas.bad_keys(version=review.schema_version, answers=review.answers, response=locked.response)
            if not bad:
                continue
            old = {k: review.answers[k] for k in bad}
            review.answers = {k: v for k, v in review.answers.items() if k not in bad}
            review.updated_at = timezone.now()
            review.save(update_fields=["answers", "updated_at"])
            audit_record(
                actor=None,
                action="review.expectation_cleared",
                target=review,
                project=project,
                data={"item": locked.pk, "reviewer": review.reviewer_id, "cleared": old},
            )
            fixed_reviews.append(review.pk)
        label_fixed = (
            label is not None
            and label.method == CuratedLabel.Method.ADJUDICATED
            and _repair_label(label, locked, schemas)
        )
        if decision_current and fixed_reviews:
            current = item_current_reviews(locked)
            basis, _ = reviews_basis(current, reviews_per_item=project.reviews_per_item)
            label.agreement = {**(label.agreement or {}), "basis": reviews_fingerprint(basis or current)}
            label.save(update_fields=["agreement"])
        if fixed_reviews or label_fixed:
            curation_item_update(item=locked)  # consensus labels follow the repaired reviews
            result.reviews.extend(fixed_reviews)
            if label_fixed:
                result.labels.append(label.pk)
            result.items.append(locked.pk)


def _repair_label(label: CuratedLabel, item: Item, schemas: _Schemas) -> bool:
    """Clear a curator's expected response that repeats the response the label fails."""
    questions = schemas.questions(label.schema_version)
    if not answers_fail(questions=questions, answers=label.answers):
        return False
    bad = schemas.bad_keys(version=label.schema_version, answers=label.answers, response=item.response)
    loose = expectation_repeats_failed(response=item.response, expected=label.expected_response, failed=True)
    if not bad and not loose:
        return False
    old = {f"answers.{k}": label.answers[k] for k in bad}
    fields: dict[str, Any] = {"answers": {k: v for k, v in label.answers.items() if k not in bad}}
    if loose:
        old["expected_response"] = label.expected_response
        fields["expected_response"] = ""
    curated_label_revise(label, fields=fields, replaced_by=None, now=timezone.now())
    audit_record(
        actor=None,
        action="curation.expectation_cleared",
        target=label,
        project=label.project,
        data={"item": item.pk, "cleared": old},
    )
    return True
