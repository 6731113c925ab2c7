"""Agreement figures against published worked examples."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from reviewapp.agreement import cohen_kappa, krippendorff_alpha, percent_agreement

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: four observers,
# twelve units, missing values allowed. Published: nominal .743, ordinal .815, interval .849.
_OBSERVERS = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
]
KRIPPENDORFF_UNITS = [[obs[u] for obs in _OBSERVERS if obs[u] is not None] for u in range(12)]


@pytest.mark.parametrize(("level", "published"), [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)])
def test_alpha_matches_krippendorffs_worked_example(level, published):
    result = krippendorff_alpha(KRIPPENDORFF_UNITS, level=level)
    assert round(result.value, 3) == published
    assert result.n_items == 11  # unit 12 has a single value and is not pairable
    assert result.ci_low <= result.value <= result.ci_high


def test_alpha_binary_example():
    # Krippendorff (2011), section A: two observers, ten units, binary data: alpha = 0.095.
    a = [0, 1, 0, 0, 0, 0, 0, 0, 1, 0]
    b = [1, 1, 1, 0, 0, 1, 0, 0, 0, 0]
    assert round(krippendorff_alpha(list(zip(a, b, strict=True))).value, 3) == 0.095


def test_bootstrap_alpha_equals_point_estimate_without_resampling():
    # Our vectorised coincidence-matrix alpha (used for the interval) must agree with the package.
    from reviewapp.agreement import alpha_from_coincidences, coincidences, value_counts

    counts, values = value_counts(KRIPPENDORFF_UNITS)
    o = coincidences(counts).sum(axis=0).reshape(1, len(values), len(values))
    for level in ("nominal", "ordinal", "interval"):
        ours = alpha_from_coincidences(o, level, values)[0]
        assert math.isclose(ours, krippendorff_alpha(KRIPPENDORFF_UNITS, level=level).value, abs_tol=1e-9)


def test_perfect_and_chance_agreement():
    assert krippendorff_alpha([[1, 1], [2, 2], [3, 3]]).value == pytest.approx(1.0)
    assert percent_agreement([[True, True], [False, False]]).value == 1.0
    assert percent_agreement([[True, False], [True, True]]).value == 0.5
    assert krippendorff_alpha([[1, 1], [1, 1]]).value is None  # no variation: undefined


def test_cohen_kappa_textbook_example():
    # 50 items: both yes 20, A yes/B no 5, A no/B yes 10, both no 15 -> po .70, pe .50, kappa .40
    pairs = [("yes", "yes")] * 20 + [("yes", "no")] * 5 + [("no", "yes")] * 10 + [("no", "no")] * 15
    result = cohen_kappa(pairs)
    assert result.value == pytest.approx(0.4)
    assert result.n_items == 50
    assert result.ci_low < 0.4 < result.ci_high


def test_interval_narrows_with_more_items():
    rng = np.random.default_rng(3)
    small = [[v, v if rng.random() < 0.8 else 1 - v] for v in rng.integers(0, 2, 30)]
    large = [[v, v if rng.random() < 0.8 else 1 - v] for v in rng.integers(0, 2, 3000)]
    a, b = krippendorff_alpha(small), krippendorff_alpha(large)
    assert (b.ci_high - b.ci_low) < (a.ci_high - a.ci_low)


@pytest.mark.slow
def test_hundred_thousand_reviews_compute_fast_enough():
    rng = np.random.default_rng(5)
    truth = rng.integers(1, 6, 33_334)
    units = [[int(t), int(np.clip(t + rng.integers(-1, 2), 1, 5)), int(t)] for t in truth]
    started = time.perf_counter()
    result = krippendorff_alpha(units, level="ordinal")
    elapsed = time.perf_counter() - started
    assert result.n_ratings == 100_002
    assert 0 < result.value < 1
    assert elapsed < 20  # a sanity bound only; the figure lives in bench/
