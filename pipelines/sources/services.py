"""Creating, changing and deleting sources (validated per kind, audited)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec
from django.db import IntegrityError, transaction

from evaluations.models import Suite
from pipelines.models import Source, SourceKind
from pipelines.sources.config import mapping_validate, settings_validate
from pipelines.sources.sampling import rules_stored, rules_validate
from reviewapp.errors import FieldError, ValidationFailed
from reviewapp.models import Project
from reviewapp.services.audit import audit_record
from reviewapp.typed_input import field_error
from reviewapp.usertypes import signed_in

if TYPE_CHECKING:
    from reviewapp.usertypes import Actor

MIN_INTERVAL_SECONDS = 10
MAX_INTERVAL_SECONDS = 7 * 24 * 3600
NAME_MAX = 100
MAX_JUDGE_CALLS_PER_HOUR = 1_000_000
EDITABLE = (
    "name",
    "settings",
    "column_mapping",
    "rules",
    "interval_seconds",
    "enabled",
    "suite",
    "judge_calls_per_hour",
)


def _clean(project: Project, values: dict[str, Any], *, instance: Source | None) -> dict[str, Any]:
    """Every field checked at once; ValidationFailed lists each bad one."""
    errors: list[FieldError] = []
    out: dict[str, Any] = {}
    kind = values.get("kind", instance.kind if instance else None)
    if instance is None and kind not in SourceKind.values:
        errors.append(field_error("kind", f"The kind of source is one of: {', '.join(SourceKind.values)}."))
    if "name" in values or instance is None:
        name = values.get("name")
        if not isinstance(name, str) or not name.strip() or len(name.strip()) > NAME_MAX:
            errors.append(field_error("name", f"Give the source a name (1 to {NAME_MAX} characters)."))
        else:
            name = name.strip()
            clash = Source.objects.filter(project=project, name=name)
            if instance is not None:
                clash = clash.exclude(pk=instance.pk)
            if clash.exists():
                errors.append(field_error("name", f"This project already has a source named {name!r}."))
            out["name"] = name
    if "interval_seconds" in values:
        interval = values["interval_seconds"]
        if (
            not isinstance(interval, int)
            or isinstance(interval, bool)
            or not (MIN_INTERVAL_SECONDS <= interval <= MAX_INTERVAL_SECONDS)
        ):
            errors.append(
                field_error(
                    "interval_seconds",
                    f"The interval is a whole number of seconds from {MIN_INTERVAL_SECONDS} to {MAX_INTERVAL_SECONDS}.",
                )
            )
        else:
            out["interval_seconds"] = interval
    if "enabled" in values:
        if not isinstance(values["enabled"], bool):
            errors.append(field_error("enabled", "enabled is true or false."))
        else:
            out["enabled"] = values["enabled"]
    if "suite" in values:
        suite = values["suite"]
        if suite in (None, ""):
            out["suite"] = None
        elif (
            not isinstance(suite, int)
            or isinstance(suite, bool)
            or (found_suite := Suite.objects.filter(project=project, pk=suite).first()) is None
        ):
            errors.append(field_error("suite", "Name a suite of this project by its id, or null for none."))
        else:
            out["suite"] = found_suite
    if "judge_calls_per_hour" in values:
        budget = values["judge_calls_per_hour"]
        if not isinstance(budget, int) or isinstance(budget, bool) or not (0 <= budget <= MAX_JUDGE_CALLS_PER_HOUR):
            message = f"The judge budget is a whole number of calls per hour from 0 to {MAX_JUDGE_CALLS_PER_HOUR}."
            errors.append(field_error("judge_calls_per_hour", message))
        else:
            out["judge_calls_per_hour"] = budget
    if kind in SourceKind.values:
        if "settings" in values or instance is None:
            parsed, found = settings_validate(kind, values.get("settings") or {})
            errors.extend(found)
            if parsed is not None and not found:
                out["settings"] = msgspec.to_builtins(parsed)
        if "column_mapping" in values or instance is None:
            mapping, found = mapping_validate(kind, values.get("column_mapping") or {})
            errors.extend(found)
            if not found:
                out["column_mapping"] = (
                    {k: v for k, v in msgspec.to_builtins(mapping).items() if v not in (None, [])} if mapping else {}
                )
    if "rules" in values:
        rules, found = rules_validate(values["rules"])
        errors.extend(found)
        if not found:
            out["rules"] = rules_stored(rules)
    if errors:
        raise ValidationFailed(errors, f"{len(errors)} field(s) of the source are not valid.")
    return out


def source_create(*, project: Project, values: dict[str, Any], actor: Actor) -> Source:
    """A new source of the project; ``values``: name, kind, settings, column_mapping, rules,
    interval_seconds, enabled. Raises ValidationFailed naming every bad field."""
    cleaned = _clean(project, values, instance=None)
    try:
        with transaction.atomic():
            source = Source.objects.create(project=project, kind=values["kind"], created_by=signed_in(actor), **cleaned)
            audit_record(
                actor=actor,
                action="source.create",
                target=source,
                project=project,
                data={"name": source.name, "kind": source.kind, "rules": source.rules, "suite": source.suite_id},
            )
    except IntegrityError:  # a concurrent create of the same name
        raise ValidationFailed([field_error("name", "This project already has a source of that name.")]) from None
    return source


def source_update(*, source: Source, values: dict[str, Any], actor: Actor) -> Source:
    """Change some of a source's fields (its kind stays). Changing settings or the mapping keeps the
    watermark: reading goes on from where it was (set ``reset_watermark`` to read from the start)."""
    if "kind" in values and values["kind"] != source.kind:
        raise ValidationFailed([field_error("kind", "A source's kind cannot change; create another source.")])
    unknown = set(values) - set(EDITABLE) - {"kind", "reset_watermark"}
    if unknown:
        raise ValidationFailed([field_error(name, "Unknown field.") for name in sorted(unknown)])
    cleaned = _clean(source.project, {k: v for k, v in values.items() if k != "reset_watermark"}, instance=source)
    if values.get("reset_watermark") is True:
        cleaned["watermark"] = {}
    with transaction.atomic():
        changed = {k: v for k, v in cleaned.items() if getattr(source, k) != v}
        for name, value in changed.items():
            setattr(source, name, value)
        if changed:
            source.save(update_fields=[*changed, "updated_at"])
            audit_record(
                actor=actor,
                action="source.update",
                target=source,
                project=source.project,
                data={"changed": sorted(changed), "rules": source.rules},
            )
    return source


def source_delete(*, source: Source, actor: Actor) -> None:
    """Delete the source, its pulls and its records of which rule took which item (the items stay)."""
    with transaction.atomic():
        audit_record(
            actor=actor,
            action="source.delete",
            target=source,
            project=source.project,
            data={"name": source.name, "kind": source.kind},
        )
        source.delete()
