"""Curation: a consensus label when an item's reviews agree, the adjudication queue when they do not,
and curators' decisions.

Which reviews count: an item is ready once ``reviews_per_item`` of its submitted reviews answered the
same schema version (the newest such version wins). Reviews of different versions are never
combined; an item whose N reviews span versions goes to a curator ("mixed_versions").

Locking: every write to an item's CuratedLabel or Adjudication first locks the Item row (FOR NO KEY
UPDATE, see ``item_lock_for_curation``), so two reviews finishing an item at once, or a decision racing a review
edit, are serialised.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone

from reviewapp.consensus import Consensus, consensus_compute, reviews_basis, reviews_fingerprint
from reviewapp.errors import AlreadyDecided, FieldError, ItemRemoved, NotAllowed, ReviewsChanged, ValidationFailed
from reviewapp.models import Adjudication, CuratedLabel, CuratedLabelRevision, Item, Project, Question, Review
from reviewapp.selectors.curation import consensus_questions_for_version
from reviewapp.selectors.projects import questions_for_project
from reviewapp.services.answers import answers_validate, expectation_errors
from reviewapp.services.audit import audit_record
from reviewapp.services.readonly import project_check_writable
from reviewapp.typed_input import field_error

if TYPE_CHECKING:
    from django.contrib.auth.models import User

Kind = Question.Kind
Method = CuratedLabel.Method
FACTS_MAX = 200


def curation_item_update(*, item: Item, questions: list[Question] | None = None) -> CuratedLabel | Adjudication | None:
    """Bring the item's curated label and adjudication in line with its reviews.

    Called by review_submit and review_edit inside their transaction. Consensus labels follow the
    reviews (written, updated or withdrawn); an adjudicated label is never overwritten, but when its
    reviews change it is flagged and goes back to the curators' queue. ``questions``: the project's
    current questions when the caller has just read them.
    """
    # No savepoint: callers run this inside their own transaction, and any error here aborts it anyway.
    with transaction.atomic(savepoint=False):
        locked = item_lock_for_curation(item)
        if locked is None:
            return None
        project = locked.project
        label: CuratedLabel | None = related_or_none(locked, "curated_label")
        adjudication: Adjudication | None = related_or_none(locked, "adjudication")
        n = project.reviews_per_item
        if locked.review_count < n and label is None and adjudication is None:
            return None  # the common case while an item collects its reviews: one query
        reviews = item_current_reviews(locked)
        basis, version = reviews_basis(reviews, reviews_per_item=n)
        now = timezone.now()
        consensus = _consensus(project, locked, basis, version, questions) if basis and version is not None else None
        if label is not None and label.method == Method.ADJUDICATED:
            if reviews_fingerprint(basis or reviews) != label.agreement.get("basis"):
                _reopen_decided(label, adjudication, locked, consensus, version, now)
            return label
        if not basis:
            # Fewer than N reviews again (one was withdrawn): nothing to combine or decide.
            _withdraw(label, reason="not_enough_reviews")
            if adjudication is not None:
                _close(adjudication, reason="not_enough_reviews")
            return None
        if consensus is None:
            _withdraw(label, reason="mixed_versions")
            return _open(adjudication, locked, Adjudication.Reason.MIXED_VERSIONS, [], None, now)
        if consensus.agreed:
            label = _write_consensus(label, locked, basis, version or 1, consensus, now)
            if adjudication is not None:
                _close(adjudication, reason="consensus")
            return label
        _withdraw(label, reason="disagreement")
        return _open(adjudication, locked, Adjudication.Reason.DISAGREEMENT, consensus.disagreements, version, now)


def adjudication_decide(
    *,
    item: Item,
    user: User,
    expected_version: int,
    answers: Any,
    expected_response: str | None = None,
    expected_facts: Any = None,
    rationale: str = "",
) -> CuratedLabel:
    """A curator's final label for an item in the adjudication queue.

    ``expected_version`` is the Adjudication.version the curator's page showed: if the item was
    decided or its reviews changed since, nothing is written and AlreadyDecided / ReviewsChanged
    (HTTP 409) say so. The answers are checked against the current questions (ValidationFailed).
    ``expected_response`` / ``expected_facts`` set the label's expectations; when the schema has
    questions of those kinds they also become those questions' answers. An expected response that
    repeats the response the decision fails is refused (ValidationFailed naming the field).

    A curator who reviewed the item may decide it only when the project allows ``self_adjudication``
    (else NotAllowed, HTTP 403); such a decision is marked ``self_adjudicated`` on the label and in
    the audit event.
    """
    with transaction.atomic():
        locked = item_lock_for_curation(item)
        if locked is None:
            raise ItemRemoved("This item was removed from the project; nothing was saved.")
        project = locked.project
        project_check_writable(project)
        adjudication = related_or_none(locked, "adjudication")
        label = related_or_none(locked, "curated_label")
        if adjudication is None:
            raise ReviewsChanged("This item no longer needs a decision: its reviews changed and now agree.")
        if adjudication.version != expected_version:
            raise _stale(adjudication, label, user)
        own = curator_reviewed_item(item=locked, user=user)
        if own and not project.self_adjudication:
            raise NotAllowed(SELF_ADJUDICATION_REFUSED)
        questions = questions_for_project(project=project)
        merged, loose, errors = _merge_expectations(questions, answers, expected_response, expected_facts)
        response_key = _first_key(questions, Kind.EXPECTED_RESPONSE)
        try:
            cleaned = answers_validate(questions=questions, item=locked, answers=merged)
        except ValidationFailed as exc:
            # Given as the top-level field, the error names that field.
            named: list[FieldError] = [
                {**e, "field": "expected_response"}
                if expected_response is not None and e["field"] == f"answers.{response_key}"
                else e
                for e in exc.errors
            ]
            raise ValidationFailed([*errors, *named], exc.message) from None
        errors.extend(
            expectation_errors(
                questions=questions, item=locked, answers=cleaned, loose_response=loose.get("expected_response")
            )
        )
        if errors:
            raise ValidationFailed(errors, "Some answers are missing or not valid.")
        response_text, facts = _expectations(questions, cleaned, loose)
        reviews = item_current_reviews(locked)
        basis, version = reviews_basis(reviews, reviews_per_item=project.reviews_per_item)
        basis = basis or reviews
        consensus = _consensus(project, locked, basis, version) if version is not None else None
        now = timezone.now()
        previous = None if label is None else {"method": label.method, "answers": label.answers}
        fields = {
            "answers": cleaned,
            "expected_response": response_text,
            "expected_facts": facts,
            "method": Method.ADJUDICATED,
            "decided_by": user,
            "rationale": (rationale or "").strip(),
            "agreement": _agreement(basis, version, consensus),
            "schema_version": project.schema_version,
            "reviews_changed_at": None,
            "self_adjudicated": own,
        }
        label = _save_label(label, locked, basis, fields, now, replaced_by=user)
        adjudication.status = Adjudication.Status.DECIDED
        adjudication.decided_at = now
        adjudication.updated_at = now
        adjudication.version += 1
        adjudication.save(update_fields=["status", "decided_at", "updated_at", "version"])
        audit_record(
            actor=user,
            action="adjudication.decide",
            target=label,
            project=project,
            data={
                "item": locked.pk,
                "answers": cleaned,
                "reviews": [r.pk for r in basis],
                "disagreements": adjudication.disagreeing_keys,
                "previous": previous,
                "self_adjudicated": own,
            },
        )
    return label


SELF_ADJUDICATION_REFUSED = (
    "You reviewed this item, so another curator decides it "
    "(a project admin can allow self-adjudication in the project's settings)."
)


def curator_reviewed_item(*, item: Item, user: User) -> bool:
    """True when ``user`` submitted a review of the item (a review sent back still counts: they judged it)."""
    return Review.objects.filter(item_id=item.pk, reviewer_id=user.pk).exists()


# --- helpers ---------------------------------------------------------------------------------------


def item_lock_for_curation(item: Item) -> Item | None:
    """Lock the item row against other curation writers.

    FOR NO KEY UPDATE, not FOR UPDATE: inserting a review or slot of the item takes FOR KEY SHARE on
    it, and review_submit's review_count UPDATE holds FOR NO KEY UPDATE; FOR UPDATE would conflict
    with the former, so two reviews finishing one item at once could deadlock.
    """
    return (
        Item.objects.select_for_update(of=("self",), no_key=True)
        .select_related("project", "curated_label__decided_by", "adjudication")
        .filter(pk=item.pk)
        .first()
    )


def related_or_none(obj: Any, name: str) -> Any:
    try:
        return getattr(obj, name)
    except Exception:  # RelatedObjectDoesNotExist: the reverse one-to-one has no row
        return None


def item_current_reviews(item: Item) -> list[Review]:
    # A review sent back for re-review no longer counts (services.assignments.item_send_back).
    current = Review.objects.filter(item=item, returned_at__isnull=True)
    return list(current.select_related("reviewer").order_by("submitted_at", "id"))


def _consensus(
    project: Project, item: Item, basis: Sequence[Review], version: int | None, questions: list[Question] | None = None
) -> Consensus:
    return consensus_compute(
        questions=consensus_questions_for_version(
            project=project, version=version or project.schema_version, questions=questions
        ),
        answer_sets=[r.answers for r in basis],
        n_chunks=len(item.retrieved_context or []),
    )


def _agreement(basis: Sequence[Review], version: int | None, consensus: Consensus | None) -> dict[str, Any]:
    return {
        "schema_version": version,
        "basis": reviews_fingerprint(basis),
        "reviews": [
            {"id": r.pk, "reviewer": r.reviewer.get_username(), "schema_version": r.schema_version} for r in basis
        ],
        "agreed": consensus.agreed if consensus is not None else False,
        "questions": {o.key: o.as_dict() for o in consensus.outcomes} if consensus is not None else {},
    }


def _first_key(questions: Sequence[Any], kind: str) -> str | None:
    for q in questions:
        if (q["kind"] if isinstance(q, dict) else q.kind) == kind:
            return str(q["key"] if isinstance(q, dict) else q.key)
    return None


def _write_consensus(
    label: CuratedLabel | None,
    item: Item,
    basis: Sequence[Review],
    version: int,
    consensus: Consensus,
    now: Any,
) -> CuratedLabel:
    questions = [{"key": o.key, "kind": o.kind} for o in consensus.outcomes]
    answers = consensus.answers
    response_key = _first_key(questions, Kind.EXPECTED_RESPONSE)
    facts_key = _first_key(questions, Kind.EXPECTED_FACTS)
    fields: dict[str, Any] = {
        "answers": answers,
        "expected_response": str(answers.get(response_key, "")) if response_key else "",
        "expected_facts": list(answers.get(facts_key, [])) if facts_key else [],
        "method": Method.CONSENSUS,
        "decided_by": None,
        "rationale": "",
        "agreement": _agreement(basis, version, consensus),
        "schema_version": version,
        "reviews_changed_at": None,
        "self_adjudicated": False,
    }
    if label is not None and all(getattr(label, k) == v for k, v in fields.items() if k != "agreement"):
        if label.agreement.get("basis") == fields["agreement"]["basis"]:
            return label
    created = label is None
    label = _save_label(label, item, basis, fields, now, replaced_by=None)
    audit_record(
        actor=None,
        action="curation.consensus" if created else "curation.consensus_update",
        target=label,
        project=item.project,
        data={"item": item.pk, "answers": answers, "reviews": [r.pk for r in basis]},
    )
    return label


def curated_label_revise(
    label: CuratedLabel, *, fields: dict[str, Any], replaced_by: User | None, now: Any
) -> CuratedLabel:
    """Keep the label's current state as a revision, then apply ``fields`` and count a new version."""
    CuratedLabelRevision.objects.create(
        label=label,
        answers=label.answers,
        expected_response=label.expected_response,
        expected_facts=label.expected_facts,
        method=label.method,
        decided_by=label.decided_by,
        rationale=label.rationale,
        review_ids=list(label.reviews.values_list("id", flat=True)),
        schema_version=label.schema_version,
        replaced_by=replaced_by,
        replaced_at=now,
    )
    for name, value in fields.items():
        setattr(label, name, value)
    label.version += 1
    label.updated_at = now
    label.save(update_fields=[*fields, "version", "updated_at"])
    return label


def _save_label(
    label: CuratedLabel | None,
    item: Item,
    basis: Sequence[Review],
    fields: dict[str, Any],
    now: Any,
    *,
    replaced_by: User | None,
) -> CuratedLabel:
    """Create the label, or keep its current state in the history and update it."""
    if label is None:
        label = CuratedLabel.objects.create(project=item.project, item=item, created_at=now, updated_at=now, **fields)
    else:
        curated_label_revise(label, fields=fields, replaced_by=replaced_by, now=now)
        label.reviews.set(basis)
        return label
    label.reviews.add(*basis)  # a new label: a plain insert, no read of existing links
    return label


def _withdraw(label: CuratedLabel | None, *, reason: str) -> None:
    """Delete a consensus label its reviews no longer support (the audit log keeps what it said)."""
    if label is None or label.method != Method.CONSENSUS:
        return
    audit_record(
        actor=None,
        action="curation.consensus_withdraw",
        target=label.item,
        project=label.project,
        data={"reason": reason, "answers": label.answers, "reviews": list(label.reviews.values_list("id", flat=True))},
    )
    label.delete()


def _open(
    adjudication: Adjudication | None,
    item: Item,
    reason: str,
    disagreements: list[dict[str, str]],
    version: int | None,
    now: Any,
) -> Adjudication:
    if adjudication is None:
        adjudication = Adjudication.objects.create(
            project=item.project,
            item=item,
            reason=reason,
            disagreements=disagreements,
            schema_version=version,
            opened_at=now,
            updated_at=now,
        )
        audit_record(
            actor=None,
            action="adjudication.open",
            target=adjudication,
            project=item.project,
            data={"item": item.pk, "reason": reason, "disagreements": disagreements},
        )
        return adjudication
    # The reviews changed (that is why we are here): a curator's open page is now stale.
    adjudication.status = Adjudication.Status.OPEN
    adjudication.reason = reason
    adjudication.disagreements = disagreements
    adjudication.schema_version = version
    adjudication.version += 1
    adjudication.updated_at = now
    adjudication.save(update_fields=["status", "reason", "disagreements", "schema_version", "version", "updated_at"])
    return adjudication


def _close(adjudication: Adjudication, *, reason: str) -> None:
    """An undecided item that no longer needs a curator (its reviews now agree, or are too few)."""
    audit_record(
        actor=None,
        action="adjudication.close",
        target=adjudication,
        project=adjudication.project,
        data={"item": adjudication.item_id, "reason": reason},
    )
    adjudication.delete()


def _reopen_decided(
    label: CuratedLabel,
    adjudication: Adjudication | None,
    item: Item,
    consensus: Consensus | None,
    version: int | None,
    now: Any,
) -> None:
    """The reviews behind a curator's decision changed: keep the decision, flag it, queue it again."""
    if label.reviews_changed_at is None:
        label.reviews_changed_at = now
        label.save(update_fields=["reviews_changed_at"])
    disagreements = consensus.disagreements if consensus is not None else []
    adjudication = _open(adjudication, item, Adjudication.Reason.REVIEWS_CHANGED, disagreements, version, now)
    audit_record(
        actor=None,
        action="adjudication.reopen",
        target=adjudication,
        project=item.project,
        data={"item": item.pk, "label": label.pk, "disagreements": disagreements},
    )


def _stale(adjudication: Adjudication, label: CuratedLabel | None, user: User) -> AlreadyDecided | ReviewsChanged:
    if adjudication.status == Adjudication.Status.DECIDED and label is not None and label.decided_by is not None:
        who = "You" if label.decided_by.pk == user.pk else label.decided_by.get_username()
        when = timezone.localtime(label.updated_at).strftime("%H:%M")
        return AlreadyDecided(f"{who} already decided this item at {when}, after you loaded it; reload to see it.")
    return ReviewsChanged("The reviews of this item changed after you loaded it; reload to see them.")


def _merge_expectations(
    questions: Sequence[Question], answers: Any, expected_response: str | None, expected_facts: Any
) -> tuple[Any, dict[str, Any], list[FieldError]]:
    """The answers with the expectations written into their questions; the expectations that have no
    question of their kind; and the errors of those two loose fields."""
    errors: list[FieldError] = []
    loose: dict[str, Any] = {}
    merged = dict(answers) if isinstance(answers, dict) else answers
    response_key = _first_key(questions, Kind.EXPECTED_RESPONSE)
    facts_key = _first_key(questions, Kind.EXPECTED_FACTS)
    if expected_response is not None:
        if not isinstance(expected_response, str):
            errors.append(field_error("expected_response", "Give text."))
        elif response_key and isinstance(merged, dict):
            merged[response_key] = expected_response
        else:
            loose["expected_response"] = expected_response.strip()
    if expected_facts is not None:
        facts = expected_facts.splitlines() if isinstance(expected_facts, str) else expected_facts
        if not isinstance(facts, list) or not all(isinstance(f, str) for f in facts):
            errors.append(field_error("expected_facts", "Give a list of facts (texts)."))
        elif len(facts) > FACTS_MAX:
            errors.append(field_error("expected_facts", f"At most {FACTS_MAX} facts."))
        elif facts_key and isinstance(merged, dict):
            merged[facts_key] = facts
        else:
            loose["expected_facts"] = [f.strip() for f in facts if f.strip()]
    return merged, loose, errors


def _expectations(
    questions: Sequence[Question], cleaned: dict[str, Any], loose: dict[str, Any]
) -> tuple[str, list[str]]:
    response_key = _first_key(questions, Kind.EXPECTED_RESPONSE)
    facts_key = _first_key(questions, Kind.EXPECTED_FACTS)
    response = cleaned.get(response_key, "") if response_key else loose.get("expected_response", "")
    facts = cleaned.get(facts_key, []) if facts_key else loose.get("expected_facts", [])
    return str(response or ""), list(facts or [])
