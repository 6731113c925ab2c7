"""A version's evidence, and the candidate's beside the champion's: one computation for page and API."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from evaluations.models import Run
from pipelines.evidence.champion import champion_for
from pipelines.evidence.reviews import HumanEvidence, PairwiseEvidence, human_evidence, pairwise_evidence
from pipelines.evidence.runs import RunEvidence, _run_evidence, runs_for_version
from pipelines.models import Environment, ModelVersion

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
        out = asdict(self)
        primary = self.human.primary
        out["human"]["primary"] = asdict(primary) if primary else None
        return out


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


@dataclass
class EvidenceComparison:
    candidate: VersionEvidence
    champion: VersionEvidence | None
    champion_version: ModelVersion | None
    is_champion: bool  # the candidate is the champion itself

    def suite_rows(self) -> list[SuiteRow]:
        mine = self.candidate.latest_by_suite()
        theirs = self.champion.latest_by_suite() if self.champion else {}
        rows = []
        for suite_id in list(dict.fromkeys([*mine, *theirs])):
            a, b = mine.get(suite_id), theirs.get(suite_id)
            names = list(dict.fromkeys([*(a.metrics if a else {}), *(b.metrics if b else {})]))
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
                    )
                )
        return rows

    def as_dict(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate.as_dict(),
            "champion": self.champion.as_dict() if self.champion else None,
            "champion_version": self.champion_version.version if self.champion_version else None,
            "is_champion": self.is_champion,
        }


def evidence_compare(*, model_version: ModelVersion, environment: Environment | None = None) -> EvidenceComparison:
    """The version's evidence and the champion's (``champion_for``), computed once for page and API."""
    champion = champion_for(project=model_version.project, environment=environment)
    candidate = version_evidence(model_version=model_version, champion=champion)
    is_champion = champion is not None and champion.pk == model_version.pk
    champion_evidence = None
    if champion is not None and not is_champion:
        champion_evidence = version_evidence(model_version=champion)
    return EvidenceComparison(
        candidate=candidate, champion=champion_evidence, champion_version=champion, is_champion=is_champion
    )
