"""Pairwise results: how each model version fared against the other, per pair of items.

A read of the preferences recorded by ``reviewapp.services.pairwise``. Wins are attributed by item
(the winner is item A or item B of its task), so the side a response was shown on never matters.

The win rate counts pairs, not judgements (``reviewapp.item_stats``): a pair's value is version A's
share of its decisive judgements, and the rate is the mean over pairs with at least one, so a pair
five reviewers judged weighs no more than a pair one reviewer judged. Its interval is Wilson over
pairs when every pair is unanimous, else a bootstrap that resamples pairs.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from django.db.models import Count, F, Min, Q

from reviewapp.item_stats import ItemFigure, pairs_win_rate
from reviewapp.models import PairwiseTask, Preference, Project


@dataclass(frozen=True)
class PairwiseResult:
    """How version A fared against version B. Ties and "both bad" are counted but not in the win rate."""

    version_a: str
    version_b: str
    tasks: int  # pairs of items
    done_tasks: int  # pairs with all their preferences
    wins: int  # A preferred
    losses: int  # B preferred
    ties: int
    both_bad: int
    left_wins: int  # decisive judgements won by whichever response was on the left (position bias)
    figure: ItemFigure  # the win rate over pairs (n = pairs with a decisive judgement)

    @property
    def judgements(self) -> int:
        return self.wins + self.losses + self.ties + self.both_bad

    @property
    def decisive(self) -> int:
        """Decisive judgements (A or B preferred)."""
        return self.wins + self.losses

    @property
    def n(self) -> int:
        """Pairs with a decisive judgement: the sample the win rate and its interval rest on."""
        return self.figure.items

    @property
    def win_rate(self) -> float | None:
        return self.figure.value

    @property
    def interval(self) -> tuple[float, float] | None:
        if self.figure.low is None or self.figure.high is None:
            return None
        return self.figure.low, self.figure.high

    @property
    def ci_low(self) -> float | None:
        return self.interval[0] if self.interval else None

    @property
    def ci_high(self) -> float | None:
        return self.interval[1] if self.interval else None


def pairwise_results(*, project: Project) -> list[PairwiseResult]:
    """One row per pair of versions compared in the project, in two grouped queries.

    Pairs created as (v1, v2) and as (v2, v1) are one row, oriented as first created.
    """
    task_rows = (
        PairwiseTask.objects.filter(project=project)
        .values("version_a", "version_b")
        .annotate(
            tasks=Count("id"),
            done=Count("id", filter=Q(status=PairwiseTask.Status.DONE)),
            first=Min("id"),
        )
    )
    win = Q(outcome=Preference.Outcome.WIN)
    pref_rows = (
        Preference.objects.filter(project=project)
        .values("task_id", "task__version_a", "task__version_b")
        .annotate(
            a_wins=Count("id", filter=win & Q(winner_item=F("task__item_a"))),
            b_wins=Count("id", filter=win & Q(winner_item=F("task__item_b"))),
            ties=Count("id", filter=Q(outcome=Preference.Outcome.TIE)),
            both_bad=Count("id", filter=Q(outcome=Preference.Outcome.BOTH_BAD)),
            left_wins=Count("id", filter=Q(choice=Preference.Choice.A)),
        )
    )
    totals: dict[tuple[str, str], dict[str, int]] = {}
    pairs: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)  # (A wins, B wins) per task
    order: dict[tuple[str, str], int] = {}
    for row in sorted(task_rows, key=lambda r: r["first"]):
        pair = (row["version_a"], row["version_b"])
        key = pair if pair[::-1] not in totals else pair[::-1]
        counts = totals.setdefault(key, defaultdict(int))
        order.setdefault(key, row["first"])
        counts["tasks"] += row["tasks"]
        counts["done"] += row["done"]
    for row in pref_rows:
        pair = (row["task__version_a"], row["task__version_b"])
        flipped = pair not in totals
        key = pair[::-1] if flipped else pair
        counts = totals[key]
        wins, losses = (row["b_wins"], row["a_wins"]) if flipped else (row["a_wins"], row["b_wins"])
        counts["wins"] += wins
        counts["losses"] += losses
        pairs[key].append((wins, losses))
        counts["ties"] += row["ties"]
        counts["both_bad"] += row["both_bad"]
        counts["left_wins"] += row["left_wins"]
    return [
        PairwiseResult(
            version_a=a,
            version_b=b,
            tasks=c["tasks"],
            done_tasks=c["done"],
            wins=c["wins"],
            losses=c["losses"],
            ties=c["ties"],
            both_bad=c["both_bad"],
            left_wins=c["left_wins"],
            figure=pairs_win_rate(pairs[(a, b)]),
        )
        for (a, b), c in sorted(totals.items(), key=lambda kv: order[kv[0]])
    ]
