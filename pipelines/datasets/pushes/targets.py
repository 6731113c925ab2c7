"""Delivery targets: a project's Delta tables and Unity Catalog tables, validated, with the feed switch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.utils.text import slugify

from pipelines.adapters import delta, outbound
from pipelines.models import DeliveryTarget, TargetKind
from pipelines.wiring import outbound_rules
from reviewapp.errors import Conflict, FieldError, ValidationFailed
from reviewapp.models import Project
from reviewapp.services.audit import audit_record
from reviewapp.typed_input import field_error
from reviewapp.usertypes import is_signed_in, signed_in

if TYPE_CHECKING:
    from reviewapp.usertypes import Actor

# --- targets -----------------------------------------------------------------------------------


def delta_default_uri(*, project: Project, name: str = "curated") -> str:
    """``DELTA_ROOT/<project slug>/<name>`` (DELTA_ROOT may itself be an object-store URI)."""
    return f"{settings.DELTA_ROOT.rstrip('/')}/{project.slug}/{slugify(name) or 'curated'}"


def target_validate(
    *, kind: str, target: str, field: str = "target", project: Project | None = None
) -> list[FieldError]:
    """Errors of a target: its form, then where it may be (DELTA_ALLOWED_ROOTS, UC_ALLOWED_SCHEMAS)."""
    from pipelines.adapters.unity_catalog import uc_name_validate

    if kind == TargetKind.DELTA:
        problem = delta.table_uri_validate(target) or outbound.delta_location_problem(target, rules=outbound_rules())
    elif kind == TargetKind.UNITY_CATALOG:
        problem = uc_name_validate(target)
        if problem is None and project is not None:
            problem = outbound.uc_schema_problem(rules=outbound_rules(), project_slug=project.slug, full_name=target)
    else:
        return [field_error("kind", "Choose delta or unity_catalog.")]
    return [field_error(field, problem)] if problem else []


class TargetTaken(Conflict):
    code = "target_in_use"


def _location_owner_check(*, project: Project, kind: str, target: str, user: Actor) -> None:
    """409 when another project's target is this table, or lies under it or above it: a table location
    belongs to one project. The owner is named only to a user who may see its project."""
    from reviewapp.selectors.projects import role_for

    others = DeliveryTarget.objects.filter(kind=kind).exclude(project=project).select_related("project")
    if kind == TargetKind.UNITY_CATALOG:
        clashes = [t for t in others if t.target.replace("`", "").lower() == target.replace("`", "").lower()]
    else:
        clashes = [t for t in others if outbound.locations_overlap(t.target, target)]
    if not clashes:
        return
    owner = clashes[0].project
    if is_signed_in(user) and role_for(user=user, project=owner) is not None:
        raise TargetTaken(f"This table location is used by a delivery target of project {owner.name!r}.")
    raise TargetTaken("This table location is already in use.")


def delivery_target_create(
    *, project: Project, kind: str, target: str = "", feed_enabled: bool = False, user: Actor
) -> DeliveryTarget:
    """A destination for the project's curated rows (blank Delta target: ``DELTA_ROOT/<slug>/curated``)."""
    target = (target or "").strip()
    if kind == TargetKind.DELTA and not target:
        target = delta_default_uri(project=project)
    errors = target_validate(kind=kind, target=target, project=project)
    if errors:
        raise ValidationFailed(errors)
    with transaction.atomic():
        _location_owner_check(project=project, kind=kind, target=target, user=user)
        found, created = DeliveryTarget.objects.get_or_create(
            project=project,
            kind=kind,
            target=target,
            defaults={"feed_enabled": feed_enabled, "created_by": signed_in(user)},
        )
        if not created and feed_enabled and not found.feed_enabled:
            found.feed_enabled = True
            found.save(update_fields=["feed_enabled"])
        if created:
            audit_record(
                actor=user,
                action="delivery_target.create",
                target=found,
                project=project,
                data={"kind": kind, "target": target, "feed_enabled": feed_enabled},
            )
    return found


def delivery_target_set_feed(*, delivery_target: DeliveryTarget, enabled: bool, user: Actor) -> DeliveryTarget:
    with transaction.atomic():
        delivery_target.feed_enabled = enabled
        delivery_target.save(update_fields=["feed_enabled"])
        audit_record(
            actor=user,
            action="delivery_target.feed",
            target=delivery_target,
            project=delivery_target.project,
            data={"enabled": enabled},
        )
    return delivery_target
