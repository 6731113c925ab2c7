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

# ruff: noqa: RUF001, RUF002, RUF003 - text for people: en dashes and minus signs are intended

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, field
from statistics import NormalDist
from typing import Any

from django.db.models import Q
from django.urls import reverse

from evaluations.models import Run, RunResult
from evaluations.selectors import run_metrics
from evaluations.services.alignment import alignment_compute
from pipelines.models import Environment, ModelVersion
from reviewapp.models import Preference, Project, Question, Review

CHAMPION_ALIAS = "champion"
MAX_RUNS = 20  # runs listed per version (newest first); gates look up the runs they need themselves


# --- statistics -------------------------------------------------------------------------------


def z_for(confidence: float) -> float:
    """The two-sided normal quantile: 1.96 for 0.95."""
    return NormalDist().inv_cdf((1 + confidence) / 2)


def wilson_interval(successes: int, n: int, *, confidence: float = 0.95) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion (None when n is 0)."""
    if n <= 0:
        return None
    z = z_for(confidence)
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


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


# --- the champion -----------------------------------------------------------------------------


def champion_for(*, project: Project, environment: Environment | None = None) -> ModelVersion | None:
    """The version a candidate is measured against.

    With ``environment``: the version serving at 100% there, if any. Otherwise (or when that
    environment serves nothing yet): the ``current_version`` of the project's environment whose
    alias is ``champion``; failing that, the synced, not deleted version carrying the registry
    alias ``champion``. None when the project has no champion yet.
    """
    if environment is not None and environment.current_version_id:
        return ModelVersion.objects.filter(pk=environment.current_version_id).first()
    env = (
        Environment.objects.filter(project=project, alias=CHAMPION_ALIAS, current_version__isnull=False)
        .select_related("current_version")
        .order_by("id")
        .first()
    )
    if env is not None:
        return env.current_version
    # Filtered here rather than with aliases__contains: SQLite (the demo) has no JSON containment.
    versions = ModelVersion.objects.filter(project=project).exclude(status="DELETED").order_by("-id")
    if project.mlflow_registered_model:
        versions = versions.filter(registered_model=project.mlflow_registered_model)
    for version in versions.only("id", "aliases", "version", "registered_model", "project_id"):
        if CHAMPION_ALIAS in (version.aliases or []):
            return ModelVersion.objects.get(pk=version.pk)
    return None


# --- runs -------------------------------------------------------------------------------------


def _run_is_for(run: Run, version: ModelVersion) -> bool:
    target = run.target or {}
    kind = target.get("kind", "stored")
    if kind == "mlflow_model":
        return str(target.get("model_uri", "")).rstrip("/") == version.uri
    if kind == "stored":
        return str((run.dataset or {}).get("model_version", "")) == version.version
    return False


def runs_for_version(*, version: ModelVersion, suite_id: int | None = None) -> list[Run]:
    """The project's evaluation runs of this version, newest first (see the module doc)."""
    runs = (
        Run.objects.filter(project_id=version.project_id)
        .filter(Q(dataset__model_version=version.version) | Q(target__model_uri=version.uri))
        .select_related("suite_version__suite")
        .order_by("-id")
    )
    if suite_id is not None:
        runs = runs.filter(suite_version__suite_id=suite_id)
    return [run for run in runs if _run_is_for(run, version)]


def latest_suite_run(*, version: ModelVersion, suite_id: int) -> Run | None:
    """The newest succeeded run of the suite (any of its versions) for this version."""
    for run in runs_for_version(version=version, suite_id=suite_id):
        if run.status == Run.Status.SUCCEEDED:
            return run
    return None


def run_scores(*, run: Run, scorer: str, statistic: str) -> list[float]:
    """Per-row values of one scorer in a run: numbers for ``mean``, 0/1 verdicts for ``pass_rate``."""
    results = RunResult.objects.filter(run=run, scorer=scorer, error="")
    if statistic == "pass_rate":
        return [1.0 if p else 0.0 for p in results.filter(passed__isnull=False).values_list("passed", flat=True)]
    return [float(n) for n in results.filter(number__isnull=False).values_list("number", flat=True)]


@dataclass
class RunEvidence:
    id: int
    suite_id: int
    suite_name: str
    suite_version: int
    status: str
    target: str
    created_at: str
    finished_at: str | None
    items: int
    metrics: dict[str, dict[str, Any]]
    alignment: dict[str, dict[str, Any]]
    url: str


def _run_evidence(run: Run, *, with_alignment: bool) -> RunEvidence:
    alignment = {}
    if with_alignment and run.status == Run.Status.SUCCEEDED:
        alignment = {name: a.as_dict() for name, a in alignment_compute(run=run).items()}
    return RunEvidence(
        id=run.pk,
        suite_id=run.suite_version.suite_id,
        suite_name=run.suite_version.suite.name,
        suite_version=run.suite_version.number,
        status=run.status,
        target=run.target_label,
        created_at=run.created_at.isoformat(),
        finished_at=run.finished_at.isoformat() if run.finished_at else None,
        items=run.items_total,
        metrics=run_metrics(run=run),
        alignment=alignment,
        url=reverse("evaluations-run", args=[run.pk]),
    )


# --- human reviews ----------------------------------------------------------------------------


@dataclass
class PassRate:
    question: str
    title: str
    passes: int
    n: int
    rate: float | None
    low: float | None  # Wilson 95%
    high: float | None


@dataclass
class RatingSummary:
    question: str
    title: str
    n: int
    mean: float | None
    median: float | None
    scale: str  # e.g. "1–5"


@dataclass
class HumanEvidence:
    reviews: int
    items: int  # items of the version with at least one current review
    primary_question: str  # key of the first pass/fail question ("" when the schema has none)
    pass_rates: dict[str, PassRate]
    ratings: list[RatingSummary]

    @property
    def primary(self) -> PassRate | None:
        return self.pass_rates.get(self.primary_question)


def primary_pass_question(*, project: Project) -> Question | None:
    return Question.objects.filter(project=project, kind=Question.Kind.PASS_FAIL).order_by("order", "id").first()


def human_evidence(*, project: Project, model_version: str) -> HumanEvidence:
    """Reviews of the project's items answered by ``model_version`` (two queries)."""
    questions = list(Question.objects.filter(project=project).order_by("order", "id"))
    pass_questions = [q for q in questions if q.kind == Question.Kind.PASS_FAIL]
    rating_questions = [q for q in questions if q.kind == Question.Kind.RATING]
    rows = Review.objects.filter(
        project=project, returned_at__isnull=True, item__model_version=model_version
    ).values_list("item_id", "answers")
    reviews = 0
    items: set[int] = set()
    passes = {q.key: [0, 0] for q in pass_questions}
    ratings: dict[str, list[float]] = {q.key: [] for q in rating_questions}
    for item_id, answers in rows.iterator(chunk_size=5000):
        reviews += 1
        items.add(item_id)
        answers = answers or {}
        for key, counts in passes.items():
            value = answers.get(key)
            if isinstance(value, bool):
                counts[0] += int(value)
                counts[1] += 1
        for key, values in ratings.items():
            value = answers.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                values.append(float(value))
    pass_rates = {}
    for q in pass_questions:
        x, n = passes[q.key]
        ci = wilson_interval(x, n)
        pass_rates[q.key] = PassRate(
            question=q.key,
            title=q.title,
            passes=x,
            n=n,
            rate=x / n if n else None,
            low=ci[0] if ci else None,
            high=ci[1] if ci else None,
        )
    summaries = []
    for q in rating_questions:
        values = ratings[q.key]
        options = q.options or {}
        summaries.append(
            RatingSummary(
                question=q.key,
                title=q.title,
                n=len(values),
                mean=statistics.fmean(values) if values else None,
                median=float(statistics.median(values)) if values else None,
                scale=f"{options.get('min', '')}–{options.get('max', '')}",
            )
        )
    return HumanEvidence(
        reviews=reviews,
        items=len(items),
        primary_question=pass_questions[0].key if pass_questions else "",
        pass_rates=pass_rates,
        ratings=summaries,
    )


# --- pairwise ---------------------------------------------------------------------------------


@dataclass
class PairwiseEvidence:
    against: str  # the champion's version
    wins: int
    losses: int
    ties: int
    both_bad: int
    n: int  # decisive judgements
    win_rate: float | None
    low: float | None  # Wilson 95%
    high: float | None


def pairwise_evidence(*, project: Project, version: str, against: str) -> PairwiseEvidence:
    """Preferences between two versions, by the recorded (true) winner and loser versions."""
    both = Q(left_model_version=version, right_model_version=against) | Q(
        left_model_version=against, right_model_version=version
    )
    prefs = Preference.objects.filter(project=project).filter(both)
    wins = losses = ties = both_bad = 0
    for outcome, winner, loser in prefs.values_list("outcome", "winner_model_version", "loser_model_version"):
        if outcome == Preference.Outcome.WIN and (winner, loser) == (version, against):
            wins += 1
        elif outcome == Preference.Outcome.WIN and (winner, loser) == (against, version):
            losses += 1
        elif outcome == Preference.Outcome.TIE:
            ties += 1
        elif outcome == Preference.Outcome.BOTH_BAD:
            both_bad += 1
    n = wins + losses
    ci = wilson_interval(wins, n)
    return PairwiseEvidence(
        against=against,
        wins=wins,
        losses=losses,
        ties=ties,
        both_bad=both_bad,
        n=n,
        win_rate=wins / n if n else None,
        low=ci[0] if ci else None,
        high=ci[1] if ci else None,
    )


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


# --- a short summary per version, for lists ---------------------------------------------------


@dataclass
class VersionSummary:
    reviews: int = 0
    pass_rate: float | None = None
    pass_low: float | None = None
    pass_high: float | None = None
    passes: int = 0
    judged: int = 0
    runs: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def versions_summary(*, project: Project, versions: list[ModelVersion]) -> dict[int, VersionSummary]:
    """Per ModelVersion id: reviews, primary pass rate with its interval, runs — in three queries."""
    by_number = {v.version: v for v in versions}
    out = {v.pk: VersionSummary() for v in versions}
    if not versions:
        return out
    primary = primary_pass_question(project=project)
    rows = Review.objects.filter(
        project=project, returned_at__isnull=True, item__model_version__in=list(by_number)
    ).values_list("item__model_version", "answers")
    for number, answers in rows.iterator(chunk_size=5000):
        summary = out[by_number[number].pk]
        summary.reviews += 1
        value = (answers or {}).get(primary.key) if primary else None
        if isinstance(value, bool):
            summary.judged += 1
            summary.passes += int(value)
    for summary in out.values():
        ci = wilson_interval(summary.passes, summary.judged)
        if ci:
            summary.pass_rate = summary.passes / summary.judged
            summary.pass_low, summary.pass_high = ci
    uris = {v.uri: v for v in versions}
    runs = Run.objects.filter(project=project).filter(
        Q(dataset__model_version__in=list(by_number)) | Q(target__model_uri__in=list(uris))
    )
    for run in runs.only("id", "dataset", "target"):
        target = run.target or {}
        if target.get("kind", "stored") == "mlflow_model":
            match = uris.get(str(target.get("model_uri", "")))
        elif target.get("kind", "stored") == "stored":
            match = by_number.get(str((run.dataset or {}).get("model_version", "")))
        else:
            match = None
        if match is not None:
            out[match.pk].runs += 1
    return out
