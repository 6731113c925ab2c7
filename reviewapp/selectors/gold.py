"""Gold items: their known answers and each reviewer's accuracy on them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet
from django.http import Http404

from reviewapp.item_stats import wilson
from reviewapp.models import Project, Review
from reviewapp.models.gold import SCORABLE_KINDS, GoldAnswer
from reviewapp.selectors.projects import questions_for_project


def gold_answer_list(*, project: Project) -> QuerySet[GoldAnswer]:
    return GoldAnswer.objects.filter(project=project).select_related("item", "created_by").order_by("id")


def gold_answer_get(*, project: Project, item_id: int) -> GoldAnswer:
    gold = GoldAnswer.objects.filter(project=project, item_id=item_id).select_related("item", "project").first()
    if gold is None:
        raise Http404("This item is not a gold item.")
    return gold


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
        low, high = wilson(t["correct"], t["n"]) or (None, None)
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
