"""Comparing two runs (say champion A and candidate B) scorer by scorer.

Rows are paired by item when the runs share items (the same dataset scored twice, or two
generation targets over one dataset); otherwise by request (``reviewapp.services.pairwise.
request_key``), so stored responses of two model versions pair up question by question.

For each scorer: the mean value and pass rate of each run over all its rows; over the paired
rows, the difference B - A of the means and of the pass rates with a paired bootstrap 95%
interval (resampling pairs, percentile method); and the pairs whose verdict changed — "fixed"
(fail → pass) or "regressed" (pass → fail).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evaluations.models import Run, RunResult
from evaluations.selectors import run_metrics
from reviewapp.models import Item
from reviewapp.services.pairwise import request_key

BOOTSTRAP_SAMPLES = 1000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class VerdictChange:
    item_a: int
    item_b: int
    external_id: str
    request: str
    value_a: Any
    value_b: Any
    passed_a: bool
    passed_b: bool

    @property
    def direction(self) -> str:
        return "fixed" if self.passed_b else "regressed"


@dataclass(frozen=True)
class ScorerComparison:
    scorer: str
    mean_a: float | None
    mean_b: float | None
    pass_rate_a: float | None
    pass_rate_b: float | None
    n_a: int
    n_b: int
    n_paired: int  # pairs with a numeric value in both runs
    mean_diff: float | None
    mean_ci: tuple[float, float] | None
    n_paired_verdicts: int  # pairs with a verdict in both runs
    pass_rate_diff: float | None
    pass_rate_ci: tuple[float, float] | None
    fixed: int
    regressed: int
    changes: list[VerdictChange] = field(default_factory=list)


@dataclass(frozen=True)
class Comparison:
    a: Run
    b: Run
    paired_by: str  # "item" or "request"
    n_pairs: int
    scorers: list[ScorerComparison]


def paired_bootstrap(
    diffs: np.ndarray, *, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0
) -> tuple[float, float] | None:
    """Percentile interval of the mean of ``diffs`` over resampled pairs."""
    n = len(diffs)
    if n < 2:
        return None
    rng = np.random.default_rng(seed)
    means = np.empty(samples)
    step = max(1, 2_000_000 // n)  # bound memory: at most ~2M indices at a time
    for start in range(0, samples, step):
        count = min(step, samples - start)
        idx = rng.integers(0, n, size=(count, n), dtype=np.int32)
        means[start : start + count] = diffs[idx].mean(axis=1)
    tail = (1 - CONFIDENCE) / 2 * 100
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


def _results(run: Run) -> dict[str, dict[int, tuple[float | None, bool | None, Any]]]:
    out: dict[str, dict[int, tuple[float | None, bool | None, Any]]] = {}
    rows = RunResult.objects.filter(run=run, error="").values_list("scorer", "item_id", "number", "passed", "value")
    for scorer, item_id, number, passed, value in rows.iterator(chunk_size=10_000):
        out.setdefault(scorer, {})[item_id] = (number, passed, value)
    return out


def _pairs(a: Run, b: Run) -> tuple[str, list[tuple[int, int]]]:
    ids_a = set(RunResult.objects.filter(run=a).values_list("item_id", flat=True).distinct())
    ids_b = set(RunResult.objects.filter(run=b).values_list("item_id", flat=True).distinct())
    common = sorted(ids_a & ids_b)
    if common:
        return "item", [(pk, pk) for pk in common]
    keys_a: dict[str, int] = {}
    for pk, request in Item.objects.filter(pk__in=ids_a).order_by("id").values_list("id", "request"):
        keys_a.setdefault(request_key(request), pk)
    pairs: list[tuple[int, int]] = []
    used: set[str] = set()
    for pk, request in Item.objects.filter(pk__in=ids_b).order_by("id").values_list("id", "request"):
        key = request_key(request)
        if key in keys_a and key not in used:
            used.add(key)
            pairs.append((keys_a[key], pk))
    return "request", pairs


def runs_compare(*, a: Run, b: Run, max_changes: int = 200, seed: int = 0) -> Comparison:
    """Every scorer of either run, A against B (see the module doc)."""
    paired_by, pairs = _pairs(a, b)
    results_a, results_b = _results(a), _results(b)
    metrics_a, metrics_b = run_metrics(run=a), run_metrics(run=b)
    names = list(dict.fromkeys([*a.suite_version.scorer_names, *b.suite_version.scorer_names]))
    raw: dict[str, tuple[np.ndarray, np.ndarray, list[tuple[int, int, Any, Any, bool]]]] = {}
    for name in names:
        ra, rb = results_a.get(name, {}), results_b.get(name, {})
        numbers: list[float] = []
        verdicts: list[float] = []
        changes: list[tuple[int, int, Any, Any, bool]] = []
        for id_a, id_b in pairs:
            if id_a not in ra or id_b not in rb:
                continue
            (num_a, pass_a, val_a), (num_b, pass_b, val_b) = ra[id_a], rb[id_b]
            if num_a is not None and num_b is not None:
                numbers.append(num_b - num_a)
            if pass_a is not None and pass_b is not None:
                verdicts.append(float(pass_b) - float(pass_a))
                if pass_a != pass_b:
                    changes.append((id_a, id_b, val_a, val_b, bool(pass_b)))
        raw[name] = (np.asarray(numbers, dtype=np.float64), np.asarray(verdicts, dtype=np.float64), changes)
    shown = {pk for _, _, changes in raw.values() for c in changes[:max_changes] for pk in c[:2]}
    items = {i.pk: i for i in Item.objects.filter(pk__in=shown).only("id", "external_id", "request")}
    scorers: list[ScorerComparison] = []
    for name, (diffs, verdict_diffs, changes) in raw.items():
        ma, mb = metrics_a.get(name, {}), metrics_b.get(name, {})
        scorers.append(
            ScorerComparison(
                scorer=name,
                mean_a=ma.get("mean"),
                mean_b=mb.get("mean"),
                pass_rate_a=ma.get("pass_rate"),
                pass_rate_b=mb.get("pass_rate"),
                n_a=len(results_a.get(name, {})),
                n_b=len(results_b.get(name, {})),
                n_paired=len(diffs),
                mean_diff=float(diffs.mean()) if len(diffs) else None,
                mean_ci=paired_bootstrap(diffs, seed=seed),
                n_paired_verdicts=len(verdict_diffs),
                pass_rate_diff=float(verdict_diffs.mean()) if len(verdict_diffs) else None,
                pass_rate_ci=paired_bootstrap(verdict_diffs, seed=seed),
                fixed=sum(1 for c in changes if c[4]),
                regressed=sum(1 for c in changes if not c[4]),
                changes=[
                    VerdictChange(
                        item_a=id_a,
                        item_b=id_b,
                        external_id=items[id_b].external_id if id_b in items else "",
                        request=items[id_b].request_text[:300] if id_b in items else "",
                        value_a=val_a,
                        value_b=val_b,
                        passed_a=not passed_b,
                        passed_b=passed_b,
                    )
                    for id_a, id_b, val_a, val_b, passed_b in changes[:max_changes]
                ],
            )
        )
    return Comparison(a=a, b=b, paired_by=paired_by, n_pairs=len(pairs), scorers=scorers)
