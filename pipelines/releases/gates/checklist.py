"""Evaluating promotion gates: the checklist report for a model version in an environment."""

# ruff: noqa: RUF001, RUF002 - text for people: en dashes and minus signs are intended

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from django.urls import reverse
from django.utils import timezone

from evaluations.selectors import run_metrics
from pipelines.models import Environment, ModelVersion, PromotionGate, Rollout
from pipelines.releases import evidence as ev
from pipelines.releases.gates.params import (
    DEFAULT_MIN_SHARED_ITEMS,
    HUMAN_PASS_RATE,
    UNSET,
    Kind,
    gate_params_validate,
    gate_title,
    kind_normalise,
    percent_text,
)
from pipelines.sources.production_compare import versions_compare
from reviewapp import item_stats
from reviewapp.errors import ValidationFailed
from reviewapp.models import Project


@dataclass
class GateLine:
    gate_id: int
    kind: str
    title: str  # e.g. "correctness mean >= 0.8 on suite 'Core' (latest run)"
    passed: bool
    figures: dict[str, Any] = field(default_factory=dict)  # the numbers behind the verdict
    detail: str = ""  # one sentence: why it passed or failed
    links: list[dict[str, str]] = field(default_factory=list)  # [{"label", "url"}] to the evidence


@dataclass
class GateReport:
    passed: bool
    lines: list[GateLine]

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "lines": [asdict(line) for line in self.lines]}


# --- evaluation -------------------------------------------------------------------------------


class _Context:
    """What several gates of one evaluation share, computed once."""

    def __init__(
        self,
        model_version: ModelVersion,
        environment: Environment | None,
        human: dict[str, ev.HumanEvidence] | None = None,
    ) -> None:
        self.model_version = model_version
        self.environment = environment
        # Human evidence does not depend on the environment: one cache serves every report of a page.
        self._human: dict[str, ev.HumanEvidence] = {} if human is None else human
        self._champion: Any = UNSET

    def human(self, version: ModelVersion) -> ev.HumanEvidence:
        if version.version not in self._human:
            self._human[version.version] = ev.human_evidence(project=version.project, model_version=version.version)
        return self._human[version.version]

    @property
    def champion(self) -> ModelVersion | None:
        if self._champion is UNSET:
            self._champion = ev.champion_for(project=self.model_version.project, environment=self.environment)
        return self._champion


def gates_for(*, project: Project, environment: Environment | None) -> list[PromotionGate]:
    """The enabled gates that apply to ``environment`` (None: only the project-wide ones)."""
    gates = PromotionGate.objects.filter(project=project, enabled=True)
    if environment is None:
        gates = gates.filter(environment__isnull=True)
    else:
        gates = gates.filter(environment__isnull=True) | gates.filter(environment=environment)
    return list(gates.order_by("id"))


def gates_evaluate(*, model_version: ModelVersion, environment: Environment | None) -> GateReport:
    """Evaluate every enabled gate of the version's project that applies to ``environment``.

    ``environment=None`` evaluates only the project-wide gates (a project without environments).
    A project with no gates passes (an empty checklist).
    """
    return _evaluate(model_version, environment, _Context(model_version, environment))


def _evaluate(model_version: ModelVersion, environment: Environment | None, ctx: _Context) -> GateReport:
    lines = [
        _gate_line(gate, model_version, environment, ctx)
        for gate in gates_for(project=model_version.project, environment=environment)
    ]
    return GateReport(passed=all(line.passed for line in lines), lines=lines)


def gates_evaluate_all(*, model_version: ModelVersion) -> list[tuple[Environment | None, GateReport]]:
    """One report per environment of the project (or one project-wide report when it has none)."""
    environments: list[Environment | None] = list(
        Environment.objects.filter(project_id=model_version.project_id).order_by("name")
    )
    human: dict[str, ev.HumanEvidence] = {}
    return [(env, _evaluate(model_version, env, _Context(model_version, env, human))) for env in environments or [None]]


def _gate_line(
    gate: PromotionGate, model_version: ModelVersion, environment: Environment | None, ctx: _Context | None = None
) -> GateLine:
    ctx = ctx or _Context(model_version, environment)
    kind = kind_normalise(gate.kind)  # a gate stored as "min_reviews" is read as "min_items"
    line = GateLine(gate_id=gate.pk, kind=kind, title=gate_title(gate), passed=False)
    try:
        params = gate_params_validate(project=model_version.project, kind=gate.kind, params=gate.params)
    except ValidationFailed as exc:
        # A gate made invalid later (its suite deleted, a question removed) fails rather than passing silently.
        line.detail = "This gate is no longer valid: " + "; ".join(f"{e['field']}: {e['message']}" for e in exc.errors)
        return line
    if kind == Kind.SUITE_METRIC:
        _suite_metric(line, params, model_version)
    elif kind == Kind.MIN_ITEMS:
        _min_items(line, params, model_version, ctx)
    elif kind == Kind.MIN_PASS_RATE:
        _min_pass_rate(line, params, model_version, ctx)
    elif kind == Kind.NOT_WORSE:
        _not_worse(line, params, model_version, ctx)
    elif kind == Kind.PRODUCTION_NOT_WORSE:
        _production_not_worse(line, params, model_version, environment)
    return line


def _run_link(run_id: int, label: str) -> dict[str, str]:
    return {"label": label, "url": reverse("evaluations-run", args=[run_id])}


def _dashboard_link(project: Project) -> dict[str, str]:
    return {"label": "Review dashboard", "url": reverse("project-dashboard", args=[project.slug])}


def _compare(value: float, op: str, threshold: float) -> bool:
    return value >= threshold if op == ">=" else value <= threshold


def _suite_metric(line: GateLine, p: dict[str, Any], version: ModelVersion) -> None:
    run = ev.latest_suite_run(version=version, suite_id=p["suite_id"])
    line.figures = {"threshold": p["threshold"], "op": p["op"], "statistic": p["statistic"], "metric": p["metric"]}
    line.links = [{"label": "Suite", "url": reverse("evaluations-suite", args=[version.project.slug, p["suite_id"]])}]
    if run is None:
        line.detail = f"No succeeded run of this suite has evaluated version {version.version}."
        return
    line.links.insert(0, _run_link(run.pk, f"Run #{run.pk}"))
    metrics = run_metrics(run=run).get(p["metric"], {})
    value = metrics.get(p["statistic"])
    n = metrics.get("n_judged" if p["statistic"] == "pass_rate" else "n_scored", 0)
    finished = run.finished_at or run.created_at
    age_days = (timezone.now() - finished) / dt.timedelta(days=1)
    line.figures.update(
        {"run_id": run.pk, "n": n, "value": value, "finished_at": finished.isoformat(), "age_days": round(age_days, 2)}
    )
    if value is None:
        line.detail = f"Run #{run.pk} has no {p['statistic']} for {p['metric']}."
        return
    if p.get("max_age_days") and age_days > p["max_age_days"]:
        line.detail = f"Run #{run.pk} is {age_days:.0f} days old; the gate wants one at most {p['max_age_days']} days."
        return
    line.passed = _compare(float(value), p["op"], float(p["threshold"]))
    verdict = "meets" if line.passed else "misses"
    line.detail = (
        f"Run #{run.pk}: {p['metric']} {p['statistic']} = {value:.3f} (n={n}) {verdict} {p['op']} {p['threshold']}."
    )


def _min_items(line: GateLine, p: dict[str, Any], version: ModelVersion, ctx: _Context) -> None:
    human = ctx.human(version)
    done, reviews = human.items_complete, human.reviews_complete
    line.figures = {
        "n": done,
        "value": done,
        "threshold": p["count"],
        "items": done,
        "reviews": reviews,
        "items_reviewed": human.items,
        "reviews_total": human.reviews,
    }
    line.links = [_dashboard_link(version.project)]
    line.passed = done >= p["count"]
    partial = human.items - done
    rest = f"; {partial} more item{'s' * (partial != 1)} still short of reviews" if partial else ""
    line.detail = (
        f"{reviews} reviews of {done} items of version {version.version} (curated, or with a complete set of "
        f"reviews){rest}; needs {p['count']} items."
    )


def _min_pass_rate(line: GateLine, p: dict[str, Any], version: ModelVersion, ctx: _Context) -> None:
    human = ctx.human(version)
    key = p["question"] or human.primary_question
    values = list(human.values.get(key, {}).values())
    rate = item_stats.items_rate(
        values, reviews=sum(human.review_counts.get(key, {}).values()), confidence=p["confidence"]
    )
    line.figures = {
        "question": key,
        "n": rate.items,
        "items": rate.items,
        "reviews": rate.reviews,
        "passes": rate.passes,
        "value": rate.value,
        "interval": [rate.low, rate.high] if rate.low is not None else None,
        "lower_bound": rate.low,
        "threshold": p["threshold"],
        "confidence": p["confidence"],
        "test": rate.interval or "Wilson score interval over items",
    }
    line.links = [_dashboard_link(version.project)]
    if not rate.items or rate.low is None or rate.value is None:
        line.detail = f"No item of version {version.version} has an answer to “{key}” yet."
        return
    line.passed = rate.low >= p["threshold"]
    passes = f"{rate.passes:g}" if rate.passes is not None else "–"
    line.detail = (
        f"{passes} of {rate.items} items passed ({rate.value:.1%}; {rate.reviews} reviews of {rate.items} items); "
        f"the {percent_text(p['confidence'])} interval ({rate.interval}) is {rate.low:.1%}–{rate.high:.1%}, "
        f"lower bound {'≥' if line.passed else '<'} {percent_text(float(p['threshold']))}."
    )


def _not_worse(line: GateLine, p: dict[str, Any], version: ModelVersion, ctx: _Context) -> None:
    champion = ctx.champion
    minimum = int(p.get("min_shared_items", DEFAULT_MIN_SHARED_ITEMS))
    line.figures = {
        "margin": p["margin"],
        "confidence": p["confidence"],
        "metric": p["metric"],
        "min_shared_items": minimum,
    }
    if champion is None:
        line.passed = True
        line.detail = "No champion yet: nothing to compare with."
        return
    line.figures["champion_version"] = champion.version
    if champion.pk == version.pk:
        line.passed = True
        line.detail = f"Version {version.version} is the champion."
        return
    champion_link = {
        "label": f"Champion v{champion.version}",
        "url": reverse("model-version-detail", args=[version.project.slug, champion.version]),
    }
    if p["metric"] == HUMAN_PASS_RATE:
        human = ctx.human(version)
        key = p.get("question", "") or human.primary_question
        paired = ev.human_paired(
            candidate=human, champion=ctx.human(champion), question=key, confidence=p["confidence"]
        )
        line.links = [_dashboard_link(version.project), champion_link]
        line.figures.update({"question": key, "reviews": paired.reviews_b, "champion_reviews": paired.reviews_a})
        what = "human pass rate"
        unit = "requests answered by both versions with a human verdict"
    else:
        run = ev.latest_suite_run(version=version, suite_id=p["suite_id"])
        champion_run = ev.latest_suite_run(version=champion, suite_id=p["suite_id"])
        line.links = [champion_link]
        if run:
            line.links.insert(0, _run_link(run.pk, f"Run #{run.pk} (this version)"))
        if champion_run:
            line.links.append(_run_link(champion_run.pk, f"Run #{champion_run.pk} (champion)"))
        if run and champion_run:
            url = reverse("evaluations-compare") + f"?a={champion_run.pk}&b={run.pk}"
            line.links.append({"label": "Compare runs", "url": url})
        if run is None or champion_run is None:
            who = "this version" if run is None else f"the champion (v{champion.version})"
            line.detail = f"No succeeded run of the suite for {who}: cannot compare."
            return
        a, b = ev.run_scores_paired(champion_run=champion_run, run=run, scorer=p["metric"], statistic=p["statistic"])
        paired = item_stats.paired_interval(a, b, confidence=p["confidence"])
        line.figures.update({"run_id": run.pk, "champion_run_id": champion_run.pk})
        what = f"{p['metric']} {p['statistic']}"
        unit = "items both runs scored"
    line.figures.update(
        {
            "n": paired.shared,
            "shared": paired.shared,
            "only_champion": paired.only_a,
            "only_candidate": paired.only_b,
            "value": paired.mean_b,
            "champion_value": paired.mean_a,
            "test": "Paired bootstrap over shared items (seeded), percentile interval of the mean difference",
        }
    )
    summary = paired.summary("the champion", "this version")
    if paired.shared < minimum:
        line.detail = (
            f"Only {paired.shared} shared {unit} ({summary}); the gate needs at least {minimum} to compare "
            f"{what} fairly."
        )
        return
    if paired.delta is None or paired.low is None or paired.high is None:
        line.detail = f"Not enough shared items to compare {what} ({summary})."
        return
    diff, low, high = paired.delta, paired.low, paired.high
    line.figures.update({"difference": diff, "interval": [low, high], "lower_bound": low, "threshold": -p["margin"]})
    line.passed = low >= -p["margin"]
    line.detail = (
        f"{what}, {summary}: champion {paired.mean_a:.3f}, this version {paired.mean_b:.3f}; "
        f"difference {diff:+.3f}, {percent_text(p['confidence'])} paired interval {low:+.3f} to {high:+.3f}; "
        f"lower bound {'≥' if line.passed else '<'} −{p['margin']}."
    )


def _production_not_worse(
    line: GateLine, p: dict[str, Any], version: ModelVersion, environment: Environment | None
) -> None:
    """The candidate's production figures during its canary against what served beside it (the champion),
    over the same window, from the per-item monitoring values. Passes when the upper end of the
    interval of "how much worse" is at most Δ; without enough items on either side it cannot be computed
    and fails, saying n per side."""
    rollouts = Rollout.objects.filter(to_version=version, kind=Rollout.Kind.ROLLOUT).exclude(
        status=Rollout.Status.FAILED
    )
    if environment is not None:
        rollouts = rollouts.filter(environment=environment)
    canary = rollouts.select_related("from_version").order_by("-id").first()
    line.figures = {"metric": p["metric"], "margin": p["margin"], "min_n": p["min_n"], "confidence": p["confidence"]}
    if canary is None or canary.from_version is None:
        line.figures["verdict"] = "cannot be computed"
        line.detail = "Cannot be computed: this version has had no canary beside a champion yet."
        return
    since = canary.started_at or canary.created_at
    until = canary.finished_at or timezone.now()
    champion = canary.from_version.version
    cmp = versions_compare(
        project=version.project,
        metric=p["metric"],
        subject=version.version,
        baseline=champion,
        since=since,
        until=until,
        min_n=p["min_n"],
        confidence=p["confidence"],
    )
    line.figures.update(cmp.as_dict())
    line.figures.update(
        {"champion_version": champion, "rollout_id": canary.pk, "since": since.isoformat(), "until": until.isoformat()}
    )
    if not cmp.computable or cmp.high is None or cmp.low is None or cmp.worse_by is None:
        line.figures["verdict"] = "cannot be computed"
        line.detail = f"Cannot be computed (n too small): {cmp.detail}."
        return
    line.passed = cmp.high <= p["margin"]
    line.figures["verdict"] = "passed" if line.passed else "failed"
    line.detail = (
        f"{p['metric']} in production during the canary: champion v{champion} {cmp.mean_baseline:.4g} "
        f"(n = {cmp.n_baseline}), this version {cmp.mean_subject:.4g} (n = {cmp.n_subject}); worse by "
        f"{cmp.worse_by:+.4g}, {percent_text(p['confidence'])} interval {cmp.low:+.4g} to {cmp.high:+.4g} "
        f"({cmp.method}); upper end {'≤' if line.passed else '>'} Δ = {p['margin']}."
    )


def figures_display(figures: dict[str, Any]) -> list[tuple[str, str]]:
    """A gate line's figures as (name, text) pairs for pages: numbers to 3 decimals, intervals as "a – b"."""

    def text(value: Any) -> str:
        if isinstance(value, bool) or value is None:
            return "–" if value is None else str(value).lower()
        if isinstance(value, float):
            return f"{value:.3f}"
        if isinstance(value, list | tuple):
            return " – ".join(text(v) for v in value)
        return str(value)

    return [(key.replace("_", " "), text(value)) for key, value in figures.items()]
