"""Confidence intervals the gates and pages use: Wilson (one proportion), Newcombe and Welch (differences)."""

from __future__ import annotations

import math
import statistics

from reviewapp.item_stats import wilson, z_for

# --- statistics -------------------------------------------------------------------------------


def wilson_interval(successes: int, n: int, *, confidence: float = 0.95) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion (None when n is 0): the one in ``reviewapp.item_stats``."""
    return wilson(successes, n, confidence=confidence)


def newcombe_difference(
    x1: int, n1: int, x2: int, n2: int, *, confidence: float = 0.95
) -> tuple[float, float, float] | None:
    """p1 - p2 with Newcombe's hybrid score interval (method 10): ``(difference, low, high)``."""
    w1, w2 = wilson_interval(x1, n1, confidence=confidence), wilson_interval(x2, n2, confidence=confidence)
    if w1 is None or w2 is None:
        return None
    p1, p2 = x1 / n1, x2 / n2
    (l1, u1), (l2, u2) = w1, w2
    diff = p1 - p2
    low = diff - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = diff + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return diff, max(-1.0, low), min(1.0, high)


def welch_difference(a: list[float], b: list[float], *, confidence: float = 0.95) -> tuple[float, float, float] | None:
    """mean(a) - mean(b) with a normal interval on Welch's standard error: ``(difference, low, high)``."""
    if len(a) < 2 or len(b) < 2:
        return None
    diff = statistics.fmean(a) - statistics.fmean(b)
    se = math.sqrt(statistics.variance(a) / len(a) + statistics.variance(b) / len(b))
    half = z_for(confidence) * se
    return diff, diff - half, diff + half
