"""Promotion requests and their decisions: request, approve (two-person rule), override, reject,
cancel, roll back, retry; and the environments they target.

Rules (each refusal says why):
- only engineers and admins act here (the faces check ``Capability.PROMOTE`` through
  ``pipelines.selectors.promotions``); the services check the rules that need the request's state;
- the requester cannot approve their own request (403); nobody approves twice (409);
- every approval re-evaluates the gates; if they fail, only an admin may approve, and only with a
  written justification (stored and audited);
- ``Environment.required_approvals`` distinct approvals queue the rollout (``pipelines.releases.rollout``);
  the request row is locked (SELECT ... FOR UPDATE) so two concurrent approvals cannot both queue one,
  and the partial unique index on Rollout refuses a second active rollout on one environment.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.utils import timezone

from pipelines.models import Approval, Environment, ModelVersion, PromotionRequest, Rollout
from pipelines.releases.gates import gates_evaluate
from pipelines.releases.rollout import rollout_create, rollout_retry
from pipelines.releases.webhooks import webhook_emit
from reviewapp.errors import Conflict, ServiceError
from reviewapp.models import Project, Role
from reviewapp.selectors.projects import role_for
from reviewapp.services.audit import audit_record
from reviewapp.typed_input import refusal

Status = PromotionRequest.Status
DEFAULT_STAGES = [10, 50, 100]
ENV_FIELDS = (
    "alias",
    "serving_kind",
    "serving_endpoint",
    "local_port",
    "canary_stages",
    "required_approvals",
    "ready_timeout_seconds",
    "health_check_queries",
    "soak_seconds",
    "max_error_rate",
    "max_p95_ms",
)
DEMO_SOAK_SECONDS = 3  # the demo's environments soak briefly; production shape is the model default (60 s)


class ResourceTaken(Conflict):
    """A local port or Databricks serving endpoint that another environment owns."""

    code = "resource_in_use"


class AlreadyApproved(Conflict):
    code = "already_approved"


class GatesFailed(Conflict):
    code = "gates_failed"


# --- environments ----------------------------------------------------------------------------------


def _environment_clean(values: dict[str, Any]) -> dict[str, Any]:
    out = dict(values)
    if "alias" in out:
        alias = str(out["alias"] or "").strip()
        if not alias or not alias.replace("_", "").replace("-", "").isalnum():
            raise refusal("alias", "An alias is letters, digits, '-' or '_' (e.g. champion).")
        out["alias"] = alias
    kind = out.get("serving_kind")
    if kind is not None and kind not in Environment.ServingKind.values:
        raise refusal("serving_kind", f"serving_kind must be one of {', '.join(Environment.ServingKind.values)}.")
    if "canary_stages" in out:
        stages = out["canary_stages"]
        if not isinstance(stages, list) or not stages or not all(isinstance(s, int) and 0 < s <= 100 for s in stages):
            raise refusal(
                "canary_stages", "Canary stages are a list of percentages between 1 and 100, e.g. [10, 50, 100]."
            )
        if stages != sorted(set(stages)) or stages[-1] != 100:
            raise refusal("canary_stages", "Canary stages must increase and end at 100.")
    if "required_approvals" in out and not (1 <= int(out["required_approvals"]) <= 10):
        raise refusal("required_approvals", "Between 1 and 10 approvals.")
    if "ready_timeout_seconds" in out and not (1 <= int(out["ready_timeout_seconds"]) <= 7200):
        raise refusal("ready_timeout_seconds", "Between 1 and 7200 seconds.")
    if out.get("local_port") is not None and not (1024 <= int(out["local_port"]) <= 65535):
        raise refusal("local_port", "A port between 1024 and 65535.")
    _canary_limits_clean(out)
    return out


def _canary_limits_clean(out: dict[str, Any]) -> None:
    """The soak and its limits: seconds per stage, the error rate (a fraction) and p95 latency a stage may reach."""
    if "soak_seconds" in out and not (0 <= int(out["soak_seconds"]) <= 3600):
        raise refusal("soak_seconds", "The soak per canary stage is between 0 and 3600 seconds.")
    if "max_error_rate" in out:
        rate = out["max_error_rate"]
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not (0 <= float(rate) <= 1):
            raise refusal("max_error_rate", "max_error_rate is a fraction between 0 and 1 (0.05 = 5% of queries).")
        out["max_error_rate"] = float(rate)
    if "max_p95_ms" in out and not (1 <= int(out["max_p95_ms"]) <= 600_000):
        raise refusal("max_p95_ms", "max_p95_ms is between 1 and 600000 milliseconds.")


def _owner_check(*, values: dict[str, Any], actor: Any, exclude_pk: int | None = None) -> None:
    """409 when another environment owns the port or endpoint name; the owner's project is named only
    to a caller who may see that project (otherwise "already in use": nothing leaks across projects)."""
    checks = []
    if values.get("local_port") is not None:
        checks.append(("local_port", "port", {"local_port": int(values["local_port"])}))
    if values.get("serving_endpoint"):
        checks.append(("serving_endpoint", "serving endpoint", {"serving_endpoint": values["serving_endpoint"]}))
    for _field, label, lookup in checks:
        owner = Environment.objects.filter(**lookup).exclude(pk=exclude_pk).select_related("project").first()
        if owner is None:
            continue
        what = f"{label} {next(iter(lookup.values()))}"
        if actor is not None and role_for(user=actor, project=owner.project) is not None:
            raise ResourceTaken(
                f"The {what} belongs to environment {owner.name!r} of project {owner.project.name!r}; "
                "choose another one."
            )
        raise ResourceTaken(f"The {what} is already in use; choose another one.")


def _save_owned(save: Any, *, values: dict[str, Any], actor: Any, exclude_pk: int | None) -> Any:
    """Run ``save`` in a savepoint; a unique-constraint race ends as the same 409 as the check before it."""
    _owner_check(values=values, actor=actor, exclude_pk=exclude_pk)
    try:
        with transaction.atomic():
            return save()
    except IntegrityError:
        _owner_check(values=values, actor=actor, exclude_pk=exclude_pk)
        raise


def environment_create(*, project: Project, actor: Any, name: str, **values: Any) -> Environment:
    name = (name or "").strip().lower()
    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise refusal("name", "A name is letters, digits, '-' or '_' (e.g. staging).")
    if Environment.objects.filter(project=project, name=name).exists():
        raise refusal("name", f"The project already has an environment named {name!r}.")
    values = _environment_clean({k: v for k, v in values.items() if k in ENV_FIELDS})
    values.setdefault("alias", name)
    values.setdefault("canary_stages", list(DEFAULT_STAGES))
    if values.get("serving_kind") == Environment.ServingKind.DATABRICKS and not values.get("serving_endpoint"):
        raise refusal("serving_endpoint", "A Databricks environment names its serving endpoint.")
    if values.get("serving_kind", "local") == Environment.ServingKind.LOCAL and not values.get("local_port"):
        raise refusal("local_port", "A local environment needs a port for its endpoint.")

    def save() -> Environment:
        environment = Environment.objects.create(project=project, name=name, **values)
        audit_record(actor=actor, action="environment.created", target=environment, project=project, data=values)
        return environment

    return _save_owned(save, values=values, actor=actor, exclude_pk=None)


def environment_update(*, environment: Environment, actor: Any, **values: Any) -> Environment:
    values = _environment_clean({k: v for k, v in values.items() if k in ENV_FIELDS})

    def save() -> Environment:
        for key, value in values.items():
            setattr(environment, key, value)
        environment.save(update_fields=list(values) or None)
        audit_record(
            actor=actor, action="environment.updated", target=environment, project=environment.project, data=values
        )
        return environment

    try:
        return _save_owned(save, values=values, actor=actor, exclude_pk=environment.pk)
    except ServiceError:
        environment.refresh_from_db()  # the refused values were set on the instance; drop them
        raise


def environments_ensure_default(*, project: Project, base_port: int | None = None) -> list[Environment]:
    """A local "staging" (alias ``staging``) and "production" (alias ``champion``, 2 stages) environment."""
    from django.conf import settings

    base = base_port or settings.LOCAL_SERVING_BASE_PORT
    defaults = [
        ("staging", {"alias": "staging", "canary_stages": [100]}),
        ("production", {"alias": "champion", "canary_stages": list(DEFAULT_STAGES)}),
    ]
    for _, values in defaults:
        values["soak_seconds"] = DEMO_SOAK_SECONDS
    out = []
    with transaction.atomic():
        # A port belongs to one environment: the first project gets base+1 and base+2, later ones the
        # next ports no environment owns.
        taken = set(Environment.objects.exclude(local_port=None).values_list("local_port", flat=True))
        port = base
        for name, values in defaults:
            environment = Environment.objects.filter(project=project, name=name).first()
            if environment is None:
                port += 1
                while port in taken:
                    port += 1
                taken.add(port)
                environment = Environment.objects.create(
                    project=project,
                    name=name,
                    local_port=port,
                    serving_kind=Environment.ServingKind.LOCAL,
                    **values,
                )
            out.append(environment)
    return out


# --- requests --------------------------------------------------------------------------------------


def promotion_request(
    *, actor: Any, model_version: ModelVersion, environment: Environment, reason: str
) -> PromotionRequest:
    """An engineer asks for ``model_version`` to go to ``environment``; the gate checklist is stored with it."""
    reason = (reason or "").strip()
    if not reason:
        raise refusal("reason", "Say why this version should be promoted.")
    if environment.project_id != model_version.project_id:
        raise refusal("environment", "The environment belongs to another project.")
    allowed = environment.project.registered_models()
    if model_version.registered_model not in allowed:
        # Model code is not anybody's: only versions of the project's own registered model(s) go live.
        raise refusal(
            "model_version",
            f"Only versions of this project's registered model ({', '.join(sorted(allowed))}) may be promoted."
            if allowed
            else "This project names no registered model; an admin sets it before versions are promoted.",
        )
    if environment.current_version_id == model_version.pk:
        raise Conflict(f"v{model_version.version} is already live on {environment.name}.")
    open_statuses = [Status.PENDING, Status.APPROVED, Status.ROLLING_OUT]
    existing = PromotionRequest.objects.filter(
        model_version=model_version, environment=environment, status__in=open_statuses
    ).first()
    if existing is not None:
        raise Conflict(
            f"Request #{existing.pk} for v{model_version.version} to {environment.name} is already open "
            f"({existing.get_status_display().lower()})."
        )
    report = gates_evaluate(model_version=model_version, environment=environment)
    with transaction.atomic():
        request = PromotionRequest.objects.create(
            project_id=model_version.project_id,
            model_version=model_version,
            environment=environment,
            requested_by=actor,
            reason=reason,
            gate_report=report.as_dict(),
        )
        audit_record(
            actor=actor,
            action="promotion.requested",
            target=request,
            project=request.project,
            data={"version": model_version.version, "environment": environment.name, "gates_passed": report.passed},
        )
        webhook_emit(event="requested", request=request)
    return request


def _locked(request_id: int) -> PromotionRequest:
    return (
        PromotionRequest.objects.select_for_update(of=("self",))
        .select_related("environment", "model_version", "project", "requested_by")
        .get(pk=request_id)
    )


def promotion_approve(
    *, actor: Any, request_id: int, comment: str = "", override_justification: str = ""
) -> PromotionRequest:
    """Approve; the last required approval queues the rollout. Refusals: own request, twice, failing gates."""
    override_justification = (override_justification or "").strip()
    with transaction.atomic():
        request = _locked(request_id)
        if request.status != Status.PENDING:
            raise Conflict(f"This request is {request.get_status_display().lower()}; it can no longer be approved.")
        if request.requested_by_id == actor.pk:
            raise PermissionDenied(
                "You requested this promotion, so you cannot approve it: another engineer must (two-person rule)."
            )
        if Approval.objects.filter(request=request, user=actor).exists():
            raise AlreadyApproved("You have already approved this request; another engineer must approve it too.")
        report = gates_evaluate(model_version=request.model_version, environment=request.environment)
        overriding = False
        if not report.passed:
            if not override_justification:
                raise GatesFailed(_gates_failed_message(request, report))
            if role_for(user=actor, project=request.project) != Role.ADMIN:
                raise PermissionDenied("Only an admin may override failing gates.")
            overriding = True
        elif override_justification and role_for(user=actor, project=request.project) != Role.ADMIN:
            raise PermissionDenied("Only an admin may override failing gates.")
        Approval.objects.create(
            request=request,
            user=actor,
            decision=Approval.Decision.APPROVE,
            comment=comment,
            gate_report=report.as_dict(),
        )
        request.gate_report = report.as_dict()
        fields = ["gate_report", "updated_at"]
        if overriding:
            request.override_justification = override_justification
            request.overridden_by = actor
            fields += ["override_justification", "overridden_by"]
        approvals = Approval.objects.filter(request=request, decision=Approval.Decision.APPROVE).count()
        final = approvals >= request.environment.required_approvals
        audit_record(
            actor=actor,
            action="promotion.override" if overriding else "promotion.approved",
            target=request,
            project=request.project,
            data={
                "comment": comment,
                "gates_passed": report.passed,
                "override_justification": override_justification if overriding else "",
                "approvals": approvals,
                "required": request.environment.required_approvals,
            },
        )
        if final:
            request.status = Status.APPROVED
            request.decided_at = timezone.now()
            fields += ["status", "decided_at"]
            environment = Environment.objects.select_for_update().get(pk=request.environment_id)
            rollout_create(
                request=request,
                environment=environment,
                to_version=request.model_version,
                from_version=environment.current_version,
                actor=actor,
            )
        request.save(update_fields=fields)
        webhook_emit(event="approved", request=request, approvals=approvals, final=final, override=overriding)
    return request


def _gates_failed_message(request: PromotionRequest, report: Any) -> str:
    """Which gates fail and why; "new evidence" only when they passed when the request was made."""
    failing = [line for line in report.lines if not line.passed]
    reasons = "; ".join(f"{line.title}: {line.detail}" if line.detail else line.title for line in failing)
    count = f"{len(failing)} gate{'s' if len(failing) != 1 else ''} fail{'' if len(failing) != 1 else 's'}"
    passed_before = bool((request.gate_report or {}).get("passed"))
    since = " They passed when the request was made; new evidence arrived since." if passed_before else ""
    return (
        f"Cannot approve: {count} ({reasons}).{since} An admin may still approve with a written override justification."
    )


def promotion_override(*, actor: Any, request_id: int, justification: str, comment: str = "") -> PromotionRequest:
    """An admin's approval despite failing gates; the written justification is required and audited."""
    if not (justification or "").strip():
        raise refusal("override_justification", "Write why the failing gates may be overridden.")
    return promotion_approve(actor=actor, request_id=request_id, comment=comment, override_justification=justification)


def promotion_reject(*, actor: Any, request_id: int, reason: str) -> PromotionRequest:
    reason = (reason or "").strip()
    if not reason:
        raise refusal("reason", "Say why the request is rejected.")
    with transaction.atomic():
        request = _locked(request_id)
        if request.status != Status.PENDING:
            raise Conflict(f"This request is {request.get_status_display().lower()}; it can no longer be rejected.")
        if Approval.objects.filter(request=request, user=actor).exists():
            raise AlreadyApproved("You have already decided on this request.")
        report = gates_evaluate(model_version=request.model_version, environment=request.environment)
        Approval.objects.create(
            request=request, user=actor, decision=Approval.Decision.REJECT, comment=reason, gate_report=report.as_dict()
        )
        request.status = Status.REJECTED
        request.decided_at = timezone.now()
        request.save(update_fields=["status", "decided_at", "updated_at"])
        audit_record(
            actor=actor, action="promotion.rejected", target=request, project=request.project, data={"reason": reason}
        )
        webhook_emit(event="rejected", request=request, reason=reason)
    return request


def promotion_cancel(*, actor: Any, request_id: int) -> PromotionRequest:
    with transaction.atomic():
        request = _locked(request_id)
        if request.status != Status.PENDING:
            raise Conflict(f"This request is {request.get_status_display().lower()}; it can no longer be cancelled.")
        if request.requested_by_id != actor.pk and role_for(user=actor, project=request.project) != Role.ADMIN:
            raise PermissionDenied("Only the requester or an admin may cancel a request.")
        request.status = Status.CANCELLED
        request.decided_at = timezone.now()
        request.save(update_fields=["status", "decided_at", "updated_at"])
        audit_record(actor=actor, action="promotion.cancelled", target=request, project=request.project)
    return request


def rollback_request(*, actor: Any, request_id: int, reason: str) -> Rollout:
    """Put the environment's previous version back (alias and traffic): a rollout of kind rollback.

    The written ``reason`` is required; it is kept on the rollout, audited and sent in the webhooks.
    """
    reason = (reason or "").strip()
    if not reason:
        raise refusal("reason", "Say why this version is rolled back: a rollback needs a written reason.")
    with transaction.atomic():
        request = _locked(request_id)
        environment = Environment.objects.select_for_update().get(pk=request.environment_id)
        if request.status != Status.LIVE or environment.current_version_id != request.model_version_id:
            raise Conflict("Only the version live on the environment now can be rolled back.")
        if environment.previous_version is None:
            raise Conflict(f"Nothing served on {environment.name} before v{request.model_version.version}.")
        rollout = rollout_create(
            request=request,
            environment=environment,
            to_version=environment.previous_version,
            from_version=environment.current_version,
            kind=Rollout.Kind.ROLLBACK,
            actor=actor,
            reason=reason,
        )
        audit_record(
            actor=actor,
            action="promotion.rollback_requested",
            target=request,
            project=request.project,
            data={"rollout": rollout.pk, "to_version": environment.previous_version.version, "reason": reason},
        )
        webhook_emit(event="rollback_requested", request=request, rollout=rollout, reason=reason)
    return rollout


def promotion_retry(*, actor: Any, request_id: int) -> Rollout:
    """Resume the request's last failed rollout from its failed step."""
    request = PromotionRequest.objects.select_related("project").get(pk=request_id)
    rollout = request.rollouts.order_by("-id").first()
    if rollout is None or rollout.status != Rollout.Status.FAILED:
        raise Conflict("There is no failed rollout to retry on this request.")
    return rollout_retry(rollout=rollout, actor=actor)
