"""Promotion gates: the evidence checklist a model version must pass before it is promoted.

Contract used by ``pipelines.releases.promotion`` (requests and approvals re-evaluate it every time):
``gates_evaluate(model_version=..., environment=...)`` returns a :class:`GateReport` whose
``passed`` is true only when every enabled gate of the project (and of that environment) passes.

Kinds and their ``params`` (validated by :func:`gate_params_validate`; errors name ``params.<name>``):

- ``suite_metric`` ``{suite_id, metric, statistic="mean"|"pass_rate", op=">="|"<=", threshold,
  max_age_days=None}``: the newest *succeeded* run of that suite for the version (see
  ``pipelines.releases.evidence.runs_for_version``) must have ``metrics[metric][statistic] op threshold``,
  and be at most ``max_age_days`` old when given.
- ``min_items`` ``{count}``: at least that many *done* items of the version: items with a
  curated label or a complete set of current reviews (``Project.reviews_per_item``). The old
  name ``min_reviews`` (which counted reviews) is still read, in stored gates and API input,
  as ``min_items`` (deprecated; migration 0005 renamed stored gates).
- ``min_pass_rate`` ``{question="", threshold, confidence=0.95}``: the **lower bound** of the
  human pass rate over items (``reviewapp.item_stats``: each item its curated answer,
  else its reviews' mean; a Wilson interval over items, or a bootstrap over items when split
  votes give fractional values) on that pass/fail question (default: the schema's first) must be
  at least ``threshold`` — not the raw rate, so 3/3 does not pass a 0.8 gate.
- ``not_worse_than_champion`` ``{metric, suite_id (for a suite metric), statistic="mean",
  question="", margin=0, confidence=0.95, min_shared_items=20}``: passes when there is no
  champion (or the version is the champion); otherwise compares like with like, on the items
  both sides share: ``metric="human_pass_rate"`` pairs the two versions' items by request
  (normalised request text) and uses each request's per-item value; a suite metric pairs the
  rows of the two versions' newest succeeded runs of the suite (by item, else by request, as
  the compare page). The lower end of the two-sided ``confidence`` paired bootstrap interval
  (shared items resampled, seeded) of *candidate − champion* must be at least ``-margin``.
  Fewer than ``min_shared_items`` shared items fails, saying how many are shared.

The champion is ``pipelines.releases.evidence.champion_for(project=..., environment=environment)``.
"""

# ruff: noqa: RUF002 - text for people: en dashes and minus signs are intended

from pipelines.releases.gates.checklist import (
    GateLine,
    GateReport,
    figures_display,
    gates_evaluate,
    gates_evaluate_all,
    gates_for,
)
from pipelines.releases.gates.params import (
    DEFAULT_CONFIDENCE,
    DEFAULT_MIN_SHARED_ITEMS,
    HUMAN_PASS_RATE,
    LEGACY_KINDS,
    OPS,
    STATISTICS,
    Kind,
    gate_create,
    gate_delete,
    gate_params_validate,
    gate_title,
    gate_update,
    kind_normalise,
)

__all__ = [
    "DEFAULT_CONFIDENCE",
    "DEFAULT_MIN_SHARED_ITEMS",
    "HUMAN_PASS_RATE",
    "LEGACY_KINDS",
    "OPS",
    "STATISTICS",
    "GateLine",
    "GateReport",
    "Kind",
    "figures_display",
    "gate_create",
    "gate_delete",
    "gate_params_validate",
    "gate_title",
    "gate_update",
    "gates_evaluate",
    "gates_evaluate_all",
    "gates_for",
    "kind_normalise",
]
