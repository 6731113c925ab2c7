"""Two model versions' production figures over one time window, from the per-item monitoring values.

Used by the alert rules ("worse than the champion by more than Δ") and by the promotion gate
``production_not_worse``. The difference is oriented so that a positive number means *the subject is
worse* (a lower pass rate or score; a higher thumbs-down rate, latency or token count).

**Paired** when at least ``min_n`` requests were answered by both versions (``Item.request_hash``):
each request's value per version (the mean of its items), the per-request differences, and the normal
interval mean ± z·sd/√n over them. **Otherwise two samples** over items: the difference of the means
and Welch's normal interval ± z·√(s²₁/n₁ + s²₂/n₂). Fewer than ``min_n`` items on either side: no
verdict ("cannot be computed"), saying n per side.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from pipelines.models import MonitoringValue
from reviewapp import item_stats
from reviewapp.models import Item, Project

# Metrics where a higher value is the worse one; every other metric (rates of passing, scores) is better higher.
HIGHER_IS_WORSE = frozenset({"thumbs_down_rate", "latency_ms", "tokens"})


@dataclass(frozen=True)
class WindowValues:
    n: int
    mean: float | None
    by_request: dict[str, float]  # request hash -> mean of that request's items
    values: list[float]


def window_values(*, project: Project, metric: str, version: str, since: datetime, until: datetime) -> WindowValues:
    """One version's item values of ``metric`` in [since, until), with each request's mean."""
    rows = MonitoringValue.objects.filter(
        project=project, metric=metric, model_version=version, at__gte=since, at__lt=until
    ).values_list("item_id", "value")
    values = dict(rows)
    hashes = dict(Item.objects.filter(pk__in=list(values)).exclude(request_hash="").values_list("id", "request_hash"))
    per_request: dict[str, list[float]] = defaultdict(list)
    for item_id, value in values.items():
        if item_id in hashes:
            per_request[hashes[item_id]].append(value)
    listed = list(values.values())
    return WindowValues(
        n=len(listed),
        mean=math.fsum(listed) / len(listed) if listed else None,
        by_request={h: math.fsum(v) / len(v) for h, v in per_request.items()},
        values=listed,
    )


@dataclass(frozen=True)
class Comparison:
    metric: str
    method: str  # "paired" (shared requests), "two-sample" (items), or "" (cannot be computed)
    n_subject: int  # items of the subject in the window
    n_baseline: int  # items of the baseline (the champion)
    shared: int  # requests answered by both
    mean_subject: float | None
    mean_baseline: float | None
    worse_by: float | None  # subject - baseline, oriented: positive = the subject is worse
    low: float | None  # the interval of worse_by
    high: float | None
    confidence: float
    detail: str

    @property
    def computable(self) -> bool:
        return self.worse_by is not None and self.low is not None and self.high is not None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _variance(values: list[float]) -> float:
    n = len(values)
    mean = math.fsum(values) / n
    return math.fsum((v - mean) ** 2 for v in values) / (n - 1)


def versions_compare(
    *,
    project: Project,
    metric: str,
    subject: str,
    baseline: str,
    since: datetime,
    until: datetime,
    min_n: int,
    confidence: float = item_stats.DEFAULT_CONFIDENCE,
) -> Comparison:
    """The subject version against the baseline on ``metric`` over [since, until) (see the module doc)."""
    sign = 1.0 if metric in HIGHER_IS_WORSE else -1.0
    s = window_values(project=project, metric=metric, version=subject, since=since, until=until)
    b = window_values(project=project, metric=metric, version=baseline, since=since, until=until)
    shared = sorted(set(s.by_request) & set(b.by_request))
    z = item_stats.z_for(confidence)
    base: dict[str, Any] = {
        "metric": metric,
        "n_subject": s.n,
        "n_baseline": b.n,
        "shared": len(shared),
        "mean_subject": s.mean,
        "mean_baseline": b.mean,
        "confidence": confidence,
    }
    minimum = max(2, min_n)
    if len(shared) >= minimum:
        diffs = [sign * (s.by_request[h] - b.by_request[h]) for h in shared]
        mean = math.fsum(diffs) / len(diffs)
        half = z * math.sqrt(_variance(diffs) / len(diffs))
        return Comparison(
            method="paired",
            worse_by=mean,
            low=mean - half,
            high=mean + half,
            detail=f"paired on {len(shared)} shared requests (n = {s.n} items of v{subject}, {b.n} of v{baseline})",
            **base,
        )
    if s.n < minimum or b.n < minimum or s.mean is None or b.mean is None:
        return Comparison(
            method="",
            worse_by=None,
            low=None,
            high=None,
            detail=(
                f"cannot be computed (n too small): {s.n} items of v{subject} and {b.n} of v{baseline} "
                f"in the window, {len(shared)} shared requests; at least {minimum} per side needed"
            ),
            **base,
        )
    diff = sign * (s.mean - b.mean)
    half = z * math.sqrt(_variance(s.values) / s.n + _variance(b.values) / b.n)
    return Comparison(
        method="two-sample",
        worse_by=diff,
        low=diff - half,
        high=diff + half,
        detail=(
            f"two samples over items (n = {s.n} of v{subject}, {b.n} of v{baseline}; "
            f"only {len(shared)} shared requests)"
        ),
        **base,
    )
