"""Promotion gates: the evidence checklist a model version must pass before it is promoted.

Contract used by ``pipelines.promotion`` (requests and approvals re-evaluate it every time):
``gates_evaluate(model_version=..., environment=...)`` returns a :class:`GateReport` whose
``passed`` is true only when every enabled gate of the project (and of that environment) passes.

Kinds and their ``params`` (validated by :func:`gate_params_validate`; errors name ``params.<name>``):

- ``suite_metric`` ``{suite_id, metric, statistic="mean"|"pass_rate", op=">="|"<=", threshold,
  max_age_days=None}``: the newest *succeeded* run of that suite for the version (see
  ``pipelines.evidence.runs_for_version``) must have ``metrics[metric][statistic] op threshold``,
  and be at most ``max_age_days`` old when given.
- ``min_reviews`` ``{count}``: at least that many current human reviews of the version's items.
- ``min_pass_rate`` ``{question="", threshold, confidence=0.95}``: the **Wilson lower bound** of
  the human pass rate on that pass/fail question (default: the schema's first) must be at least
  ``threshold`` — not the raw rate, so 3/3 does not pass a 0.8 gate.
- ``not_worse_than_champion`` ``{metric, suite_id (for a suite metric), statistic="mean",
  question="", margin=0, confidence=0.95}``: passes when there is no champion (or the version is
  the champion); otherwise the lower end of the two-sided ``confidence`` interval of
  *candidate − champion* must be at least ``-margin``. ``metric="human_pass_rate"`` compares the
  two versions' human pass rates with Newcombe's hybrid score interval (method 10) for a
  difference of independent proportions; a suite metric compares the two versions' newest
  succeeded runs of the suite: for ``pass_rate`` the same Newcombe interval over the verdicts, for
  ``mean`` a normal interval with Welch's standard error over the per-row scores (runs of two
  versions usually cover different items, so the rows are not paired).

The champion is ``pipelines.evidence.champion_for(project=..., environment=environment)``.
"""

# ruff: noqa: RUF002 - text for people: en dashes and minus signs are intended

from pipelines.gates.checklist import (
    GateLine,
    GateReport,
    figures_display,
    gates_evaluate,
    gates_evaluate_all,
    gates_for,
)
from pipelines.gates.params import (
    ALLOWED,
    DEFAULT_CONFIDENCE,
    HUMAN_PASS_RATE,
    OPS,
    STATISTICS,
    Kind,
    gate_create,
    gate_delete,
    gate_params_validate,
    gate_title,
    gate_update,
)

__all__ = [
    "ALLOWED",
    "DEFAULT_CONFIDENCE",
    "HUMAN_PASS_RATE",
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
]
