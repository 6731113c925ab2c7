"""Human figures per item, not per review: the one place that turns reviews into item values.

Why: a review is not an independent observation. Ten reviews of one item say much about that
item and nothing about the others; counting them ten times lets one item move a pass rate, and an
interval that treats each review as independent is far too narrow.

- **An item's value** for a pass/fail question is its curated label's answer (1 pass, 0 fail)
  when the item has one; otherwise the mean of its current reviews' answers (pass = 1, fail = 0).
  A split vote is therefore fractional: two reviewers, one pass one fail, give 0.5 (a tie is
  neither a pass nor a fail). For a rating question the value is the curated rating, else the
  mean of the reviews' ratings.
- **A rate or mean** is the mean of the item values; its **n** is the number of items (the
  number of reviews behind them is reported beside it).
- **The interval** (95% unless said otherwise): when every item value is 0 or 1, the Wilson
  score interval over items; otherwise (split votes, ratings) a percentile bootstrap that
  resamples items (a cluster bootstrap: an item's reviews always travel together), seeded so
  the same data gives the same interval.
- **Paired figures** (two versions, two runs) use only the items both sides share; the interval
  of the mean difference resamples shared items (:func:`paired_interval`).
"""

from __future__ import annotations

import hashlib
import math
import statistics
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

BOOTSTRAP_SAMPLES = 2000
DEFAULT_CONFIDENCE = 0.95
WILSON = "Wilson score interval over items"
BOOTSTRAP = "bootstrap over items (items resampled, seeded)"
PAIRED_BOOTSTRAP = "paired bootstrap over shared items (seeded)"


def z_for(confidence: float) -> float:
    """The two-sided normal quantile: 1.96 for 0.95."""
    return NormalDist().inv_cdf((1 + confidence) / 2)


def wilson(successes: float, n: int, *, confidence: float = DEFAULT_CONFIDENCE) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion (None when n is 0)."""
    if n <= 0:
        return None
    z = z_for(confidence)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(max(0.0, p * (1 - p) / n + z * z / (4 * n * n))) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def bootstrap_mean_interval(
    values: Iterable[float],
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    samples: int = BOOTSTRAP_SAMPLES,
    seed: int = 0,
) -> tuple[float, float] | None:
    """Percentile interval of the mean, resampling the values (items, or shared-item differences).

    None below two values. Seeded: the same values give the same interval.
    """
    arr = np.asarray(list(values), dtype=np.float64)
    n = len(arr)
    if n < 2:
        return None
    rng = np.random.default_rng(seed)
    means = np.empty(samples)
    step = max(1, 2_000_000 // n)  # bound memory: at most ~2M indices at a time
    for start in range(0, samples, step):
        count = min(step, samples - start)
        idx = rng.integers(0, n, size=(count, n), dtype=np.int64)
        means[start : start + count] = arr[idx].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


@dataclass(frozen=True)
class ItemFigure:
    """A mean over items (a pass rate when the values are 0..1) with its interval and its n."""

    items: int  # n: items with a value
    reviews: int  # current reviews behind those items' values (curated items count theirs too)
    curated: int  # of the items, how many took their value from a curated label
    value: float | None  # mean of the item values
    low: float | None
    high: float | None
    interval: str  # which interval (WILSON or BOOTSTRAP), "" without one
    confidence: float = DEFAULT_CONFIDENCE
    passes: float | None = None  # pass/fail: sum of item values (a whole number when all are 0/1)
    median: float | None = None  # ratings: median of the item values

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def n_text(self) -> str:
        """E.g. "14 items, 26 reviews"."""
        return f"{self.items} item{'s' * (self.items != 1)}, {self.reviews} review{'s' * (self.reviews != 1)}"


def _is_binary(values: list[float]) -> bool:
    return all(v in (0.0, 1.0) for v in values)


def items_rate(
    values: list[float], *, reviews: int, curated: int = 0, confidence: float = DEFAULT_CONFIDENCE, seed: int = 0
) -> ItemFigure:
    """Pass rate over items (values in 0..1): Wilson when all are 0/1, else a bootstrap over items."""
    n = len(values)
    if not n:
        return ItemFigure(0, reviews, curated, None, None, None, "", confidence, passes=0)
    total = math.fsum(values)
    if _is_binary(values):
        ci, method = wilson(total, n, confidence=confidence), WILSON
    else:
        ci, method = bootstrap_mean_interval(values, confidence=confidence, seed=seed), BOOTSTRAP
    return ItemFigure(
        items=n,
        reviews=reviews,
        curated=curated,
        value=total / n,
        low=ci[0] if ci else None,
        high=ci[1] if ci else None,
        interval=method if ci else "",
        confidence=confidence,
        passes=total,
    )


def items_mean(
    values: list[float], *, reviews: int, curated: int = 0, confidence: float = DEFAULT_CONFIDENCE, seed: int = 0
) -> ItemFigure:
    """Mean rating over items with a bootstrap interval over items, and the median item value."""
    n = len(values)
    if not n:
        return ItemFigure(0, reviews, curated, None, None, None, "", confidence)
    ci = bootstrap_mean_interval(values, confidence=confidence, seed=seed)
    return ItemFigure(
        items=n,
        reviews=reviews,
        curated=curated,
        value=statistics.fmean(values),
        low=ci[0] if ci else None,
        high=ci[1] if ci else None,
        interval=BOOTSTRAP if ci else "",
        confidence=confidence,
        median=float(statistics.median(values)),
    )


def pairs_win_rate(per_pair: list[tuple[int, int]]) -> ItemFigure:
    """A win rate over pairs of items from each pair's (wins, losses): a pair's value is its share of
    wins among its decisive judgements; pairs without one are left out; ``reviews`` counts judgements."""
    values = [wins / (wins + losses) for wins, losses in per_pair if wins + losses]
    return items_rate(values, reviews=sum(wins + losses for wins, losses in per_pair))


# --- item values ------------------------------------------------------------------------------


def _pass_value(value: Any) -> float | None:
    return float(value) if isinstance(value, bool) else None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def item_value(
    *, curated: dict[str, Any] | None, reviews: list[dict[str, Any]], key: str, kind: str
) -> tuple[float | None, int, bool]:
    """One item's value for question ``key``: ``(value, reviews answering it, from the curated label)``.

    ``kind`` is "pass_fail" (values 0/1, a split vote gives its fraction) or "rating" (numbers).
    """
    read = _pass_value if kind == "pass_fail" else _number
    answered = [v for v in (read((r or {}).get(key)) for r in reviews) if v is not None]
    final = read((curated or {}).get(key)) if curated is not None else None
    if final is not None:
        return final, len(answered), True
    if not answered:
        return None, 0, False
    return math.fsum(answered) / len(answered), len(answered), False


@dataclass
class ItemAnswers:
    """What one item's humans said: its curated answers (or None) and its current reviews' answers."""

    item_id: int
    request_key: str = ""
    curated: dict[str, Any] | None = None
    reviews: list[dict[str, Any]] | None = None
    complete: bool = False  # a curated label, or at least ``reviews_per_item`` current reviews


def question_values(
    items: Iterable[ItemAnswers], *, key: str, kind: str
) -> tuple[dict[int, float], dict[int, int], int]:
    """Per item id: its value and the reviews behind it; and how many values came from curated labels."""
    values: dict[int, float] = {}
    reviews: dict[int, int] = {}
    curated = 0
    for item in items:
        value, n, from_label = item_value(curated=item.curated, reviews=item.reviews or [], key=key, kind=kind)
        if value is None:
            continue
        values[item.item_id] = value
        reviews[item.item_id] = n
        curated += int(from_label)
    return values, reviews, curated


# --- pairing ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairedFigure:
    """Two sides (A: the reference, e.g. the champion; B: the one measured) on their shared items."""

    shared: int  # n: items (or requests) with a value on both sides
    only_a: int
    only_b: int
    mean_a: float | None  # over the shared items only
    mean_b: float | None
    delta: float | None  # mean of (B - A) over shared items = mean_b - mean_a
    low: float | None
    high: float | None
    interval: str
    confidence: float = DEFAULT_CONFIDENCE
    reviews_a: int = 0  # reviews behind the shared items' values (human figures)
    reviews_b: int = 0

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["summary"] = self.summary()
        return out

    def summary(self, a: str = "A", b: str = "B") -> str:
        """E.g. "compared on 20 shared items; 5 only in A, 3 only in B"."""
        text = f"compared on {self.shared} shared item{'s' * (self.shared != 1)}"
        extra = [f"{n} only in {who}" for n, who in ((self.only_a, a), (self.only_b, b)) if n]
        return text + ("; " + ", ".join(extra) if extra else "")


def paired_interval(
    a: dict[Any, float],
    b: dict[Any, float],
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = 0,
    reviews_a: dict[Any, int] | None = None,
    reviews_b: dict[Any, int] | None = None,
) -> PairedFigure:
    """Means of both sides over the keys they share, the mean difference B - A and its paired bootstrap."""
    shared = sorted(set(a) & set(b), key=str)
    diffs = [b[k] - a[k] for k in shared]
    ci = bootstrap_mean_interval(diffs, confidence=confidence, seed=seed)
    return PairedFigure(
        shared=len(shared),
        only_a=len(set(a) - set(b)),
        only_b=len(set(b) - set(a)),
        mean_a=statistics.fmean(a[k] for k in shared) if shared else None,
        mean_b=statistics.fmean(b[k] for k in shared) if shared else None,
        delta=statistics.fmean(diffs) if diffs else None,
        low=ci[0] if ci else None,
        high=ci[1] if ci else None,
        interval=PAIRED_BOOTSTRAP if ci else "",
        confidence=confidence,
        reviews_a=sum((reviews_a or {}).get(k, 0) for k in shared),
        reviews_b=sum((reviews_b or {}).get(k, 0) for k in shared),
    )


def by_request(
    values: dict[int, float], reviews: dict[int, int], keys: dict[int, str]
) -> tuple[dict[str, float], dict[str, int]]:
    """Item values and review counts re-keyed by request.

    Two versions' items pair up by request (``reviewapp.blind.request_key``: the
    normalised request text). When a version answered one request more than once, its value for
    that request is the mean of those items' values.
    """
    grouped: dict[str, list[float]] = {}
    counts: dict[str, int] = {}
    for item_id, value in values.items():
        key = keys.get(item_id) or f"item:{item_id}"
        grouped.setdefault(key, []).append(value)
        counts[key] = counts.get(key, 0) + reviews.get(item_id, 0)
    return {k: math.fsum(v) / len(v) for k, v in grouped.items()}, counts


def content_hash(text: str | None) -> str:
    """The digest two responses are compared by (exact text)."""
    return hashlib.sha256((text or "").encode()).hexdigest()
