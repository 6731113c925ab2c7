from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from reviewapp.consensus import question_snapshot
from reviewapp.errors import FieldError, ValidationFailed
from reviewapp.jobs import job_closed_fields
from reviewapp.models import Item, Membership, Project, ProjectSync, Question, Review, Role, SchemaVersion
from reviewapp.models.projects import QueueMode
from reviewapp.services.assignments import project_queue_settings_set
from reviewapp.services.audit import audit_record
from reviewapp.services.project_sync import project_sync_start, project_sync_wait
from reviewapp.services.readonly import project_check_writable
from reviewapp.typed_input import TypedInput, field_error, refusal, says, struct_errors, value_convert
from reviewapp.usertypes import is_signed_in

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from reviewapp.usertypes import Actor

Kind = Question.Kind
# Runtime Literals of the model's choices (Any: mypy cannot read a Literal built from values).
QuestionKind: Any = Annotated[
    Literal.__getitem__(tuple(Kind.values)), says(f"Unknown kind; use one of {', '.join(Kind.values)}.")
]
RoleName: Any = Annotated[Literal.__getitem__(tuple(Role.values)), says(f"Use one of {', '.join(Role.values)}.")]
ReviewsPerItem = Annotated[int, msgspec.Meta(ge=1, le=20), says("Use 1 to 20.")]


def question_options_validate(*, kind: str, options: dict[str, Any], field: str = "options") -> dict[str, Any]:
    """Check a question's options for its kind; returns them with defaults filled in."""
    value_convert(kind, QuestionKind, field="kind", summary="The question is not valid.")
    errors: list[FieldError] = []
    opts = dict(options or {})
    if kind in (Kind.RATING, Kind.CONTEXT_RELEVANCE):
        default_lo, default_hi = (1, 5) if kind == Kind.RATING else (0, 2)
        lo, hi = opts.get("min", default_lo), opts.get("max", default_hi)
        if not (isinstance(lo, int) and isinstance(hi, int)) or lo >= hi or hi - lo > 10:
            errors.append(field_error(field, "min and max must be whole numbers, min < max, at most 10 apart."))
        opts.update(min=lo, max=hi)
    elif kind in (Kind.CHOICE, Kind.MULTI_CHOICE):
        choices = opts.get("choices")
        if not isinstance(choices, list) or len(choices) < 2 or len(set(map(str, choices))) != len(choices):
            errors.append(field_error(f"{field}.choices", "Give at least two distinct choices."))
        elif len(choices) > 9:
            errors.append(field_error(f"{field}.choices", "At most 9 choices (one per digit key)."))
    if errors:
        raise ValidationFailed(errors, "The question is not valid.")
    return opts


# --- setting a project up -------------------------------------------------------------------------

QueueModeName: Any = Annotated[
    Literal.__getitem__(tuple(QueueMode.values)), says(f"Use one of {', '.join(QueueMode.values)}.")
]


class ProjectFields(TypedInput):
    """A project's settings as a team writes them (the new-project page, POST and PATCH)."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200), says("Give a name of 1 to 200 characters.")]
    slug: Annotated[
        str,
        msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9-]{0,79}$"),
        says("Use 1 to 80 lowercase letters, digits and hyphens, starting with a letter or digit."),
    ]
    description: Annotated[str, msgspec.Meta(max_length=5000), says("At most 5000 characters.")] = ""
    guidelines: Annotated[str, msgspec.Meta(max_length=50000), says("At most 50000 characters.")] = ""
    reviews_per_item: ReviewsPerItem = 1
    queue_mode: QueueModeName = QueueMode.SHARED.value
    lease_seconds: Annotated[int, msgspec.Meta(ge=30, le=24 * 3600), says("Give 30 seconds to 24 hours.")] = 600
    gold_rate: Annotated[float, msgspec.Meta(ge=0.0, le=1.0), says("Give a share from 0 to 1.")] = 0.0
    show_model_to_reviewers: Annotated[bool, says("Give true or false.")] = False
    self_adjudication: Annotated[bool, says("Give true or false.")] = False


def _project_fields(data: Any) -> tuple[ProjectFields | None, list[FieldError]]:
    fields, errors = struct_errors(data, ProjectFields)
    # PostgreSQL text cannot hold NUL: refuse it here rather than fail at the database.
    nul = [
        field_error(name, "Remove the NUL character (\\u0000).")
        for name, value in (data.items() if isinstance(data, dict) else ())
        if name in ProjectFields.__struct_fields__ and isinstance(value, str) and "\x00" in value
    ]
    return (None if nul else fields), errors + nul


QUEUE_FIELDS = ("queue_mode", "gold_rate", "lease_seconds", "show_model_to_reviewers")
SETTINGS_FIELDS = tuple(f for f in ProjectFields.__struct_fields__ if f not in ("slug", "reviews_per_item"))


def project_setup(*, data: Any, actor: User) -> Project:
    """Create a project from a team's settings (checked first, every bad field reported at once);
    the creator becomes its admin. The caller checks ``may_create_projects``."""
    fields, errors = _project_fields(data)
    if fields is not None and Project.objects.filter(slug=fields.slug).exists():
        errors.append(field_error("slug", "A project with this slug exists; choose another."))
    if errors or fields is None:
        raise ValidationFailed(errors, "The project is not valid.")
    values = msgspec.structs.asdict(fields)
    return project_create(actor=actor, **values)


def project_update(*, project: Project, data: Any, actor: Actor = None) -> Project:
    """Change a project's settings (admins). Each changed field is in one audit event; a change of
    reviews per item starts a background sync (``project.sync``). The slug names the project in
    URLs and tokens, so it stays."""
    if isinstance(data, dict) and "slug" in data and data["slug"] != project.slug:
        raise refusal("slug", "The slug names the project in links and API calls; it cannot change.")
    project_check_writable(project)
    current = {name: getattr(project, name) for name in ProjectFields.__struct_fields__}
    merged = {**current, **data} if isinstance(data, dict) else data
    fields, errors = _project_fields(merged)
    if errors or fields is None:
        raise ValidationFailed(errors, "The project settings are not valid.")
    with transaction.atomic():
        locked = Project.objects.select_for_update().get(pk=project.pk)
        project_check_writable(locked)
        changed = {
            name: (getattr(locked, name), getattr(fields, name))
            for name in SETTINGS_FIELDS
            if getattr(locked, name) != getattr(fields, name)
        }
        # Queue settings and self-adjudication go through their own services (and audit events).
        queue = {name: new for name, (_old, new) in changed.items() if name in QUEUE_FIELDS}
        if queue:
            locked = project_queue_settings_set(project=locked, actor=actor, **queue)
        if "self_adjudication" in changed:
            locked = project_set_self_adjudication(project=locked, allowed=fields.self_adjudication, actor=actor)
        rest = {name: change for name, change in changed.items() if name not in (*QUEUE_FIELDS, "self_adjudication")}
        if rest:
            for name, (_old, new) in rest.items():
                setattr(locked, name, new)
            locked.save(update_fields=list(rest))
            audit_record(
                actor=actor,
                action="project.update",
                target=locked,
                project=locked,
                data={"changed": {name: {"from": old, "to": new} for name, (old, new) in rest.items()}},
            )
        locked.sync = None  # type: ignore[attr-defined]
        if fields.reviews_per_item != locked.reviews_per_item:
            locked = project_set_reviews_per_item(project=locked, reviews_per_item=fields.reviews_per_item, actor=actor)
    return locked


def project_archive(*, project: Project, actor: Actor = None) -> Project:
    """Make the project read-only and hide it from lists and queues; a lease in flight can no longer
    be submitted, and an unfinished sync stops (restoring starts a new one)."""
    with transaction.atomic():
        locked = Project.objects.select_for_update().get(pk=project.pk)
        if locked.archived_at is not None:
            return locked
        locked.archived_at = timezone.now()
        locked.save(update_fields=["archived_at"])
        ProjectSync.objects.filter(project=locked, status__in=ProjectSync.ACTIVE).update(
            **job_closed_fields(ProjectSync, ProjectSync.Status.SUPERSEDED)
        )
        audit_record(actor=actor, action="project.archive", target=locked, project=locked)
    return locked


def project_restore(*, project: Project, actor: Actor = None) -> Project:
    """Undo an archive: the project is writable and listed again. Its slots follow its settings
    again through a sync (one may have been cut short by the archive)."""
    with transaction.atomic():
        locked = Project.objects.select_for_update().get(pk=project.pk)
        if locked.archived_at is None:
            return locked
        locked.archived_at = None
        locked.save(update_fields=["archived_at"])
        audit_record(actor=actor, action="project.restore", target=locked, project=locked)
        if Item.objects.filter(project=locked).exists():
            project_sync_start(project=locked, reason=ProjectSync.Reason.REVIEWS_PER_ITEM, actor=actor)
    return locked


def project_create(*, name: str, slug: str, actor: Actor = None, **fields: Any) -> Project:
    with transaction.atomic():
        project = Project(name=name, slug=slug, **fields)
        project.full_clean()
        project.save()
        if is_signed_in(actor):
            Membership.objects.create(project=project, user=actor, role=Role.ADMIN)
        audit_record(actor=actor, action="project.create", target=project, project=project)
    return project


def question_create(
    *, project: Project, key: str, title: str, kind: str, actor: Actor = None, **fields: Any
) -> Question:
    """Add a question; once the current schema version has reviews, this starts a new version."""
    project_check_writable(project)
    options = question_options_validate(kind=kind, options=fields.pop("options", {}))
    with transaction.atomic():
        locked = _schema_lock(project)
        order = fields.pop("order", None)
        if order is None:
            order = (Question.objects.filter(project=project).aggregate(m=Max("order"))["m"] or 0) + 1
        question = Question(project=locked, key=key, title=title, kind=kind, options=options, order=order, **fields)
        _full_clean(question)
        question.save()
        _schema_changed(project=project, locked=locked, actor=actor, answers_change=True)
        audit_record(
            actor=actor,
            action="question.create",
            target=question,
            project=locked,
            data={"key": key, "schema_version": locked.schema_version},
        )
    return question


# Changing one of these changes what a review answers: once the current schema version has reviews,
# the change starts a new version (old reviews keep theirs). Order and the consensus rule only change
# presentation and how answers combine, so they edit the current version in place.
ANSWER_FIELDS = ("title", "instructions", "kind", "assessment_type", "required", "options")
EDITABLE_FIELDS = (*ANSWER_FIELDS, "order", "consensus_rule", "max_spread")


def question_update(*, question: Question, actor: Actor = None, **fields: Any) -> Question:
    """Change a question's fields (not its key: answers are stored under it; add a new question instead)."""
    errors: list[FieldError] = [
        field_error(
            name,
            "The key names the stored answers; add a new question instead."
            if name == "key"
            else "No such question field.",
        )
        for name in fields
        if name not in EDITABLE_FIELDS
    ]
    if errors:
        raise ValidationFailed(errors, "The question cannot be changed like that.")
    project_check_writable(question.project)
    with transaction.atomic():
        locked = _schema_lock(question.project)
        current = Question.objects.select_for_update().get(pk=question.pk)
        kind = fields.get("kind", current.kind)
        if "kind" in fields or "options" in fields:
            fields["options"] = question_options_validate(kind=kind, options=fields.get("options", current.options))
        if "kind" in fields and "consensus_rule" not in fields and current.consensus_rule:
            fields["consensus_rule"] = ""  # the old kind's rule may not fit: back to the new kind's default
        changed = {
            name: (getattr(current, name), value) for name, value in fields.items() if getattr(current, name) != value
        }
        if not changed:
            return current
        for name, (_old, value) in changed.items():
            setattr(current, name, value)
        _full_clean(current)
        current.save(update_fields=list(changed))
        _schema_changed(
            project=question.project, locked=locked, actor=actor, answers_change=bool(set(changed) & set(ANSWER_FIELDS))
        )
        audit_record(
            actor=actor,
            action="question.update",
            target=current,
            project=locked,
            data={
                "key": current.key,
                "changed": {name: {"from": old, "to": new} for name, (old, new) in changed.items()},
                "schema_version": locked.schema_version,
            },
        )
        if {"consensus_rule", "max_spread"} & set(changed) and Item.objects.filter(project=locked).exists():
            # Labels already combined by the old rule follow the new one, in the background.
            project_sync_start(project=locked, reason=ProjectSync.Reason.CONSENSUS, actor=actor)
    return current


def question_delete(*, question: Question, actor: Actor = None) -> int:
    """Remove a question; reviews keep their answers to it, under the version they answered.

    Returns the project's schema version afterwards.
    """
    project_check_writable(question.project)
    with transaction.atomic():
        locked = _schema_lock(question.project)
        key, pk = question.key, question.pk
        deleted, _ = Question.objects.filter(pk=pk, project=locked).delete()
        if not deleted:
            raise ValidationFailed([field_error("key", "No such question.")])
        _schema_changed(project=question.project, locked=locked, actor=actor, answers_change=True)
        audit_record(
            actor=actor,
            action="question.delete",
            target=locked,
            project=locked,
            data={"key": key, "question": pk, "schema_version": locked.schema_version},
        )
    return locked.schema_version


def _full_clean(question: Question) -> None:
    try:
        question.full_clean()
    except DjangoValidationError as exc:
        errors: list[FieldError] = [
            field_error("" if name == NON_FIELD_ERRORS else name, message)
            for name, messages in exc.message_dict.items()
            for message in messages
        ]
        raise ValidationFailed(errors, "The question is not valid.") from None


def _schema_lock(project: Project) -> Project:
    """Lock the project row, and snapshot its current version before its questions change.

    Projects from before versions were recorded get their snapshot here, so the questions their
    reviews answered are kept when the first change starts a new version.
    """
    locked = Project.objects.select_for_update().get(pk=project.pk)
    if not SchemaVersion.objects.filter(project=locked, version=locked.schema_version).exists():
        _schema_snapshot(locked)
    return locked


def _schema_changed(*, project: Project, locked: Project, actor: Actor, answers_change: bool) -> None:
    """After a question change: start a new version if the current one has reviews, then snapshot."""
    if answers_change and Review.objects.filter(project=locked, schema_version=locked.schema_version).exists():
        old = locked.schema_version
        locked.schema_version = old + 1
        locked.save(update_fields=["schema_version"])
        audit_record(
            actor=actor, action="schema.version", target=locked, project=locked, data={"from": old, "to": old + 1}
        )
    _schema_snapshot(locked)
    project.schema_version = locked.schema_version  # the caller's object follows


def _schema_snapshot(project: Project) -> None:
    questions = [question_snapshot(q) for q in Question.objects.filter(project=project).order_by("order", "id")]
    SchemaVersion.objects.update_or_create(
        project=project, version=project.schema_version, defaults={"questions": questions}
    )


def membership_set(*, project: Project, user: User, role: str, actor: Actor = None) -> Membership:
    value_convert(role, RoleName, field="role")
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


def project_set_reviews_per_item(
    *, project: Project, reviews_per_item: int, actor: Actor = None, wait: bool = False
) -> Project:
    """Change how many reviews each item needs. The items' slots and curated labels follow in a
    background ProjectSync (services.project_sync), never inside the request; ``wait`` runs that sync
    in this process (management commands, fixtures). ``project.sync`` is the sync started, or None."""
    value_convert(reviews_per_item, ReviewsPerItem, field="reviews_per_item")
    project_check_writable(project)
    with transaction.atomic():
        locked = Project.objects.select_for_update().get(pk=project.pk)
        project_check_writable(locked)
        old = locked.reviews_per_item
        sync = None
        if old != reviews_per_item:
            locked.reviews_per_item = reviews_per_item
            locked.save(update_fields=["reviews_per_item"])
            audit_record(
                actor=actor,
                action="project.reviews_per_item",
                target=locked,
                project=locked,
                data={"from": old, "to": reviews_per_item},
            )
            if Item.objects.filter(project=locked).exists():
                sync = project_sync_start(project=locked, reason=ProjectSync.Reason.REVIEWS_PER_ITEM, actor=actor)
    if sync is not None and wait:
        project_sync_wait(sync)
    locked.sync = sync  # type: ignore[attr-defined]
    return locked


def project_set_self_adjudication(*, project: Project, allowed: bool, actor: Actor = None) -> Project:
    """Allow (or forbid) curators to decide items they reviewed themselves; recorded in the audit log."""
    project_check_writable(project)
    with transaction.atomic():
        old = project.self_adjudication
        if old == allowed:
            return project
        project.self_adjudication = allowed
        project.save(update_fields=["self_adjudication"])
        audit_record(
            actor=actor,
            action="project.self_adjudication",
            target=project,
            project=project,
            data={"from": old, "to": allowed},
        )
    return project


def project_creation_allow(*, user: User, allowed: bool, actor: Actor = None) -> bool:
    """Let ``user`` create projects (or no longer): the Project model's ``add_project`` permission,
    granted by an instance admin (``manage.py allow_project_creation``). Returns whether it changed."""
    from django.contrib.auth.models import Permission

    permission = Permission.objects.get(content_type__app_label="reviewapp", codename="add_project")
    with transaction.atomic():
        has = user.user_permissions.filter(pk=permission.pk).exists()
        if has == allowed:
            return False
        if allowed:
            user.user_permissions.add(permission)
        else:
            user.user_permissions.remove(permission)
        audit_record(
            actor=actor, action="user.project_creation", target=user, data={"user": user.pk, "allowed": allowed}
        )
    return True
