"""Alert rules on monitoring (issue 14 §4): evaluated after each monitoring refresh, fired and resolved.

A rule's subject is a model version: named (scope ``version``), the environment's champion
(``champion``: what it serves at 100%), or its newest promotion (``candidate``: the ``to_version``
of the environment's newest rollout). Its window is the last ``window_hours``.

- ``above`` / ``below``: the mean (or rate) of the subject's items in the window against
  ``threshold``, once at least ``min_n`` items are in it.
- ``worse_than_champion``: fires when the subject is worse than the baseline by more than ``delta``
  with 95% confidence (the lower end of the interval of the oriented difference is above ``delta``;
  ``pipelines.sources.production_compare``). The baseline is the champion; when the subject is the
  champion itself (a promotion went to 100%), it is what served before that promotion.

Too few items: no verdict, and the state stays as it was (a quiet hour neither fires nor resolves).
Firing: an :class:`AlertEvent`, an audit entry, the signed webhook ``alert.fired`` and, for a rule
marked ``rollback``, a rollback of the environment's latest promotion through the rollback service,
with the rule as its reason; all in the transaction that moves the rule to ``firing``, so a second
evaluation (a retried task, two workers) finds it firing and does nothing again. Back to normal:
``resolved`` the same way (no rollback).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal

import msgspec
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from pipelines.models import AlertEvent, AlertRule, Environment, ModelVersion, Rollout
from pipelines.releases.evidence import champion_for
from pipelines.releases.promotion import rollback_request
from pipelines.releases.webhooks import alert_webhook_emit
from pipelines.sources.monitoring import metric_get
from pipelines.sources.production_compare import versions_compare, window_values
from reviewapp.errors import ServiceError, ValidationFailed
from reviewapp.models import Project
from reviewapp.project_notices import Notice
from reviewapp.services.audit import audit_record
from reviewapp.typed_input import TypedInput, field_error, says, struct_errors
from reviewapp.usertypes import Actor, signed_in

logger = logging.getLogger(__name__)


# --- what is compared ----------------------------------------------------------------------------


def latest_promotion(environment: Environment) -> Rollout | None:
    """The environment's newest promotion that did not fail (a rollout, not a rollback)."""
    return (
        Rollout.objects.filter(environment=environment, kind=Rollout.Kind.ROLLOUT)
        .exclude(status=Rollout.Status.FAILED)
        .select_related("to_version", "from_version", "request")
        .order_by("-id")
        .first()
    )


def _version(mv: ModelVersion | None) -> str | None:
    return mv.version if mv is not None else None


def rule_versions(rule: AlertRule) -> tuple[str | None, str | None]:
    """(subject, baseline) model versions of the rule, as the items name them; None when there is none."""
    env = rule.environment
    promotion = latest_promotion(env) if env is not None else None
    if rule.scope == AlertRule.Scope.VERSION:
        subject = rule.model_version or None
    elif rule.scope == AlertRule.Scope.CANDIDATE:
        subject = _version(promotion.to_version) if promotion else None
    else:
        subject = _version(champion_for(project=rule.project, environment=env))
    champion = _version(champion_for(project=rule.project, environment=env))
    baseline = champion
    if subject is not None and subject == champion:
        baseline = _version(promotion.from_version) if promotion and _version(promotion.to_version) == subject else None
    return subject, baseline


@dataclass
class Verdict:
    firing: bool | None  # None: cannot be computed (too few items, no version)
    figures: dict[str, Any] = field(default_factory=dict)
    detail: str = ""


def rule_verdict(rule: AlertRule, *, now: datetime) -> Verdict:
    """Whether the rule's condition holds now, with the numbers behind it (n per side)."""
    until = now
    since = now - timedelta(hours=rule.window_hours)
    subject, baseline = rule_versions(rule)
    window = {"since": since.isoformat(), "until": until.isoformat(), "subject": subject, "baseline": baseline}
    if subject is None:
        return Verdict(None, window, "No model version to watch (no champion or promotion yet).")
    if rule.comparison in (AlertRule.Comparison.ABOVE, AlertRule.Comparison.BELOW):
        got = window_values(project=rule.project, metric=rule.metric, version=subject, since=since, until=until)
        figures = {**window, "n": got.n, "value": got.mean, "threshold": rule.threshold, "min_n": rule.min_n}
        if got.mean is None or got.n < rule.min_n or rule.threshold is None:
            return Verdict(None, figures, f"Cannot be computed (n too small): {got.n} items, {rule.min_n} needed.")
        above = rule.comparison == AlertRule.Comparison.ABOVE
        firing = got.mean > rule.threshold if above else got.mean < rule.threshold
        word = "above" if above else "below"
        says_ = "is" if firing else "is not"
        return Verdict(
            firing,
            figures,
            f"{rule.metric} of v{subject} {got.mean:.4g} over {got.n} items {says_} {word} {rule.threshold:g}.",
        )
    if baseline is None:
        return Verdict(None, window, f"No champion to compare v{subject} with.")
    cmp = versions_compare(
        project=rule.project,
        metric=rule.metric,
        subject=subject,
        baseline=baseline,
        since=since,
        until=until,
        min_n=rule.min_n,
    )
    delta = rule.delta or 0.0
    figures = {**window, **cmp.as_dict(), "delta": delta}
    if not cmp.computable:
        return Verdict(None, figures, cmp.detail[0].upper() + cmp.detail[1:] + ".")
    assert cmp.low is not None and cmp.high is not None and cmp.worse_by is not None
    firing = cmp.low > delta
    return Verdict(
        firing,
        figures,
        f"v{subject} is worse than v{baseline} by {cmp.worse_by:+.4g} (95% interval {cmp.low:+.4g} to "
        f"{cmp.high:+.4g}; {cmp.detail}): {'more' if firing else 'not shown to be more'} than Δ = {delta:g}.",
    )


# --- evaluation ----------------------------------------------------------------------------------


def _payload(rule: AlertRule, verdict: Verdict, event: AlertEvent) -> dict[str, Any]:
    return {
        "project": rule.project.slug,
        "alert": {
            "id": rule.pk,
            "name": rule.name,
            "metric": rule.metric,
            "comparison": rule.comparison,
            "state": rule.state,
            "environment": rule.environment.name if rule.environment else None,
            "detail": verdict.detail,
            "figures": verdict.figures,
            "rollout": event.rollout_id,
        },
    }


def _rollback(rule: AlertRule, verdict: Verdict) -> tuple[Rollout | None, str]:
    """Roll back the environment's latest promotion (the rollback service audits it with the reason)."""
    env = rule.environment
    promotion = latest_promotion(env) if env is not None else None
    if promotion is None:
        return None, "No promotion to roll back."
    reason = f"Alert rule “{rule.name}” (#{rule.pk}) fired: {verdict.detail}"
    try:
        with transaction.atomic():  # a refusal leaves the firing itself in place
            rollout = rollback_request(
                # None (the rule's author was deleted) is audited as the system.
                actor=rule.created_by,  # type: ignore[arg-type]
                request_id=promotion.request_id,
                reason=reason,
            )
    except ServiceError as exc:
        return None, f"Rollback refused: {exc}"
    return rollout, f"Rolled back {env.name if env else ''} (rollout #{rollout.pk})."


def alert_rule_evaluate(*, rule_id: int, now: datetime | None = None) -> AlertRule | None:
    """Evaluate one rule and move its state; idempotent (the rule row is locked while it moves)."""
    now = now or timezone.now()
    with transaction.atomic():
        rule = (
            AlertRule.objects.select_for_update(of=("self",))
            .select_related("project", "environment", "created_by")
            .filter(pk=rule_id, enabled=True)
            .first()
        )
        if rule is None:
            return None
        verdict = rule_verdict(rule, now=now)
        rule.last_evaluated_at = now
        rule.last_figures = {**verdict.figures, "detail": verdict.detail, "verdict": verdict.firing}
        moved = verdict.firing is not None and verdict.firing != (rule.state == AlertRule.State.FIRING)
        if not moved:
            rule.save(update_fields=["last_evaluated_at", "last_figures"])
            return rule
        kind = AlertEvent.Kind.FIRED if verdict.firing else AlertEvent.Kind.RESOLVED
        rule.state = AlertRule.State.FIRING if verdict.firing else AlertRule.State.OK
        if verdict.firing:
            rule.last_fired_at = now
        rule.save(update_fields=["last_evaluated_at", "last_figures", "state", "last_fired_at"])
        event = AlertEvent.objects.create(rule=rule, kind=kind, at=now, figures=verdict.figures, detail=verdict.detail)
        audit_record(
            actor=None,
            action=f"alert.{kind}",
            target=rule,
            project=rule.project,
            data={"rule": rule.name, "detail": verdict.detail},
        )
        if verdict.firing and rule.rollback:
            rollout, said = _rollback(rule, verdict)
            event.rollout = rollout
            event.detail = f"{verdict.detail} {said}"
            event.save(update_fields=["rollout", "detail"])
        alert_webhook_emit(event=str(kind), payload=_payload(rule, verdict, event))
    return rule


def alerts_evaluate(*, project_id: int, now: datetime | None = None) -> list[AlertRule]:
    """Every enabled rule of the project (the task sent after each monitoring refresh)."""
    ids = AlertRule.objects.filter(project_id=project_id, enabled=True).order_by("id").values_list("id", flat=True)
    out = []
    for rule_id in ids:
        rule = alert_rule_evaluate(rule_id=rule_id, now=now)
        if rule is not None:
            out.append(rule)
    return out


def alerts_firing(*, project: Project) -> list[AlertRule]:
    """The project's firing rules (the banner)."""
    return list(AlertRule.objects.filter(project=project, enabled=True, state=AlertRule.State.FIRING).order_by("name"))


def alerts_firing_counts(*, project_ids: list[int]) -> dict[int, int]:
    """Firing rules per project (the project list's banner)."""
    counts: dict[int, int] = {}
    for pid in AlertRule.objects.filter(
        project_id__in=project_ids, enabled=True, state=AlertRule.State.FIRING
    ).values_list("project_id", flat=True):
        counts[pid] = counts.get(pid, 0) + 1
    return counts


def alerts_notices(user: Any, projects: list[tuple[Project, str]]) -> dict[int, list[Notice]]:
    """The project list's banner: firing rules, for the roles that may watch monitoring."""
    watching = {p.pk: p for p, role in projects if role in ("curator", "engineer", "admin")}
    counts = alerts_firing_counts(project_ids=list(watching))
    return {
        pid: [
            Notice(
                text=f"{n} monitoring alert{'s' if n != 1 else ''} firing",
                url=reverse("monitoring", args=[watching[pid].slug]) + "#alerts",
                level="danger",
            )
        ]
        for pid, n in counts.items()
    }


# --- rules: typed input, create, update, delete --------------------------------------------------


class AlertRuleInput(TypedInput):
    unknown_message: ClassVar[str] = "Unknown field of an alert rule; use {allowed}."

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=120), says("Give a name (120 characters at most).")]
    metric: Annotated[str, msgspec.Meta(min_length=1, max_length=120), says("Give a monitoring metric.")]
    comparison: Annotated[
        Literal["above", "below", "worse_than_champion"], says("Use “above”, “below” or “worse_than_champion”.")
    ]
    scope: Annotated[Literal["version", "champion", "candidate"], says("Use “version”, “champion” or “candidate”.")] = (
        "version"
    )
    model_version: Annotated[str, msgspec.Meta(max_length=100), says("Give a model version.")] = ""
    environment: Annotated[str, says("Give the name of one of the project's environments.")] | None = None
    window_hours: Annotated[int, msgspec.Meta(ge=1, le=24 * 90), says("Give a window of 1 to 2160 hours.")] = 24
    threshold: Annotated[float, says("Give a number.")] | None = None
    delta: Annotated[float, msgspec.Meta(ge=0), says("Give a Δ of at least 0.")] | None = None
    min_n: Annotated[
        int, msgspec.Meta(ge=2, le=1_000_000), says("Give a whole number of items from 2 to 1,000,000.")
    ] = 30
    rollback: Annotated[bool, says("Give true or false.")] = False
    enabled: Annotated[bool, says("Give true or false.")] = True


def _validated(project: Project, raw: Any) -> dict[str, Any]:
    parsed, errors = struct_errors(raw, AlertRuleInput)
    if parsed is None or errors:
        raise ValidationFailed(
            errors or [field_error("", "The rule is not valid.")], errors[0]["message"] if errors else ""
        )
    if metric_get(parsed.metric) is None or parsed.metric == "volume":
        errors.append(
            field_error(
                "metric",
                "Unknown metric; give human_pass_rate, thumbs_down_rate, latency_ms, "
                "tokens, retrieval_precision or score:<scorer name>.",
            )
        )
    env = None
    if parsed.environment is not None:
        env = Environment.objects.filter(project=project, name=parsed.environment).first()
        if env is None:
            errors.append(field_error("environment", "No environment of this project has that name."))
    if parsed.scope == "version" and not parsed.model_version:
        errors.append(field_error("model_version", "Give the model version to watch (or a champion/candidate scope)."))
    if parsed.scope != "version" and parsed.environment is None:
        errors.append(field_error("environment", "A champion or candidate scope needs an environment."))
    if parsed.comparison in ("above", "below") and parsed.threshold is None:
        errors.append(field_error("threshold", "Give the threshold the value is compared with."))
    if parsed.comparison == "worse_than_champion" and parsed.delta is None:
        errors.append(field_error("delta", "Give Δ: how much worse than the champion is still acceptable."))
    if parsed.rollback and parsed.environment is None:
        errors.append(field_error("rollback", "A rule that rolls back needs the environment to roll back."))
    if errors:
        raise ValidationFailed(errors, errors[0]["message"])
    values = msgspec.structs.asdict(parsed)
    values["environment"] = env
    return values


def alert_rule_create(*, project: Project, actor: Actor, values: Any) -> AlertRule:
    clean = _validated(project, values)
    try:
        with transaction.atomic():
            rule = AlertRule.objects.create(project=project, created_by=signed_in(actor), **clean)
            audit_record(
                actor=actor, action="alert.rule_created", target=rule, project=project, data={"name": rule.name}
            )
    except IntegrityError:
        raise ValidationFailed([field_error("name", "A rule of this project already has this name.")]) from None
    return rule


def alert_rule_update(*, rule: AlertRule, actor: Actor, values: Any) -> AlertRule:
    clean = _validated(rule.project, values)
    try:
        with transaction.atomic():
            for key, value in clean.items():
                setattr(rule, key, value)
            rule.save()
            audit_record(
                actor=actor, action="alert.rule_updated", target=rule, project=rule.project, data={"name": rule.name}
            )
    except IntegrityError:
        raise ValidationFailed([field_error("name", "A rule of this project already has this name.")]) from None
    return rule


def alert_rule_delete(*, rule: AlertRule, actor: Actor) -> None:
    with transaction.atomic():
        audit_record(
            actor=actor, action="alert.rule_deleted", target=rule, project=rule.project, data={"name": rule.name}
        )
        rule.delete()


def alert_rule_as_dict(rule: AlertRule) -> dict[str, Any]:
    return {
        "id": rule.pk,
        "name": rule.name,
        "metric": rule.metric,
        "scope": rule.scope,
        "model_version": rule.model_version,
        "environment": rule.environment.name if rule.environment else None,
        "window_hours": rule.window_hours,
        "comparison": rule.comparison,
        "threshold": rule.threshold,
        "delta": rule.delta,
        "min_n": rule.min_n,
        "rollback": rule.rollback,
        "enabled": rule.enabled,
        "state": rule.state,
        "last_evaluated_at": rule.last_evaluated_at.isoformat() if rule.last_evaluated_at else None,
        "last_fired_at": rule.last_fired_at.isoformat() if rule.last_fired_at else None,
        "last_figures": rule.last_figures,
    }
