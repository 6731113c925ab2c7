"""Figures over items (reviewapp.item_stats) against hand-computed values."""

from __future__ import annotations

import pytest

from reviewapp.item_stats import (
    BOOTSTRAP,
    PAIRED_BOOTSTRAP,
    WILSON,
    ItemAnswers,
    bootstrap_mean_interval,
    by_request,
    item_value,
    items_mean,
    items_rate,
    paired_interval,
    question_values,
    wilson,
)


def test_an_items_value_is_its_curated_answer_else_its_reviews_mean() -> None:
    passed, failed = {"correct": True}, {"correct": False}
    assert item_value(curated={"correct": False}, reviews=[passed, passed], key="correct", kind="pass_fail") == (
        0.0,
        2,
        True,
    )
    assert item_value(curated=None, reviews=[passed, passed, failed], key="correct", kind="pass_fail") == (
        pytest.approx(2 / 3),
        3,
        False,
    )
    # A tie is neither a pass nor a fail: a fractional vote of one half.
    assert item_value(curated=None, reviews=[passed, failed], key="correct", kind="pass_fail")[0] == 0.5
    # A curated label without this answer falls back to the reviews; a rating is never read as a verdict.
    assert item_value(curated={}, reviews=[passed], key="correct", kind="pass_fail") == (1.0, 1, False)
    assert item_value(curated=None, reviews=[{"correct": 1}], key="correct", kind="pass_fail") == (None, 0, False)
    assert item_value(curated=None, reviews=[{"h": 2}, {"h": 5}, {"h": True}], key="h", kind="rating")[0] == 3.5


def test_one_item_with_ten_reviews_counts_once() -> None:
    # Item 1 passed by ten reviewers; items 2-4 failed by one each.
    entries = [ItemAnswers(item_id=1, reviews=[{"correct": True}] * 10)]
    entries += [ItemAnswers(item_id=i, reviews=[{"correct": False}]) for i in (2, 3, 4)]
    values, reviews, curated = question_values(entries, key="correct", kind="pass_fail")

    figure = items_rate(list(values.values()), reviews=sum(reviews.values()), curated=curated)

    per_review = 10 / 13  # what counting reviews would say: 77%
    assert per_review > 0.75 and figure.value == 0.25  # each item once: 1 of 4 items
    assert (figure.items, figure.reviews, figure.passes, figure.interval) == (4, 13, 1.0, WILSON)
    # Wilson for 1/4: centre = (0.25 + z²/8) / (1 + z²/4) = 0.39850, half = 0.35291
    assert figure.low == pytest.approx(0.04559, abs=1e-4) and figure.high == pytest.approx(0.69936, abs=1e-4)
    assert figure.n_text == "4 items, 13 reviews"


def test_wilson_over_items_matches_the_hand_computation() -> None:
    figure = items_rate([1.0] * 18 + [0.0] * 2, reviews=40)
    assert figure.value == 0.9 and figure.interval == WILSON
    assert (figure.low, figure.high) == (pytest.approx(0.69897, abs=1e-4), pytest.approx(0.97213, abs=1e-4))
    assert wilson(18, 20) == pytest.approx((figure.low, figure.high))
    assert items_rate([], reviews=0).value is None and items_rate([], reviews=0).low is None


def test_split_votes_get_a_seeded_bootstrap_over_items() -> None:
    values = [1.0, 0.5, 0.0, 1.0, 0.5, 1.0, 0.0, 1.0]
    figure = items_rate(values, reviews=14)
    assert figure.value == pytest.approx(5 / 8) and figure.interval == BOOTSTRAP
    assert figure.low is not None and figure.high is not None and figure.low < 5 / 8 < figure.high
    assert 0 <= figure.low and figure.high <= 1
    assert items_rate(values, reviews=14) == figure  # the same data, the same interval
    assert bootstrap_mean_interval([0.7]) is None  # one item: no interval
    assert bootstrap_mean_interval([0.5, 0.5, 0.5]) == (0.5, 0.5)


def test_rating_mean_and_median_over_items() -> None:
    figure = items_mean([4.0, 3.0, 2.0, 4.5], reviews=7, curated=1)
    assert (figure.value, figure.median, figure.items, figure.reviews) == (3.375, 3.5, 4, 7)
    assert figure.interval == BOOTSTRAP and figure.low <= 3.375 <= figure.high


def test_paired_interval_uses_shared_keys_only() -> None:
    champion = {"q1": 1.0, "q2": 0.0, "q3": 0.0, "q4": 1.0, "only-a": 1.0}
    candidate = {"q1": 1.0, "q2": 1.0, "q3": 1.0, "q4": 1.0, "only-b1": 0.0, "only-b2": 0.0}

    paired = paired_interval(champion, candidate, reviews_a={"q1": 2}, reviews_b={"q1": 3, "only-b1": 9})

    assert (paired.shared, paired.only_a, paired.only_b) == (4, 1, 2)
    # Means over the 4 shared keys only: the unshared 1.0 and 0.0s do not enter.
    assert (paired.mean_a, paired.mean_b, paired.delta) == (0.5, 1.0, 0.5)
    assert (paired.reviews_a, paired.reviews_b) == (2, 3)
    assert paired.interval == PAIRED_BOOTSTRAP and 0 <= paired.low <= 0.5 <= paired.high <= 1
    assert paired.summary() == "compared on 4 shared items; 1 only in A, 2 only in B"
    assert paired_interval(champion, candidate) == paired_interval(champion, candidate)  # seeded
    assert paired_interval({"x": 1.0}, {"y": 1.0}).delta is None


def test_by_request_pairs_versions_by_request_and_averages_repeats() -> None:
    values, counts = by_request({1: 1.0, 2: 0.0, 3: 1.0}, {1: 2, 2: 1, 3: 1}, {1: "k1", 2: "k1", 3: "k2"})
    assert values == {"k1": 0.5, "k2": 1.0} and counts == {"k1": 3, "k2": 1}
