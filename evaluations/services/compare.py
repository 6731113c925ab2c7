"""Comparing two runs (say champion A and candidate B) scorer by scorer.

Rows are paired by item when the runs share items (the same dataset scored twice, or two
generation targets over one dataset); otherwise by request (``reviewapp.blind.
request_key``), so stored responses of two model versions pair up question by question.

Only the shared (paired) rows are compared: a row only one run scored says nothing about the
difference. For each scorer, over its paired rows: the mean of each run (paired means), the
difference B - A with a paired bootstrap 95% interval (resampling the shared items, percentile
method, seeded so the same runs give the same interval); the same for the pass rates over the
pairs with a verdict on both sides; and the pairs whose verdict changed — "fixed" (fail → pass)
or "regressed" (pass → fail). ``only_a`` / ``only_b`` say how many items only one run has, so
the page can say plainly "compared on 20 shared items; 5 only in A, 3 only in B".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evaluations.models import Run, RunResult
from reviewapp.blind import request_key
from reviewapp.item_stats import bootstrap_mean_interval
from reviewapp.models import Item

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
    mean_a: float | None  # over the paired rows only (like the difference beside it)
    mean_b: float | None
    pass_rate_a: float | None  # over the pairs with a verdict on both sides
    pass_rate_b: float | None
    n_a: int  # rows the scorer scored in each run (shared or not)
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
    n_pairs: int  # shared items
    scorers: list[ScorerComparison]
    only_a: int = 0  # items only run A scored (no partner in B)
    only_b: int = 0

    @property
    def summary(self) -> str:
        """E.g. "compared on 20 shared items; 5 only in A, 3 only in B"."""
        text = f"compared on {self.n_pairs} shared item{'s' * (self.n_pairs != 1)}"
        extra = [f"{n} only in {who}" for n, who in ((self.only_a, "A"), (self.only_b, "B")) if n]
        return text + ("; " + ", ".join(extra) if extra else "")


def paired_bootstrap(
    diffs: np.ndarray, *, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0, confidence: float = CONFIDENCE
) -> tuple[float, float] | None:
    """Percentile interval of the mean of ``diffs`` over resampled pairs (seeded)."""
    return bootstrap_mean_interval(diffs, confidence=confidence, samples=samples, seed=seed)


def _results(run: Run) -> dict[str, dict[int, tuple[float | None, bool | None, Any]]]:
    out: dict[str, dict[int, tuple[float | None, bool | None, Any]]] = {}
    rows = RunResult.objects.filter(run=run, error="").values_list("scorer", "item_id", "number", "passed", "value")
    for scorer, item_id, number, passed, value in rows.iterator(chunk_size=10_000):
        out.setdefault(scorer, {})[item_id] = (number, passed, value)
    return out


def run_pairs(a: Run, b: Run) -> tuple[str, list[tuple[int, int]], int, int]:
    """How the rows of two runs pair up: ``(paired_by, [(item of A, item of B)], only in A, only in B)``.

    By item when the runs share items; otherwise by request, so two model versions' stored
    responses pair up question by question (a request asked twice in one run pairs once).
    """
    ids_a = set(RunResult.objects.filter(run=a).values_list("item_id", flat=True).distinct())
    ids_b = set(RunResult.objects.filter(run=b).values_list("item_id", flat=True).distinct())
    common = sorted(ids_a & ids_b)
    if common:
        return "item", [(pk, pk) for pk in common], len(ids_a) - len(common), len(ids_b) - len(common)
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
    return "request", pairs, len(ids_a) - len(pairs), len(ids_b) - len(pairs)


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


@dataclass
class _Paired:
    numbers_a: list[float] = field(default_factory=list)
    numbers_b: list[float] = field(default_factory=list)
    verdicts_a: list[float] = field(default_factory=list)
    verdicts_b: list[float] = field(default_factory=list)
    changes: list[tuple[int, int, Any, Any, bool]] = field(default_factory=list)


def runs_compare(*, a: Run, b: Run, max_changes: int = 200, seed: int = 0) -> Comparison:
    """Every scorer of either run, A against B (see the module doc)."""
    paired_by, pairs, only_a, only_b = run_pairs(a, b)
    results_a, results_b = _results(a), _results(b)
    names = list(dict.fromkeys([*a.suite_version.scorer_names, *b.suite_version.scorer_names]))
    raw: dict[str, _Paired] = {}
    for name in names:
        ra, rb = results_a.get(name, {}), results_b.get(name, {})
        got = _Paired()
        for id_a, id_b in pairs:
            if id_a not in ra or id_b not in rb:
                continue
            (num_a, pass_a, val_a), (num_b, pass_b, val_b) = ra[id_a], rb[id_b]
            if num_a is not None and num_b is not None:
                got.numbers_a.append(num_a)
                got.numbers_b.append(num_b)
            if pass_a is not None and pass_b is not None:
                got.verdicts_a.append(float(pass_a))
                got.verdicts_b.append(float(pass_b))
                if pass_a != pass_b:
                    got.changes.append((id_a, id_b, val_a, val_b, bool(pass_b)))
        raw[name] = got
    shown = {pk for got in raw.values() for c in got.changes[:max_changes] for pk in c[:2]}
    items = {i.pk: i for i in Item.objects.filter(pk__in=shown).only("id", "external_id", "request")}
    scorers: list[ScorerComparison] = []
    for name, got in raw.items():
        diffs = np.asarray(got.numbers_b, dtype=np.float64) - np.asarray(got.numbers_a, dtype=np.float64)
        verdict_diffs = np.asarray(got.verdicts_b, dtype=np.float64) - np.asarray(got.verdicts_a, dtype=np.float64)
        changes = got.changes
        scorers.append(
            ScorerComparison(
                scorer=name,
                mean_a=_mean(got.numbers_a),
                mean_b=_mean(got.numbers_b),
                pass_rate_a=_mean(got.verdicts_a),
                pass_rate_b=_mean(got.verdicts_b),
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
    return Comparison(a=a, b=b, paired_by=paired_by, n_pairs=len(pairs), scorers=scorers, only_a=only_a, only_b=only_b)
