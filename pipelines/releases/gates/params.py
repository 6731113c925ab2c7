"""Promotion gates, validated and stored: params per kind, create/update/delete, and each gate's title."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from evaluations.models import Suite
from pipelines.models import Environment, PromotionGate
from reviewapp.errors import FieldError, ValidationFailed
from reviewapp.models import Project, Question
from reviewapp.services.audit import audit_record

Kind = PromotionGate.Kind
HUMAN_PASS_RATE = "human_pass_rate"  # noqa: S105 - a metric name, not a password
STATISTICS = ("mean", "pass_rate")
OPS = (">=", "<=")
DEFAULT_CONFIDENCE = 0.95
DEFAULT_MIN_SHARED_ITEMS = 20
# Deprecated kind names still read (stored gates, API input) and mapped to the current kind.
LEGACY_KINDS = {"min_reviews": Kind.MIN_ITEMS.value}


def kind_normalise(kind: Any) -> Any:
    """The current name of a gate kind (``min_reviews`` is read as ``min_items``)."""
    return LEGACY_KINDS.get(kind, kind) if isinstance(kind, str) else kind


# --- validation -------------------------------------------------------------------------------


def _err(name: str, message: str) -> FieldError:
    return {"index": None, "field": f"params.{name}" if name else "params", "message": message}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


ALLOWED = {
    Kind.SUITE_METRIC: ("suite_id", "metric", "statistic", "op", "threshold", "max_age_days"),
    Kind.MIN_ITEMS: ("count",),
    Kind.MIN_PASS_RATE: ("question", "threshold", "confidence"),
    Kind.NOT_WORSE: ("metric", "suite_id", "statistic", "question", "margin", "confidence", "min_shared_items"),
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
    kind = kind_normalise(kind)
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
    elif kind == Kind.MIN_ITEMS:
        count = params.get("count")
        if not _is_int(count) or count < 1:
            errors.append(_err("count", "Give a whole number of reviewed items, at least 1."))
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
        shared = params.get("min_shared_items", DEFAULT_MIN_SHARED_ITEMS)
        if not _is_int(shared) or shared < 2:
            errors.append(_err("min_shared_items", "Give a whole number of shared items, at least 2, e.g. 20."))
        out["min_shared_items"] = shared
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
    """A new gate; ``environment`` (an Environment, its id or name, or None for every environment).

    The deprecated kind ``min_reviews`` is stored as ``min_items``.
    """
    kind = kind_normalise(kind)
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
        if kind_normalise(gate.kind) != gate.kind:  # a gate stored under a deprecated name
            gate.kind = kind_normalise(gate.kind)
            fields.append("kind")
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
    if kind_normalise(gate.kind) == Kind.MIN_ITEMS:
        return f"At least {p.get('count')} reviewed items (curated, or with a complete set of reviews)"
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
        shared = p.get("min_shared_items", DEFAULT_MIN_SHARED_ITEMS)
        return (
            f"Not worse than the champion on {what} (margin {margin}, {_pct(confidence)} confidence, "
            f"paired on at least {shared} shared items)"
        )
    return str(gate.kind)
