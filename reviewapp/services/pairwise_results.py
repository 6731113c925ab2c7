"""Pairwise results: how each model version fared against the other, with a Wilson 95% interval.

A read of the preferences recorded by ``reviewapp.services.pairwise``. Wins are attributed by item
(the winner is item A or item B of its task), so the side a response was shown on never matters.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from django.db.models import Count, F, Min, Q

from reviewapp.item_stats import wilson
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

    @property
    def judgements(self) -> int:
        return self.wins + self.losses + self.ties + self.both_bad

    @property
    def n(self) -> int:
        """Decisive judgements: the sample the win rate and its interval rest on."""
        return self.wins + self.losses

    @property
    def win_rate(self) -> float | None:
        return self.wins / self.n if self.n else None

    @property
    def interval(self) -> tuple[float, float] | None:
        return wilson(self.wins, self.n)

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
        .values("task__version_a", "task__version_b")
        .annotate(
            a_wins=Count("id", filter=win & Q(winner_item=F("task__item_a"))),
            b_wins=Count("id", filter=win & Q(winner_item=F("task__item_b"))),
            ties=Count("id", filter=Q(outcome=Preference.Outcome.TIE)),
            both_bad=Count("id", filter=Q(outcome=Preference.Outcome.BOTH_BAD)),
            left_wins=Count("id", filter=Q(choice=Preference.Choice.A)),
        )
    )
    totals: dict[tuple[str, str], dict[str, int]] = {}
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
        counts = totals[pair[::-1] if flipped else pair]
        counts["wins"] += row["b_wins"] if flipped else row["a_wins"]
        counts["losses"] += row["a_wins"] if flipped else row["b_wins"]
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
        )
        for (a, b), c in sorted(totals.items(), key=lambda kv: order[kv[0]])
    ]
