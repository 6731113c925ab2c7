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

# ruff: noqa: RUF001, RUF002 - text for people: en dashes and minus signs are intended

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from evaluations.models import Suite
from evaluations.selectors import run_metrics
from pipelines import evidence as ev
from pipelines.models import Environment, ModelVersion, PromotionGate
from reviewapp.errors import FieldError, ValidationFailed
from reviewapp.models import Project, Question
from reviewapp.services.audit import audit_record

Kind = PromotionGate.Kind
HUMAN_PASS_RATE = "human_pass_rate"  # noqa: S105 - a metric name, not a password
STATISTICS = ("mean", "pass_rate")
OPS = (">=", "<=")
DEFAULT_CONFIDENCE = 0.95


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


# --- validation -------------------------------------------------------------------------------


def _err(name: str, message: str) -> FieldError:
    return {"index": None, "field": f"params.{name}" if name else "params", "message": message}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


ALLOWED = {
    Kind.SUITE_METRIC: ("suite_id", "metric", "statistic", "op", "threshold", "max_age_days"),
    Kind.MIN_REVIEWS: ("count",),
    Kind.MIN_PASS_RATE: ("question", "threshold", "confidence"),
    Kind.NOT_WORSE: ("metric", "suite_id", "statistic", "question", "margin", "confidence"),
}


def _suite(project: Project, value: Any, errors: list[FieldError]) -> Suite | None:
    if not _is_int(value):
        errors.append(_err("suite_id", "Give the id of one of this project's evaluation suites."))
        return None
    suite = Suite.objects.filter(project=project, pk=value).first()
    if suite is None:
        errors.append(_err("suite_id", f"This project has no evaluation suite {value}."))
    return suite


def _metric(suite: Suite | None, value: Any, errors: list[FieldError]) -> str | None:
    if not isinstance(value, str) or not value.strip():
        errors.append(_err("metric", "Give a scorer name of the suite, e.g. “correctness”."))
        return None
    value = value.strip()
    if suite is not None:
        names = {name for version in suite.versions.all() for name in version.scorer_names}
        if names and value not in names:
            known = ", ".join(sorted(names))
            errors.append(_err("metric", f"Suite “{suite.name}” has no scorer “{value}”; it has {known}."))
            return None
    return value


def _confidence(params: dict[str, Any], errors: list[FieldError]) -> float:
    value = params.get("confidence", DEFAULT_CONFIDENCE)
    if not _is_number(value) or not 0.5 <= value < 1:
        errors.append(_err("confidence", "Give a confidence level from 0.5 to below 1, e.g. 0.95."))
        return DEFAULT_CONFIDENCE
    return float(value)


def _question(project: Project, params: dict[str, Any], errors: list[FieldError]) -> str:
    value = params.get("question", "") or ""
    pass_fail = list(
        Question.objects.filter(project=project, kind=Question.Kind.PASS_FAIL).values_list("key", flat=True)
    )
    if not isinstance(value, str):
        errors.append(_err("question", "Give the key of a pass/fail question."))
        return ""
    if not value and not pass_fail:
        errors.append(_err("question", "This project's schema has no pass/fail question."))
    elif value and value not in pass_fail:
        errors.append(_err("question", f"“{value}” is not a pass/fail question of this project."))
    return value


def gate_params_validate(*, project: Project, kind: Any, params: Any) -> dict[str, Any]:
    """The params of a gate of ``kind``, complete with defaults; ValidationFailed naming each bad one."""
    if kind not in Kind.values:
        raise ValidationFailed(
            [{"index": None, "field": "kind", "message": f"Choose one of {', '.join(Kind.values)}."}],
            "The gate is not valid.",
        )
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ValidationFailed([_err("", "Give the parameters as an object.")], "The gate is not valid.")
    errors: list[FieldError] = []
    for key in params:
        if key not in ALLOWED[Kind(kind)]:
            errors.append(_err(str(key), f"Unknown parameter for a {kind} gate; use {', '.join(ALLOWED[Kind(kind)])}."))
    out: dict[str, Any] = {}
    if kind == Kind.SUITE_METRIC:
        suite = _suite(project, params.get("suite_id"), errors)
        out["suite_id"] = params.get("suite_id")
        out["metric"] = _metric(suite, params.get("metric"), errors)
        out["statistic"] = params.get("statistic", "mean")
        if out["statistic"] not in STATISTICS:
            errors.append(_err("statistic", "Use “mean” or “pass_rate”."))
        out["op"] = params.get("op", ">=")
        if out["op"] not in OPS:
            errors.append(_err("op", "Use “>=” or “<=”."))
        threshold = params.get("threshold")
        if not _is_number(threshold):
            errors.append(_err("threshold", "Give a number, e.g. 0.8."))
        elif out["statistic"] == "pass_rate" and not 0 <= threshold <= 1:
            errors.append(_err("threshold", "A pass rate threshold is from 0 to 1."))
        out["threshold"] = threshold
        max_age = params.get("max_age_days")
        if max_age is not None and (not _is_int(max_age) or max_age < 1):
            errors.append(_err("max_age_days", "Give a whole number of days, at least 1 (or leave it out)."))
        out["max_age_days"] = max_age
    elif kind == Kind.MIN_REVIEWS:
        count = params.get("count")
        if not _is_int(count) or count < 1:
            errors.append(_err("count", "Give a whole number of reviews, at least 1."))
        out["count"] = count
    elif kind == Kind.MIN_PASS_RATE:
        out["question"] = _question(project, params, errors)
        threshold = params.get("threshold")
        if not _is_number(threshold) or not 0 <= threshold <= 1:
            errors.append(_err("threshold", "Give a pass rate from 0 to 1, e.g. 0.8."))
        out["threshold"] = threshold
        out["confidence"] = _confidence(params, errors)
    elif kind == Kind.NOT_WORSE:
        metric = params.get("metric")
        if metric == HUMAN_PASS_RATE:
            out["metric"] = HUMAN_PASS_RATE
            out["question"] = _question(project, params, errors)
            for key in ("suite_id", "statistic"):
                if params.get(key) not in (None, ""):
                    errors.append(_err(key, f"Only for a suite metric, not {HUMAN_PASS_RATE}."))
        else:
            if "suite_id" not in params:
                errors.append(_err("suite_id", f"Give the suite of the metric (or use metric “{HUMAN_PASS_RATE}”)."))
                suite = None
            else:
                suite = _suite(project, params.get("suite_id"), errors)
            out["suite_id"] = params.get("suite_id")
            out["metric"] = _metric(suite, metric, errors)
            out["statistic"] = params.get("statistic", "mean")
            if out["statistic"] not in STATISTICS:
                errors.append(_err("statistic", "Use “mean” or “pass_rate”."))
            if params.get("question"):
                errors.append(_err("question", f"Only for metric “{HUMAN_PASS_RATE}”."))
        margin = params.get("margin", 0)
        if not _is_number(margin) or margin < 0:
            errors.append(_err("margin", "Give a margin of at least 0 (how much worse is still acceptable)."))
        out["margin"] = margin
        out["confidence"] = _confidence(params, errors)
    if errors:
        raise ValidationFailed(errors, "The gate is not valid.")
    return out


# --- CRUD -------------------------------------------------------------------------------------

_UNSET: Any = object()


def _environment(project: Project, environment: Any) -> Environment | None:
    if environment in (None, ""):
        return None
    if isinstance(environment, Environment):
        env = environment if environment.project_id == project.pk else None
    else:
        lookup = {"pk": environment} if _is_int(environment) else {"name": str(environment)}
        env = Environment.objects.filter(project=project, **lookup).first()
    if env is None:
        raise ValidationFailed(
            [{"index": None, "field": "environment", "message": "No such environment in this project."}],
            "The gate is not valid.",
        )
    return env


def gate_create(
    *, project: Project, kind: Any, params: Any, actor: Any, environment: Any = None, enabled: bool = True
) -> PromotionGate:
    """A new gate; ``environment`` (an Environment, its id or name, or None for every environment)."""
    clean = gate_params_validate(project=project, kind=kind, params=params)
    env = _environment(project, environment)
    with transaction.atomic():
        gate = PromotionGate.objects.create(
            project=project, environment=env, kind=kind, params=clean, enabled=bool(enabled)
        )
        audit_record(
            actor=actor,
            action="promotion.gate_create",
            target=gate,
            project=project,
            data={"kind": kind, "params": clean, "environment": env.name if env else None, "enabled": gate.enabled},
        )
    return gate


def gate_update(
    *, gate: PromotionGate, actor: Any, params: Any = _UNSET, enabled: Any = _UNSET, environment: Any = _UNSET
) -> PromotionGate:
    """Change a gate's params, environment or enabled flag (its kind stays)."""
    fields = []
    if params is not _UNSET:
        gate.params = gate_params_validate(project=gate.project, kind=gate.kind, params=params)
        fields.append("params")
    if environment is not _UNSET:
        gate.environment = _environment(gate.project, environment)
        fields.append("environment")
    if enabled is not _UNSET:
        if not isinstance(enabled, bool):
            raise ValidationFailed([{"index": None, "field": "enabled", "message": "Give true or false."}])
        gate.enabled = enabled
        fields.append("enabled")
    if fields:
        with transaction.atomic():
            gate.save(update_fields=fields)
            audit_record(
                actor=actor,
                action="promotion.gate_update",
                target=gate,
                project=gate.project,
                data={
                    "params": gate.params,
                    "enabled": gate.enabled,
                    "environment": gate.environment.name if gate.environment else None,
                },
            )
    return gate


def gate_delete(*, gate: PromotionGate, actor: Any) -> None:
    with transaction.atomic():
        audit_record(
            actor=actor,
            action="promotion.gate_delete",
            target=gate,
            project=gate.project,
            data={"kind": gate.kind, "params": gate.params},
        )
        gate.delete()


def _pct(value: float) -> str:
    return f"{value * 100:.0f}%" if value * 100 == round(value * 100) else f"{value * 100:.1f}%"


def gate_title(gate: PromotionGate) -> str:
    p = gate.params or {}
    if gate.kind == Kind.SUITE_METRIC:
        suite = Suite.objects.filter(pk=p.get("suite_id")).values_list("name", flat=True).first() or p.get("suite_id")
        age = f", at most {p['max_age_days']} days old" if p.get("max_age_days") else ""
        what = f"{p.get('metric')} {p.get('statistic', 'mean')} {p.get('op', '>=')} {p.get('threshold')}"
        return f"{what} on suite “{suite}” (latest run{age})"
    if gate.kind == Kind.MIN_REVIEWS:
        return f"At least {p.get('count')} human reviews"
    if gate.kind == Kind.MIN_PASS_RATE:
        question = p.get("question") or "the primary pass/fail question"
        confidence = float(p.get("confidence", DEFAULT_CONFIDENCE))
        threshold = _pct(float(p.get("threshold", 0)))
        return f"Human pass rate on {question} ≥ {threshold} (lower bound, {_pct(confidence)} confidence)"
    if gate.kind == Kind.NOT_WORSE:
        if p.get("metric") == HUMAN_PASS_RATE:
            what = "human pass rate"
        else:
            suite = Suite.objects.filter(pk=p.get("suite_id")).values_list("name", flat=True).first()
            what = f"{p.get('metric')} {p.get('statistic', 'mean')} of suite “{suite}”"
        margin = p.get("margin", 0)
        confidence = float(p.get("confidence", DEFAULT_CONFIDENCE))
        return f"Not worse than the champion on {what} (margin {margin}, {_pct(confidence)} confidence)"
    return str(gate.kind)


# --- evaluation -------------------------------------------------------------------------------


class _Context:
    """What several gates of one evaluation share, computed once."""

    def __init__(self, model_version: ModelVersion, environment: Environment | None) -> None:
        self.model_version = model_version
        self.environment = environment
        self._human: dict[str, ev.HumanEvidence] = {}
        self._champion: Any = _UNSET

    def human(self, version: ModelVersion) -> ev.HumanEvidence:
        if version.version not in self._human:
            self._human[version.version] = ev.human_evidence(project=version.project, model_version=version.version)
        return self._human[version.version]

    @property
    def champion(self) -> ModelVersion | None:
        if self._champion is _UNSET:
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
    ctx = _Context(model_version, environment)
    lines = [
        _gate_line(gate, model_version, environment, ctx)
        for gate in gates_for(project=model_version.project, environment=environment)
    ]
    return GateReport(passed=all(line.passed for line in lines), lines=lines)


def gates_evaluate_all(*, model_version: ModelVersion) -> list[tuple[Environment | None, GateReport]]:
    """One report per environment of the project (or one project-wide report when it has none)."""
    environments = list(Environment.objects.filter(project_id=model_version.project_id).order_by("name"))
    if not environments:
        return [(None, gates_evaluate(model_version=model_version, environment=None))]
    return [(env, gates_evaluate(model_version=model_version, environment=env)) for env in environments]


def _gate_line(
    gate: PromotionGate, model_version: ModelVersion, environment: Environment | None, ctx: _Context | None = None
) -> GateLine:
    ctx = ctx or _Context(model_version, environment)
    line = GateLine(gate_id=gate.pk, kind=gate.kind, title=gate_title(gate), passed=False)
    try:
        params = gate_params_validate(project=model_version.project, kind=gate.kind, params=gate.params)
    except ValidationFailed as exc:
        # A gate made invalid later (its suite deleted, a question removed) fails rather than passing silently.
        line.detail = "This gate is no longer valid: " + "; ".join(f"{e['field']}: {e['message']}" for e in exc.errors)
        return line
    if gate.kind == Kind.SUITE_METRIC:
        _suite_metric(line, params, model_version)
    elif gate.kind == Kind.MIN_REVIEWS:
        _min_reviews(line, params, model_version, ctx)
    elif gate.kind == Kind.MIN_PASS_RATE:
        _min_pass_rate(line, params, model_version, ctx)
    elif gate.kind == Kind.NOT_WORSE:
        _not_worse(line, params, model_version, ctx)
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


def _min_reviews(line: GateLine, p: dict[str, Any], version: ModelVersion, ctx: _Context) -> None:
    human = ctx.human(version)
    line.figures = {"n": human.reviews, "value": human.reviews, "threshold": p["count"], "items": human.items}
    line.links = [_dashboard_link(version.project)]
    line.passed = human.reviews >= p["count"]
    line.detail = (
        f"{human.reviews} current reviews of {human.items} items of version {version.version} (needs {p['count']})."
    )


def _pass_counts(human: ev.HumanEvidence, question: str) -> tuple[str, int, int]:
    key = question or human.primary_question
    rate = human.pass_rates.get(key)
    return key, (rate.passes if rate else 0), (rate.n if rate else 0)


def _min_pass_rate(line: GateLine, p: dict[str, Any], version: ModelVersion, ctx: _Context) -> None:
    key, passes, n = _pass_counts(ctx.human(version), p["question"])
    ci = ev.wilson_interval(passes, n, confidence=p["confidence"])
    line.figures = {
        "question": key,
        "n": n,
        "passes": passes,
        "value": passes / n if n else None,
        "interval": list(ci) if ci else None,
        "lower_bound": ci[0] if ci else None,
        "threshold": p["threshold"],
        "confidence": p["confidence"],
        "test": "Wilson score interval",
    }
    line.links = [_dashboard_link(version.project)]
    if ci is None:
        line.detail = f"No review of version {version.version} answers “{key}” yet."
        return
    line.passed = ci[0] >= p["threshold"]
    line.detail = (
        f"{passes}/{n} passed ({passes / n:.1%}); the {_pct(p['confidence'])} Wilson interval is "
        f"{ci[0]:.1%}–{ci[1]:.1%}, lower bound {'≥' if line.passed else '<'} {_pct(float(p['threshold']))}."
    )


def _not_worse(line: GateLine, p: dict[str, Any], version: ModelVersion, ctx: _Context) -> None:
    champion = ctx.champion
    line.figures = {"margin": p["margin"], "confidence": p["confidence"], "metric": p["metric"]}
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
        key, x1, n1 = _pass_counts(ctx.human(version), p.get("question", ""))
        _, x2, n2 = _pass_counts(ctx.human(champion), key)
        line.links = [_dashboard_link(version.project), champion_link]
        test = "Newcombe hybrid score interval (method 10) for the difference of two proportions"
        line.figures.update({"question": key, "n": n1, "champion_n": n2, "test": test})
        line.figures.update({"value": x1 / n1 if n1 else None, "champion_value": x2 / n2 if n2 else None})
        result = ev.newcombe_difference(x1, n1, x2, n2, confidence=p["confidence"])
        missing = "this version" if not n1 else f"the champion (v{champion.version})"
        what = "human pass rate"
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
        a = ev.run_scores(run=run, scorer=p["metric"], statistic=p["statistic"])
        b = ev.run_scores(run=champion_run, scorer=p["metric"], statistic=p["statistic"])
        line.figures.update(
            {
                "run_id": run.pk,
                "champion_run_id": champion_run.pk,
                "n": len(a),
                "champion_n": len(b),
                "value": sum(a) / len(a) if a else None,
                "champion_value": sum(b) / len(b) if b else None,
            }
        )
        if p["statistic"] == "pass_rate":
            line.figures["test"] = "Newcombe hybrid score interval (method 10) for the difference of two proportions"
            result = ev.newcombe_difference(int(sum(a)), len(a), int(sum(b)), len(b), confidence=p["confidence"])
        else:
            line.figures["test"] = "Normal interval with Welch's standard error for the difference of two means"
            result = ev.welch_difference(a, b, confidence=p["confidence"])
        missing = "this version" if len(a) < 2 else f"the champion (v{champion.version})"
        what = f"{p['metric']} {p['statistic']}"
    if result is None:
        line.detail = f"Not enough data for {missing} to compare {what}."
        return
    diff, low, high = result
    line.figures.update({"difference": diff, "interval": [low, high], "lower_bound": low, "threshold": -p["margin"]})
    line.passed = low >= -p["margin"]
    line.detail = (
        f"{what}: this version − champion = {diff:+.3f}, {_pct(p['confidence'])} interval {low:+.3f} to {high:+.3f}; "
        f"lower bound {'≥' if line.passed else '<'} −{p['margin']}."
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
