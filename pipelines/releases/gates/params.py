"""Promotion gates, validated and stored: params per kind, create/update/delete, and each gate's title."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

import msgspec
from django.db import transaction

from evaluations.models import Suite
from pipelines.models import Environment, PromotionGate
from reviewapp.errors import FieldError, ValidationFailed
from reviewapp.models import Project, Question
from reviewapp.services.audit import audit_record
from reviewapp.typed_input import TypedInput, field_error, says, struct_errors

if TYPE_CHECKING:
    from reviewapp.usertypes import Actor

Kind = PromotionGate.Kind
HUMAN_PASS_RATE = "human_pass_rate"  # noqa: S105 - a metric name, not a password
STATISTICS = ("mean", "pass_rate")
OPS = (">=", "<=")
DEFAULT_CONFIDENCE = 0.95
DEFAULT_MIN_SHARED_ITEMS = 20
# The monitoring metrics a production gate may compare (pipelines.sources.monitoring, besides score:<scorer>).
PRODUCTION_METRICS = ("human_pass_rate", "thumbs_down_rate", "retrieval_precision", "latency_ms", "tokens")
# Deprecated kind names still read (stored gates, API input) and mapped to the current kind.
LEGACY_KINDS = {"min_reviews": Kind.MIN_ITEMS.value}


def kind_normalise(kind: Any) -> Any:
    """The current name of a gate kind (``min_reviews`` is read as ``min_items``)."""
    return LEGACY_KINDS.get(kind, kind) if isinstance(kind, str) else kind


# --- validation -------------------------------------------------------------------------------

Number = int | float  # kept as given: a threshold of 1 stays 1 in the gate's title
NonNegative = Annotated[int, msgspec.Meta(ge=0)] | Annotated[float, msgspec.Meta(ge=0)]
Share = Annotated[int, msgspec.Meta(ge=0, le=1)] | Annotated[float, msgspec.Meta(ge=0, le=1)]
SuiteId = Annotated[int, says("Give the id of one of this project's evaluation suites.")]
Metric = Annotated[str, msgspec.Meta(pattern=r"\S"), says("Give a scorer name of the suite, e.g. “correctness”.")]
Statistic = Annotated[Literal["mean", "pass_rate"], says("Use “mean” or “pass_rate”.")]
Confidence = Annotated[
    float, msgspec.Meta(ge=0.5, lt=1), says("Give a confidence level from 0.5 to below 1, e.g. 0.95.")
]
PassFailKey = Annotated[str, says("Give the key of a pass/fail question.")]


class _Params(TypedInput):
    not_object_message: ClassVar[str] = "Give the parameters as an object."


class SuiteMetricParams(_Params):
    unknown_message: ClassVar[str] = "Unknown parameter for a suite_metric gate; use {allowed}."

    suite_id: SuiteId
    metric: Metric
    threshold: Annotated[Number, says("Give a number, e.g. 0.8.")]
    statistic: Statistic = "mean"
    op: Annotated[Literal[">=", "<="], says("Use “>=” or “<=”.")] = ">="
    max_age_days: (
        Annotated[int, msgspec.Meta(ge=1), says("Give a whole number of days, at least 1 (or leave it out).")] | None
    ) = None


class MinItemsParams(_Params):
    unknown_message: ClassVar[str] = "Unknown parameter for a min_items gate; use {allowed}."

    count: Annotated[int, msgspec.Meta(ge=1), says("Give a whole number of reviewed items, at least 1.")]


class MinPassRateParams(_Params):
    unknown_message: ClassVar[str] = "Unknown parameter for a min_pass_rate gate; use {allowed}."

    threshold: Annotated[Share, says("Give a pass rate from 0 to 1, e.g. 0.8.")]
    question: PassFailKey | None = None
    confidence: Confidence = DEFAULT_CONFIDENCE


class NotWorseParams(_Params):
    unknown_message: ClassVar[str] = "Unknown parameter for a not_worse_than_champion gate; use {allowed}."

    metric: Metric | None = None  # a scorer of the suite, or human_pass_rate
    suite_id: SuiteId | None | msgspec.UnsetType = msgspec.UNSET
    statistic: Statistic | None | msgspec.UnsetType = msgspec.UNSET
    question: PassFailKey | None = None
    margin: Annotated[NonNegative, says("Give a margin of at least 0 (how much worse is still acceptable).")] = 0
    confidence: Confidence = DEFAULT_CONFIDENCE
    min_shared_items: Annotated[
        int, msgspec.Meta(ge=2), says("Give a whole number of shared items, at least 2, e.g. 20.")
    ] = DEFAULT_MIN_SHARED_ITEMS


class ProductionNotWorseParams(_Params):
    unknown_message: ClassVar[str] = "Unknown parameter for a production_not_worse gate; use {allowed}."

    metric: Annotated[
        str,
        msgspec.Meta(pattern=r"\S", max_length=120),
        says("Give a monitoring metric, e.g. “thumbs_down_rate” or “score:correctness”."),
    ]
    margin: Annotated[NonNegative, says("Give Δ, at least 0 (how much worse is still acceptable).")] = 0
    min_n: Annotated[int, msgspec.Meta(ge=2), says("Give a whole number of items per side, at least 2, e.g. 30.")] = 30
    confidence: Confidence = DEFAULT_CONFIDENCE


PARAMS: dict[str, type[_Params]] = {
    Kind.PRODUCTION_NOT_WORSE: ProductionNotWorseParams,
    Kind.SUITE_METRIC: SuiteMetricParams,
    Kind.MIN_ITEMS: MinItemsParams,
    Kind.MIN_PASS_RATE: MinPassRateParams,
    Kind.NOT_WORSE: NotWorseParams,
}


def _suite(project: Project, value: int | None, errors: list[FieldError]) -> Suite | None:
    if value is None:
        return None
    suite = Suite.objects.filter(project=project, pk=value).first()
    if suite is None:
        errors.append(field_error("params.suite_id", f"This project has no evaluation suite {value}."))
    return suite


def _metric(suite: Suite | None, value: str | None, errors: list[FieldError]) -> str | None:
    if any(e["field"] == "params.metric" for e in errors):  # refused for its type already
        return None
    if value is None:
        errors.append(field_error("params.metric", "Give a scorer name of the suite, e.g. “correctness”."))
        return None
    value = value.strip()
    if suite is not None:
        names = {name for version in suite.versions.all() for name in version.scorer_names}
        if names and value not in names:
            known = ", ".join(sorted(names))
            message = f"Suite “{suite.name}” has no scorer “{value}”; it has {known}."
            errors.append(field_error("params.metric", message))
            return None
    return value


def _question(project: Project, value: str | None, errors: list[FieldError]) -> str:
    if any(e["field"] == "params.question" for e in errors):  # refused for its type already
        return ""
    value = value or ""
    pass_fail = list(
        Question.objects.filter(project=project, kind=Question.Kind.PASS_FAIL).values_list("key", flat=True)
    )
    if not value and not pass_fail:
        errors.append(field_error("params.question", "This project's schema has no pass/fail question."))
    elif value and value not in pass_fail:
        errors.append(field_error("params.question", f"“{value}” is not a pass/fail question of this project."))
    return value


def gate_params_validate(*, project: Project, kind: Any, params: Any) -> dict[str, Any]:
    """The params of a gate of ``kind``, complete with defaults; ValidationFailed naming each bad one.

    The project's suites and questions are checked once the params have their shape.
    """
    kind = kind_normalise(kind)
    if kind not in Kind.values:
        raise ValidationFailed(
            [field_error("kind", f"Choose one of {', '.join(Kind.values)}.")], "The gate is not valid."
        )
    cls = PARAMS[Kind(kind)]
    params = {} if params is None else params
    parsed, errors = struct_errors(params, cls, field="params")
    allowed = ", ".join(f.encode_name for f in msgspec.structs.fields(cls))
    for error in errors:
        error["field"] = error["field"] or "params"
        error["message"] = error["message"].replace("{allowed}", allowed)
    out: dict[str, Any] = {}
    if isinstance(parsed, SuiteMetricParams):
        suite = _suite(project, parsed.suite_id, errors)
        out["suite_id"] = parsed.suite_id
        out["metric"] = _metric(suite, parsed.metric, errors)
        out["statistic"] = parsed.statistic
        out["op"] = parsed.op
        if parsed.statistic == "pass_rate" and not 0 <= parsed.threshold <= 1:
            errors.append(field_error("params.threshold", "A pass rate threshold is from 0 to 1."))
        out["threshold"] = parsed.threshold
        out["max_age_days"] = parsed.max_age_days
    elif isinstance(parsed, MinItemsParams):
        out["count"] = parsed.count
    elif isinstance(parsed, MinPassRateParams):
        out["question"] = _question(project, parsed.question, errors)
        out["threshold"] = parsed.threshold
        out["confidence"] = float(parsed.confidence)
    elif isinstance(parsed, NotWorseParams):
        if parsed.metric == HUMAN_PASS_RATE:
            out["metric"] = HUMAN_PASS_RATE
            out["question"] = _question(project, parsed.question, errors)
            for key in ("suite_id", "statistic"):
                if getattr(parsed, key) not in (None, "", msgspec.UNSET):
                    errors.append(field_error(f"params.{key}", f"Only for a suite metric, not {HUMAN_PASS_RATE}."))
        else:
            suite = None
            if parsed.suite_id is msgspec.UNSET:
                if "suite_id" not in params:  # not a refused value: a missing one
                    message = f"Give the suite of the metric (or use metric “{HUMAN_PASS_RATE}”)."
                    errors.append(field_error("params.suite_id", message))
            elif parsed.suite_id is None:
                errors.append(field_error("params.suite_id", "Give the id of one of this project's evaluation suites."))
            else:
                suite = _suite(project, parsed.suite_id, errors)
            out["suite_id"] = None if parsed.suite_id is msgspec.UNSET else parsed.suite_id
            out["metric"] = _metric(suite, parsed.metric, errors)
            out["statistic"] = "mean" if parsed.statistic is msgspec.UNSET else parsed.statistic
            if parsed.statistic is None:
                errors.append(field_error("params.statistic", "Use “mean” or “pass_rate”."))
            if parsed.question:
                errors.append(field_error("params.question", f"Only for metric “{HUMAN_PASS_RATE}”."))
        out["margin"] = parsed.margin
        out["confidence"] = float(parsed.confidence)
        out["min_shared_items"] = parsed.min_shared_items
    elif isinstance(parsed, ProductionNotWorseParams):
        if parsed.metric in ("volume", "") or not (
            parsed.metric in PRODUCTION_METRICS or parsed.metric.startswith("score:")
        ):
            message = f"Give one of {', '.join(PRODUCTION_METRICS)} or score:<scorer name>."
            errors.append(field_error("params.metric", message))
        out["metric"] = parsed.metric
        out["margin"] = parsed.margin
        out["min_n"] = parsed.min_n
        out["confidence"] = float(parsed.confidence)
    if errors:
        raise ValidationFailed(errors, "The gate is not valid.")
    return out


# --- CRUD -------------------------------------------------------------------------------------

UNSET: Any = object()


def _environment(project: Project, environment: Any) -> Environment | None:
    if environment in (None, ""):
        return None
    if isinstance(environment, Environment):
        env = environment if environment.project_id == project.pk else None
    else:
        lookup: dict[str, Any] = {"pk": environment} if type(environment) is int else {"name": str(environment)}
        env = Environment.objects.filter(project=project, **lookup).first()
    if env is None:
        raise ValidationFailed(
            [field_error("environment", "No such environment in this project.")],
            "The gate is not valid.",
        )
    return env


def gate_create(
    *, project: Project, kind: Any, params: Any, actor: Actor, environment: Any = None, enabled: bool = True
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
    *, gate: PromotionGate, actor: Actor, params: Any = UNSET, enabled: Any = UNSET, environment: Any = UNSET
) -> PromotionGate:
    """Change a gate's params, environment or enabled flag (its kind stays)."""
    fields = []
    if params is not UNSET:
        gate.params = gate_params_validate(project=gate.project, kind=gate.kind, params=params)
        fields.append("params")
        if kind_normalise(gate.kind) != gate.kind:  # a gate stored under a deprecated name
            gate.kind = kind_normalise(gate.kind)
            fields.append("kind")
    if environment is not UNSET:
        gate.environment = _environment(gate.project, environment)
        fields.append("environment")
    if enabled is not UNSET:
        if not isinstance(enabled, bool):
            raise ValidationFailed([field_error("enabled", "Give true or false.")])
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


def gate_delete(*, gate: PromotionGate, actor: Actor) -> None:
    with transaction.atomic():
        audit_record(
            actor=actor,
            action="promotion.gate_delete",
            target=gate,
            project=gate.project,
            data={"kind": gate.kind, "params": gate.params},
        )
        gate.delete()


def percent_text(value: float) -> str:
    return f"{value * 100:.0f}%" if value * 100 == round(value * 100) else f"{value * 100:.1f}%"


def gate_title(gate: PromotionGate) -> str:
    p = gate.params or {}
    suite_id: Any = p.get("suite_id")  # JSON: a gate without a suite names none
    if gate.kind == Kind.SUITE_METRIC:
        suite = Suite.objects.filter(pk=suite_id).values_list("name", flat=True).first() or p.get("suite_id")
        age = f", at most {p['max_age_days']} days old" if p.get("max_age_days") else ""
        what = f"{p.get('metric')} {p.get('statistic', 'mean')} {p.get('op', '>=')} {p.get('threshold')}"
        return f"{what} on suite “{suite}” (latest run{age})"
    if kind_normalise(gate.kind) == Kind.MIN_ITEMS:
        return f"At least {p.get('count')} reviewed items (curated, or with a complete set of reviews)"
    if gate.kind == Kind.MIN_PASS_RATE:
        question = p.get("question") or "the primary pass/fail question"
        confidence = float(p.get("confidence", DEFAULT_CONFIDENCE))
        threshold = percent_text(float(p.get("threshold", 0)))
        return f"Human pass rate on {question} ≥ {threshold} (lower bound, {percent_text(confidence)} confidence)"
    if gate.kind == Kind.NOT_WORSE:
        if p.get("metric") == HUMAN_PASS_RATE:
            what = "human pass rate"
        else:
            suite = Suite.objects.filter(pk=suite_id).values_list("name", flat=True).first()
            what = f"{p.get('metric')} {p.get('statistic', 'mean')} of suite “{suite}”"
        margin = p.get("margin", 0)
        confidence = float(p.get("confidence", DEFAULT_CONFIDENCE))
        shared = p.get("min_shared_items", DEFAULT_MIN_SHARED_ITEMS)
        return (
            f"Not worse than the champion on {what} (margin {margin}, {percent_text(confidence)} confidence, "
            f"paired on at least {shared} shared items)"
        )
    if gate.kind == Kind.PRODUCTION_NOT_WORSE:
        confidence = float(p.get("confidence", DEFAULT_CONFIDENCE))
        return (
            f"Not worse than the champion in production on {p.get('metric')} during the canary "
            f"(Δ {p.get('margin', 0)}, {percent_text(confidence)} confidence, "
            f"at least {p.get('min_n', 30)} items per side)"
        )
    return str(gate.kind)
