from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import Count, Max

from reviewapp.errors import FieldError, ValidationFailed
from reviewapp.models import Assignment, Item, Membership, Project, Question, Review, Role
from reviewapp.services.audit import audit_record

Kind = Question.Kind


def question_options_validate(*, kind: str, options: dict[str, Any], field: str = "options") -> dict[str, Any]:
    """Check a question's options for its kind; returns them with defaults filled in."""
    errors: list[FieldError] = []
    opts = dict(options or {})
    if kind not in Kind.values:
        errors.append(
            {"index": None, "field": "kind", "message": f"Unknown kind; use one of {', '.join(Kind.values)}."}
        )
    elif kind in (Kind.RATING, Kind.CONTEXT_RELEVANCE):
        default_lo, default_hi = (1, 5) if kind == Kind.RATING else (0, 2)
        lo, hi = opts.get("min", default_lo), opts.get("max", default_hi)
        if not (isinstance(lo, int) and isinstance(hi, int)) or lo >= hi or hi - lo > 10:
            errors.append(
                {
                    "index": None,
                    "field": field,
                    "message": "min and max must be whole numbers, min < max, at most 10 apart.",
                }
            )
        opts.update(min=lo, max=hi)
    elif kind in (Kind.CHOICE, Kind.MULTI_CHOICE):
        choices = opts.get("choices")
        if not isinstance(choices, list) or len(choices) < 2 or len(set(map(str, choices))) != len(choices):
            errors.append(
                {"index": None, "field": f"{field}.choices", "message": "Give at least two distinct choices."}
            )
        elif len(choices) > 9:
            errors.append(
                {"index": None, "field": f"{field}.choices", "message": "At most 9 choices (one per digit key)."}
            )
    if errors:
        raise ValidationFailed(errors, "The question is not valid.")
    return opts


def project_create(*, name: str, slug: str, actor: Any = None, **fields: Any) -> Project:
    with transaction.atomic():
        project = Project(name=name, slug=slug, **fields)
        project.full_clean()
        project.save()
        if actor is not None and getattr(actor, "is_authenticated", False):
            Membership.objects.create(project=project, user=actor, role=Role.ADMIN)
        audit_record(actor=actor, action="project.create", target=project, project=project)
    return project


def question_create(*, project: Project, key: str, title: str, kind: str, actor: Any = None, **fields: Any) -> Question:
    options = question_options_validate(kind=kind, options=fields.pop("options", {}))
    with transaction.atomic():
        order = fields.pop("order", None)
        if order is None:
            order = (Question.objects.filter(project=project).aggregate(m=Max("order"))["m"] or 0) + 1
        question = Question(project=project, key=key, title=title, kind=kind, options=options, order=order, **fields)
        question.full_clean()
        question.save()
        if Review.objects.filter(project=project).exists():
            # Old reviews keep the schema version they answered.
            Project.objects.filter(pk=project.pk).update(schema_version=project.schema_version + 1)
            project.schema_version += 1
        audit_record(actor=actor, action="question.create", target=question, project=project)
    return question


def membership_set(*, project: Project, user: Any, role: str, actor: Any = None) -> Membership:
    if role not in Role.values:
        raise ValidationFailed([{"index": None, "field": "role", "message": f"Use one of {', '.join(Role.values)}."}])
    with transaction.atomic():
        membership, _ = Membership.objects.update_or_create(project=project, user=user, defaults={"role": role})
        audit_record(
            actor=actor,
            action="membership.set",
            target=membership,
            project=project,
            data={"user": user.pk, "role": role},
        )
    return membership


def project_set_reviews_per_item(*, project: Project, reviews_per_item: int, actor: Any = None) -> Project:
    """Change how many reviews each item needs, adding or removing free slots to match."""
    if not 1 <= reviews_per_item <= 20:
        raise ValidationFailed([{"index": None, "field": "reviews_per_item", "message": "Use 1 to 20."}])
    with transaction.atomic():
        project = Project.objects.select_for_update().get(pk=project.pk)
        old = project.reviews_per_item
        project.reviews_per_item = reviews_per_item
        project.save(update_fields=["reviews_per_item"])
        if reviews_per_item > old:
            counts = dict(
                Assignment.objects.filter(project=project)
                .values("item_id")
                .annotate(n=Count("id"))
                .values_list("item_id", "n")
            )
            new_slots = [
                Assignment(project=project, item_id=item_id, slot=slot)
                for item_id in Item.objects.filter(project=project).values_list("id", flat=True)
                for slot in range(counts.get(item_id, 0), reviews_per_item)
            ]
            Assignment.objects.bulk_create(new_slots, batch_size=2000)
        elif reviews_per_item < old:
            # Only free, unleased slots go; filled and held ones stay.
            Assignment.objects.filter(
                project=project, slot__gte=reviews_per_item, submitted_at__isnull=True, reviewer__isnull=True
            ).delete()
        audit_record(
            actor=actor,
            action="project.reviews_per_item",
            target=project,
            project=project,
            data={"from": old, "to": reviews_per_item},
        )
    return project
