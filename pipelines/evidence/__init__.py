"""The evidence behind a model version, with the champion's figures beside it: one computation for pages and gates.

For a :class:`ModelVersion` of a project:

- **evaluation runs** of the project that evaluated that version: a run whose target is the
  version's model (``{"kind": "mlflow_model", "model_uri": "models:/<name>/<version>"}``), or a
  run over stored responses whose dataset filter is ``model_version == <version>``. Each comes
  with its suite metrics (``evaluations.selectors.run_metrics``) and, for succeeded runs, its
  judge–human alignment (``evaluations.services.alignment.alignment_compute``);
- **human reviews** of the project's items with ``Item.model_version == <version>`` (current
  reviews only, not ones a curator sent back): how many, the pass rate of each pass/fail
  question with a Wilson interval (the first pass/fail question of the schema is the primary
  one), and the mean and median of each rating question. Each review counts once, so an item
  reviewed twice counts twice (as on the project dashboard);
- **pairwise wins** against the champion: ``reviewapp`` Preference rows whose recorded (true)
  winner and loser versions are this version and the champion's, with a Wilson interval on the
  win rate over decisive judgements (ties and "both bad" are counted, not in the rate).

The **champion** (:func:`champion_for`) is the version serving at 100% in the project's
environment whose alias is ``champion``; when no environment serves one, the synced version
carrying the registry alias ``champion``.

Statistics used by the gates live here too: :func:`wilson_interval` (one proportion),
:func:`newcombe_difference` (difference of two independent proportions, Newcombe 1998 method 10,
the hybrid score interval built from the two Wilson intervals), and :func:`welch_difference`
(difference of two independent means, normal approximation with Welch's standard error).
"""

# ruff: noqa: RUF002 - text for people: en dashes and minus signs are intended

from pipelines.evidence.champion import CHAMPION_ALIAS, champion_for
from pipelines.evidence.comparison import (
    MAX_RUNS,
    EvidenceComparison,
    SuiteRow,
    VersionEvidence,
    evidence_compare,
    version_evidence,
)
from pipelines.evidence.intervals import newcombe_difference, welch_difference, wilson_interval, z_for
from pipelines.evidence.reviews import (
    HumanEvidence,
    PairwiseEvidence,
    PassRate,
    RatingSummary,
    human_evidence,
    pairwise_evidence,
    primary_pass_question,
)
from pipelines.evidence.runs import RunEvidence, latest_suite_run, run_scores, runs_for_version
from pipelines.evidence.summary import VersionSummary, versions_summary

__all__ = [
    "CHAMPION_ALIAS",
    "MAX_RUNS",
    "EvidenceComparison",
    "HumanEvidence",
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
    "latest_suite_run",
    "newcombe_difference",
    "pairwise_evidence",
    "primary_pass_question",
    "run_scores",
    "runs_for_version",
    "version_evidence",
    "versions_summary",
    "welch_difference",
    "wilson_interval",
    "z_for",
]
