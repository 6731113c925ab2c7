"""The evidence behind a model version, with the champion's figures beside it: one computation for pages and gates.

For a :class:`ModelVersion` of a project:

- **evaluation runs** of the project that evaluated that version: a run whose target is the
  version's model (``{"kind": "mlflow_model", "model_uri": "models:/<name>/<version>"}``), or a
  run over stored responses whose dataset filter is ``model_version == <version>``. Each comes
  with its suite metrics (``evaluations.selectors.run_metrics``) and, for succeeded runs, its
  judge–human alignment (``evaluations.services.alignment.alignment_compute``);
- **human figures** of the project's items with ``Item.model_version == <version>``, per item
  (``reviewapp.item_stats``): an item's value is its curated label's answer, else the
  mean of its current reviews' answers (reviews a curator sent back do not count). The pass rate
  of each pass/fail question (the schema's first is the primary one) is the mean over items with
  a Wilson interval over items (a bootstrap over items when split votes give fractional values),
  each rating question's mean and median over items with a bootstrap interval; every figure
  carries its n of items and the reviews behind them;
- **paired against the champion** (``human_paired``): the two versions' items pair up by
  request (the normalised request text); each side's mean over the shared requests, the
  difference and a paired bootstrap interval, with the shared count and what only one side has;
- **pairwise wins** against the champion: ``reviewapp`` Preference rows whose recorded (true)
  winner and loser versions are this version and the champion's, with a Wilson interval on the
  win rate over decisive judgements (ties and "both bad" are counted, not in the rate).

The **champion** (:func:`champion_for`) is the version serving at 100% in the project's
environment whose alias is ``champion``; when no environment serves one, the synced version
carrying the registry alias ``champion``.

Decisions compare like with like: the gate ``not_worse_than_champion`` uses the paired figures
(shared requests for human figures, shared items of the two newest suite runs for a suite
metric). Intervals come from ``reviewapp.item_stats``, the one place for them.
"""

# ruff: noqa: RUF002 - text for people: en dashes and minus signs are intended

from pipelines.releases.evidence.champion import CHAMPION_ALIAS, champion_for
from pipelines.releases.evidence.comparison import (
    MAX_RUNS,
    EvidenceComparison,
    SuiteRow,
    VersionEvidence,
    evidence_compare,
    version_evidence,
)
from pipelines.releases.evidence.reviews import (
    HumanEvidence,
    HumanPaired,
    PairwiseEvidence,
    PassRate,
    RatingSummary,
    human_evidence,
    human_paired,
    humans_paired,
    pairwise_evidence,
    primary_pass_question,
)
from pipelines.releases.evidence.runs import (
    RunEvidence,
    latest_suite_run,
    run_scores,
    run_scores_paired,
    runs_for_version,
)
from pipelines.releases.evidence.summary import VersionSummary, versions_summary

__all__ = [
    "CHAMPION_ALIAS",
    "MAX_RUNS",
    "EvidenceComparison",
    "HumanEvidence",
    "HumanPaired",
    "PairwiseEvidence",
    "PassRate",
    "RatingSummary",
    "RunEvidence",
    "SuiteRow",
    "VersionEvidence",
    "VersionSummary",
    "champion_for",
    "evidence_compare",
    "human_evidence",
    "human_paired",
    "humans_paired",
    "latest_suite_run",
    "pairwise_evidence",
    "primary_pass_question",
    "run_scores",
    "run_scores_paired",
    "runs_for_version",
    "version_evidence",
    "versions_summary",
]
