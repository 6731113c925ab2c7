"""Human evidence of a version: current reviews (pass rates, ratings) and pairwise wins against another version."""

# ruff: noqa: RUF001, RUF003 - text for people: en dashes and minus signs are intended

from __future__ import annotations

import statistics
from dataclasses import dataclass

from django.db.models import Q

from pipelines.evidence.intervals import wilson_interval
from reviewapp.models import Preference, Project, Question, Review

# --- human reviews ----------------------------------------------------------------------------


@dataclass
class PassRate:
    question: str
    title: str
    passes: int
    n: int
    rate: float | None
    low: float | None  # Wilson 95%
    high: float | None


@dataclass
class RatingSummary:
    question: str
    title: str
    n: int
    mean: float | None
    median: float | None
    scale: str  # e.g. "1–5"


@dataclass
class HumanEvidence:
    reviews: int
    items: int  # items of the version with at least one current review
    primary_question: str  # key of the first pass/fail question ("" when the schema has none)
    pass_rates: dict[str, PassRate]
    ratings: list[RatingSummary]

    @property
    def primary(self) -> PassRate | None:
        return self.pass_rates.get(self.primary_question)


def primary_pass_question(*, project: Project) -> Question | None:
    return Question.objects.filter(project=project, kind=Question.Kind.PASS_FAIL).order_by("order", "id").first()


def human_evidence(*, project: Project, model_version: str) -> HumanEvidence:
    """Reviews of the project's items answered by ``model_version`` (two queries)."""
    questions = list(Question.objects.filter(project=project).order_by("order", "id"))
    pass_questions = [q for q in questions if q.kind == Question.Kind.PASS_FAIL]
    rating_questions = [q for q in questions if q.kind == Question.Kind.RATING]
    rows = Review.objects.filter(
        project=project, returned_at__isnull=True, item__model_version=model_version
    ).values_list("item_id", "answers")
    reviews = 0
    items: set[int] = set()
    passes = {q.key: [0, 0] for q in pass_questions}
    ratings: dict[str, list[float]] = {q.key: [] for q in rating_questions}
    for item_id, answers in rows.iterator(chunk_size=5000):
        reviews += 1
        items.add(item_id)
        answers = answers or {}
        for key, counts in passes.items():
            value = answers.get(key)
            if isinstance(value, bool):
                counts[0] += int(value)
                counts[1] += 1
        for key, values in ratings.items():
            value = answers.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                values.append(float(value))
    pass_rates = {}
    for q in pass_questions:
        x, n = passes[q.key]
        ci = wilson_interval(x, n)
        pass_rates[q.key] = PassRate(
            question=q.key,
            title=q.title,
            passes=x,
            n=n,
            rate=x / n if n else None,
            low=ci[0] if ci else None,
            high=ci[1] if ci else None,
        )
    summaries = []
    for q in rating_questions:
        values = ratings[q.key]
        options = q.options or {}
        summaries.append(
            RatingSummary(
                question=q.key,
                title=q.title,
                n=len(values),
                mean=statistics.fmean(values) if values else None,
                median=float(statistics.median(values)) if values else None,
                scale=f"{options.get('min', '')}–{options.get('max', '')}",
            )
        )
    return HumanEvidence(
        reviews=reviews,
        items=len(items),
        primary_question=pass_questions[0].key if pass_questions else "",
        pass_rates=pass_rates,
        ratings=summaries,
    )


# --- pairwise ---------------------------------------------------------------------------------


@dataclass
class PairwiseEvidence:
    against: str  # the champion's version
    wins: int
    losses: int
    ties: int
    both_bad: int
    n: int  # decisive judgements
    win_rate: float | None
    low: float | None  # Wilson 95%
    high: float | None


def pairwise_evidence(*, project: Project, version: str, against: str) -> PairwiseEvidence:
    """Preferences between two versions, by the recorded (true) winner and loser versions."""
    both = Q(left_model_version=version, right_model_version=against) | Q(
        left_model_version=against, right_model_version=version
    )
    prefs = Preference.objects.filter(project=project).filter(both)
    wins = losses = ties = both_bad = 0
    for outcome, winner, loser in prefs.values_list("outcome", "winner_model_version", "loser_model_version"):
        if outcome == Preference.Outcome.WIN and (winner, loser) == (version, against):
            wins += 1
        elif outcome == Preference.Outcome.WIN and (winner, loser) == (against, version):
            losses += 1
        elif outcome == Preference.Outcome.TIE:
            ties += 1
        elif outcome == Preference.Outcome.BOTH_BAD:
            both_bad += 1
    n = wins + losses
    ci = wilson_interval(wins, n)
    return PairwiseEvidence(
        against=against,
        wins=wins,
        losses=losses,
        ties=ties,
        both_bad=both_bad,
        n=n,
        win_rate=wins / n if n else None,
        low=ci[0] if ci else None,
        high=ci[1] if ci else None,
    )
