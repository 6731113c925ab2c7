"""A version's evidence, and the candidate's beside the champion's: one computation for page and API."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from evaluations.models import Run
from evaluations.services.compare import runs_compare
from pipelines.models import Environment, ModelVersion
from pipelines.releases.evidence.champion import champion_for
from pipelines.releases.evidence.reviews import (
    HumanEvidence,
    HumanPaired,
    PairwiseEvidence,
    human_evidence,
    humans_paired,
    pairwise_evidence,
)
from pipelines.releases.evidence.runs import RunEvidence, _run_evidence, runs_for_version

MAX_RUNS = 20  # runs listed per version (newest first); gates look up the runs they need themselves
# --- one version, and a version beside the champion -------------------------------------------


@dataclass
class VersionEvidence:
    version: str
    model_version_id: int
    human: HumanEvidence
    runs: list[RunEvidence]
    runs_total: int
    pairwise: PairwiseEvidence | None = None  # against the champion (None for the champion itself)

    def latest_by_suite(self) -> dict[int, RunEvidence]:
        """The newest succeeded run of each suite (runs are newest first)."""
        out: dict[int, RunEvidence] = {}
        for run in self.runs:
            if run.status == Run.Status.SUCCEEDED:
                out.setdefault(run.suite_id, run)
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "model_version_id": self.model_version_id,
            "human": self.human.as_dict(),
            "runs": [asdict(run) for run in self.runs],
            "runs_total": self.runs_total,
            "pairwise": asdict(self.pairwise) if self.pairwise else None,
        }


def version_evidence(*, model_version: ModelVersion, champion: ModelVersion | None = None) -> VersionEvidence:
    runs = runs_for_version(version=model_version)
    seen_suites: set[int] = set()
    listed = []
    for run in runs[:MAX_RUNS]:
        # Alignment for the newest succeeded run of each suite: what the page and gates look at.
        first_of_suite = run.status == Run.Status.SUCCEEDED and run.suite_version.suite_id not in seen_suites
        if first_of_suite:
            seen_suites.add(run.suite_version.suite_id)
        listed.append(_run_evidence(run, with_alignment=first_of_suite))
    pairwise = None
    if champion is not None and champion.pk != model_version.pk:
        pairwise = pairwise_evidence(
            project=model_version.project, version=model_version.version, against=champion.version
        )
    return VersionEvidence(
        version=model_version.version,
        model_version_id=model_version.pk,
        human=human_evidence(project=model_version.project, model_version=model_version.version),
        runs=listed,
        runs_total=len(runs),
        pairwise=pairwise,
    )


@dataclass
class SuiteRow:
    """One scorer of one suite: the candidate's newest succeeded run beside the champion's."""

    suite_id: int
    suite_name: str
    scorer: str
    candidate_run: RunEvidence | None
    champion_run: RunEvidence | None
    candidate: dict[str, Any] = field(default_factory=dict)  # the run's metrics of this scorer
    champion: dict[str, Any] = field(default_factory=dict)
    alignment: dict[str, Any] = field(default_factory=dict)  # of the candidate's run
    # Both runs on the items they share (``evaluations.services.compare.runs_compare``, A = champion):
    # shared, only_champion, only_candidate, paired means, delta B - A with its paired bootstrap interval.
    paired: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvidenceComparison:
    candidate: VersionEvidence
    champion: VersionEvidence | None
    champion_version: ModelVersion | None
    is_champion: bool  # the candidate is the champion itself

    human_paired: list[HumanPaired] = field(default_factory=list)  # against the champion, on shared requests
    _rows: list[SuiteRow] | None = field(default=None, init=False, repr=False)

    def suite_rows(self) -> list[SuiteRow]:
        if self._rows is None:
            self._rows = self._suite_rows()
        return self._rows

    def _suite_rows(self) -> list[SuiteRow]:
        mine = self.candidate.latest_by_suite()
        theirs = self.champion.latest_by_suite() if self.champion else {}
        rows = []
        for suite_id in list(dict.fromkeys([*mine, *theirs])):
            a, b = mine.get(suite_id), theirs.get(suite_id)
            names = list(dict.fromkeys([*(a.metrics if a else {}), *(b.metrics if b else {})]))
            paired = _suite_paired(champion_run=b.id, candidate_run=a.id) if a and b else {}
            for name in names:
                rows.append(
                    SuiteRow(
                        suite_id=suite_id,
                        suite_name=(a or b).suite_name,  # type: ignore[union-attr]
                        scorer=name,
                        candidate_run=a,
                        champion_run=b,
                        candidate=(a.metrics.get(name) or {}) if a else {},
                        champion=(b.metrics.get(name) or {}) if b else {},
                        alignment=(a.alignment.get(name) or {}) if a else {},
                        paired=paired.get(name, {}),
                    )
                )
        return rows

    def as_dict(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate.as_dict(),
            "champion": self.champion.as_dict() if self.champion else None,
            "champion_version": self.champion_version.version if self.champion_version else None,
            "is_champion": self.is_champion,
            "human_paired": [p.as_dict() for p in self.human_paired],
            "suites_paired": [
                {"suite_id": row.suite_id, "scorer": row.scorer, **row.paired}
                for row in self.suite_rows()
                if row.paired
            ],
        }


def _suite_paired(*, champion_run: int, candidate_run: int) -> dict[str, dict[str, Any]]:
    """Per scorer: the champion's run (A) and the candidate's (B) on the items they share."""
    runs = {r.pk: r for r in Run.objects.filter(pk__in=[champion_run, candidate_run]).select_related("suite_version")}
    comparison = runs_compare(a=runs[champion_run], b=runs[candidate_run], max_changes=0)
    out = {}
    for s in comparison.scorers:
        out[s.scorer] = {
            "shared": comparison.n_pairs,
            "only_champion": comparison.only_a,
            "only_candidate": comparison.only_b,
            "paired_by": comparison.paired_by,
            "summary": comparison.summary.replace("only in A", "only in the champion's run").replace(
                "only in B", "only in this version's run"
            ),
            "n_paired": s.n_paired,
            "mean_champion": s.mean_a,
            "mean_candidate": s.mean_b,
            "mean_delta": s.mean_diff,
            "mean_ci": list(s.mean_ci) if s.mean_ci else None,
            "n_paired_verdicts": s.n_paired_verdicts,
            "pass_rate_champion": s.pass_rate_a,
            "pass_rate_candidate": s.pass_rate_b,
            "pass_rate_delta": s.pass_rate_diff,
            "pass_rate_ci": list(s.pass_rate_ci) if s.pass_rate_ci else None,
        }
    return out


def evidence_compare(*, model_version: ModelVersion, environment: Environment | None = None) -> EvidenceComparison:
    """The version's evidence and the champion's (``champion_for``), computed once for page and API."""
    champion = champion_for(project=model_version.project, environment=environment)
    candidate = version_evidence(model_version=model_version, champion=champion)
    is_champion = champion is not None and champion.pk == model_version.pk
    champion_evidence = None
    paired: list[HumanPaired] = []
    if champion is not None and not is_champion:
        champion_evidence = version_evidence(model_version=champion)
        paired = humans_paired(
            project=model_version.project, candidate=candidate.human, champion=champion_evidence.human
        )
    return EvidenceComparison(
        candidate=candidate,
        champion=champion_evidence,
        champion_version=champion,
        is_champion=is_champion,
        human_paired=paired,
    )
