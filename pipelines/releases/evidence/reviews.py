"""Human evidence of a version: current reviews (pass rates, ratings) and pairwise wins against another version."""

# ruff: noqa: RUF001, RUF003 - text for people: en dashes and minus signs are intended

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from django.db.models import Q

from reviewapp import item_stats
from reviewapp.models import Preference, Project, Question
from reviewapp.selectors.items import item_answers_for

# --- human reviews ----------------------------------------------------------------------------


@dataclass
class PassRate:
    """A pass rate over items (``reviewapp.item_stats``): ``n`` is the number of items."""

    question: str
    title: str
    passes: float  # sum of the item values (a split vote counts its fraction)
    n: int  # items with a value
    rate: float | None
    low: float | None  # 95%: Wilson over items when every item value is 0/1, else a bootstrap over items
    high: float | None
    reviews: int = 0  # reviews behind those items
    curated: int = 0  # items valued by their curated label
    interval: str = ""  # which interval


@dataclass
class RatingSummary:
    """A mean rating over items (each item: its curated rating, else its reviews' mean)."""

    question: str
    title: str
    n: int  # items
    mean: float | None
    median: float | None  # of the item values
    scale: str  # e.g. "1–5"
    reviews: int = 0
    low: float | None = None  # 95% bootstrap over items
    high: float | None = None
    interval: str = ""


@dataclass
class HumanEvidence:
    reviews: int  # current reviews of the version's items
    items: int  # items of the version with a current review or a curated label
    primary_question: str  # key of the first pass/fail question ("" when the schema has none)
    pass_rates: dict[str, PassRate]
    ratings: list[RatingSummary]
    items_complete: int = 0  # of those, items with a curated label or a complete set of reviews
    reviews_complete: int = 0  # current reviews of those complete items
    # Per question key: item id -> value, and item id -> reviews behind it; item id -> request key.
    # Kept for pairing with another version; not part of ``as_dict``.
    values: dict[str, dict[int, float]] = field(default_factory=dict, repr=False)
    review_counts: dict[str, dict[int, int]] = field(default_factory=dict, repr=False)
    request_keys: dict[int, str] = field(default_factory=dict, repr=False)

    @property
    def primary(self) -> PassRate | None:
        return self.pass_rates.get(self.primary_question)

    def as_dict(self) -> dict[str, Any]:
        return {
            "reviews": self.reviews,
            "items": self.items,
            "items_complete": self.items_complete,
            "reviews_complete": self.reviews_complete,
            "primary_question": self.primary_question,
            "primary": asdict(self.primary) if self.primary else None,
            "pass_rates": {k: asdict(v) for k, v in self.pass_rates.items()},
            "ratings": [asdict(r) for r in self.ratings],
        }

    def by_request(self, question: str) -> tuple[dict[str, float], dict[str, int]]:
        """This version's values of ``question`` keyed by request, for pairing with another version."""
        return item_stats.by_request(
            self.values.get(question, {}), self.review_counts.get(question, {}), self.request_keys
        )


def primary_pass_question(*, project: Project) -> Question | None:
    return Question.objects.filter(project=project, kind=Question.Kind.PASS_FAIL).order_by("order", "id").first()


def human_evidence(*, project: Project, model_version: str) -> HumanEvidence:
    """Per-item human figures of the project's items answered by ``model_version`` (four queries).

    Each item counts once: its curated label's answer, else the mean of its current reviews'
    answers (``reviewapp.item_stats``).
    """
    questions = list(Question.objects.filter(project=project).order_by("order", "id"))
    pass_questions = [q for q in questions if q.kind == Question.Kind.PASS_FAIL]
    rating_questions = [q for q in questions if q.kind == Question.Kind.RATING]
    entries = item_answers_for(project=project, model_version=model_version, with_request_keys=True)
    values: dict[str, dict[int, float]] = {}
    counts: dict[str, dict[int, int]] = {}
    pass_rates = {}
    for q in pass_questions:
        vals, revs, curated = item_stats.question_values(entries, key=q.key, kind="pass_fail")
        values[q.key], counts[q.key] = vals, revs
        figure = item_stats.items_rate(list(vals.values()), reviews=sum(revs.values()), curated=curated)
        pass_rates[q.key] = PassRate(
            question=q.key,
            title=q.title,
            passes=figure.passes or 0,
            n=figure.items,
            rate=figure.value,
            low=figure.low,
            high=figure.high,
            reviews=figure.reviews,
            curated=curated,
            interval=figure.interval,
        )
    summaries = []
    for q in rating_questions:
        vals, revs, curated = item_stats.question_values(entries, key=q.key, kind="rating")
        values[q.key], counts[q.key] = vals, revs
        figure = item_stats.items_mean(list(vals.values()), reviews=sum(revs.values()), curated=curated)
        options = q.options or {}
        summaries.append(
            RatingSummary(
                question=q.key,
                title=q.title,
                n=figure.items,
                mean=figure.value,
                median=figure.median,
                scale=f"{options.get('min', '')}–{options.get('max', '')}",
                reviews=figure.reviews,
                low=figure.low,
                high=figure.high,
                interval=figure.interval,
            )
        )
    return HumanEvidence(
        reviews=sum(len(e.reviews or []) for e in entries),
        items=len(entries),
        items_complete=sum(1 for e in entries if e.complete),
        reviews_complete=sum(len(e.reviews or []) for e in entries if e.complete),
        primary_question=pass_questions[0].key if pass_questions else "",
        pass_rates=pass_rates,
        ratings=summaries,
        values=values,
        review_counts=counts,
        request_keys={e.item_id: e.request_key for e in entries},
    )


@dataclass
class HumanPaired:
    """One question, this version beside the champion on the requests both answered."""

    question: str
    title: str
    kind: str  # "pass_fail" or "rating"
    figure: item_stats.PairedFigure

    def as_dict(self) -> dict[str, Any]:
        return {"question": self.question, "title": self.title, "kind": self.kind, **self.figure.as_dict()}

    @property
    def summary(self) -> str:
        return self.figure.summary("the champion", "this version")


def human_paired(
    *,
    candidate: HumanEvidence,
    champion: HumanEvidence,
    question: str,
    confidence: float = item_stats.DEFAULT_CONFIDENCE,
) -> item_stats.PairedFigure:
    """Champion (A) and candidate (B) on the requests both versions answered and humans valued.

    Two versions' items pair up by their request (the normalised request text, see
    ``reviewapp.blind.request_key``); a delta is B - A, its interval a paired
    bootstrap over the shared requests (seeded).
    """
    a, reviews_a = champion.by_request(question)
    b, reviews_b = candidate.by_request(question)
    return item_stats.paired_interval(a, b, confidence=confidence, reviews_a=reviews_a, reviews_b=reviews_b)


def humans_paired(*, project: Project, candidate: HumanEvidence, champion: HumanEvidence) -> list[HumanPaired]:
    """Every pass/fail and rating question, paired on shared requests (for the evidence page and API)."""
    out = []
    for q in Question.objects.filter(project=project).order_by("order", "id"):
        if q.kind not in (Question.Kind.PASS_FAIL, Question.Kind.RATING):
            continue
        figure = human_paired(candidate=candidate, champion=champion, question=q.key)
        out.append(HumanPaired(question=q.key, title=q.title, kind=str(q.kind), figure=figure))
    return out


# --- pairwise ---------------------------------------------------------------------------------


@dataclass
class PairwiseEvidence:
    against: str  # the champion's version
    wins: int
    losses: int
    ties: int
    both_bad: int
    n: int  # pairs of items with a decisive judgement
    decisive: int  # decisive judgements (wins + losses)
    win_rate: float | None  # mean over pairs of this version's share of the pair's decisive judgements
    low: float | None  # 95%: Wilson over pairs when each pair is unanimous, else a bootstrap over pairs
    high: float | None


def pairwise_evidence(*, project: Project, version: str, against: str) -> PairwiseEvidence:
    """Preferences between two versions, by the recorded (true) winner and loser versions.

    The win rate counts pairs of items, not judgements (``reviewapp.item_stats.pairs_win_rate``).
    """
    both = Q(left_model_version=version, right_model_version=against) | Q(
        left_model_version=against, right_model_version=version
    )
    prefs = Preference.objects.filter(project=project).filter(both)
    wins = losses = ties = both_bad = 0
    per_pair: dict[int, list[int]] = {}
    rows = prefs.values_list("task_id", "outcome", "winner_model_version", "loser_model_version")
    for task_id, outcome, winner, loser in rows:
        if outcome == Preference.Outcome.WIN and (winner, loser) == (version, against):
            wins += 1
            per_pair.setdefault(task_id, [0, 0])[0] += 1
        elif outcome == Preference.Outcome.WIN and (winner, loser) == (against, version):
            losses += 1
            per_pair.setdefault(task_id, [0, 0])[1] += 1
        elif outcome == Preference.Outcome.TIE:
            ties += 1
        elif outcome == Preference.Outcome.BOTH_BAD:
            both_bad += 1
    figure = item_stats.pairs_win_rate([(w, lost) for w, lost in per_pair.values()])
    return PairwiseEvidence(
        against=against,
        wins=wins,
        losses=losses,
        ties=ties,
        both_bad=both_bad,
        n=figure.items,
        decisive=wins + losses,
        win_rate=figure.value,
        low=figure.low,
        high=figure.high,
    )
