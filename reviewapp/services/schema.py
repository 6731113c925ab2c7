"""Label schemas as a whole: read one out, apply one declaratively, compare two versions.

A schema document is ``{"questions": [...]}`` (what ``schema_export`` gives, plus the ``project`` and
``schema_version`` it was read from). ``schema_apply`` makes the project's questions equal to the
document through the question services (``question_create``/``update``/``delete``), so versioning,
snapshots and the audit log behave as they do for one change: an edit after reviews exist starts a
new schema version, once. A document equal to the current schema writes nothing (no version, no
audit event), so a team may apply its file from CI on every push. A bad document is refused whole,
every problem named as ``{index, field, message}`` (index: the question's position).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from django.db import transaction

from reviewapp.errors import FieldError, ValidationFailed
from reviewapp.models import Project, Question
from reviewapp.models.projects import CONSENSUS_DEFAULTS, CONSENSUS_RULES
from reviewapp.services.audit import audit_record
from reviewapp.services.projects import (
    QuestionKind,
    question_create,
    question_delete,
    question_options_validate,
    question_update,
)
from reviewapp.typed_input import TypedInput, field_error, says, struct_errors

if TYPE_CHECKING:
    from reviewapp.usertypes import Actor

Kind = Question.Kind
MAX_QUESTIONS = 50
# The fields a document gives per question, in the order an export writes them.
SPEC_FIELDS = (
    "key",
    "title",
    "kind",
    "instructions",
    "assessment_type",
    "required",
    "options",
    "consensus_rule",
    "max_spread",
)
# Expected responses and facts are ground truth (MLflow: expectations); everything else judges the output.
EXPECTATION_KINDS = frozenset({Kind.EXPECTED_RESPONSE, Kind.EXPECTED_FACTS})


class QuestionIn(TypedInput):
    """One question of a schema document; ``order`` is its position in the list."""

    key: Annotated[
        str,
        msgspec.Meta(pattern=r"^[-a-zA-Z0-9_]{1,64}$"),
        says("Give a key of 1 to 64 letters, digits, - or _ (it names the stored answers)."),
    ]
    title: Annotated[str, msgspec.Meta(pattern=r"\S", max_length=200), says("Give a title (at most 200 characters).")]
    kind: QuestionKind
    instructions: Annotated[str, msgspec.Meta(max_length=5000), says("At most 5000 characters of help text.")] = ""
    assessment_type: Annotated[Literal["feedback", "expectation"] | None, says("Use feedback or expectation.")] = None
    required: Annotated[bool, says("Use true or false.")] = True
    options: Annotated[dict[str, Any], says("Give an object (min/max/labels, or choices).")] = msgspec.field(
        default_factory=dict
    )
    consensus_rule: Annotated[str | None, says("Give the name of a consensus rule.")] = None
    max_spread: Annotated[int, msgspec.Meta(ge=0, le=10), says("Use a whole number from 0 to 10.")] = 1


class SchemaIn(TypedInput):
    questions: Annotated[list[Any], says("Give the list of questions.")]
    # What an export carries besides the questions: a file read back as it was written is accepted.
    project: Annotated[str | None, says("Give the project's slug.")] = None
    schema_version: Annotated[int | None, says("A version number (informational; ignored).")] = None


@dataclass(frozen=True)
class QuestionSpec:
    """A checked question of a document, defaults resolved (what the question row should hold)."""

    key: str
    title: str
    kind: str
    instructions: str
    assessment_type: str
    required: bool
    options: dict[str, Any]
    consensus_rule: str  # "" means the kind's default
    max_spread: int

    def fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in SPEC_FIELDS if name != "key"}


def question_spec_of(question: Question | dict[str, Any]) -> dict[str, Any]:
    """A question (a row or a version's snapshot) as a document's entry, every field explicit."""
    get = question.get if isinstance(question, dict) else lambda name, default=None: getattr(question, name)
    kind = str(get("kind", ""))
    rule = str(get("consensus_rule", "") or "") or CONSENSUS_DEFAULTS.get(kind, "unanimous")
    return {
        "key": get("key", ""),
        "title": get("title", ""),
        "kind": kind,
        "instructions": get("instructions", "") or "",
        "assessment_type": get("assessment_type", "feedback"),
        "required": bool(get("required", True)),
        "options": dict(get("options", {}) or {}),
        "consensus_rule": rule,
        "max_spread": int(get("max_spread", 1) if get("max_spread", 1) is not None else 1),
    }


def schema_export(*, project: Project) -> dict[str, Any]:
    """The project's current schema as a document (the questions in order, every field explicit)."""
    questions = Question.objects.filter(project=project).order_by("order", "id")
    return {
        "project": project.slug,
        "schema_version": project.schema_version,
        "questions": [question_spec_of(q) for q in questions],
    }


def schema_parse(raw: Any, *, project: Project | None = None) -> list[QuestionSpec]:
    """A schema document checked whole: the questions it asks for, or ValidationFailed with every problem."""
    doc, errors = struct_errors(raw, SchemaIn)
    if doc is None:
        raise ValidationFailed(errors, "The schema is not valid.")
    if project is not None and doc.project not in (None, project.slug):
        errors.append(
            field_error(
                "project",
                f"This document is the schema of {doc.project!r}, not {project.slug!r}: "
                "change or remove its project line to apply it here.",
            )
        )
    if not doc.questions:
        # Most likely a truncated file in CI: refuse it rather than remove every question.
        errors.append(field_error("questions", "Give at least one question."))
    if len(doc.questions) > MAX_QUESTIONS:
        errors.append(field_error("questions", f"At most {MAX_QUESTIONS} questions."))
    specs: list[QuestionSpec] = []
    first_seen: dict[str, int] = {}
    for index, entry in enumerate(doc.questions):
        parsed, problems = struct_errors(entry, QuestionIn, index=index)
        errors.extend(problems)
        if parsed is None or problems:
            continue
        spec = _spec(parsed, index=index, errors=errors)
        if parsed.key in first_seen:
            errors.append(field_error("key", f"Duplicate of question {first_seen[parsed.key]}'s key.", index))
        first_seen.setdefault(parsed.key, index)
        if spec is not None:
            specs.append(spec)
    if errors:
        raise ValidationFailed(errors, "The schema is not valid.")
    return specs


def _spec(parsed: QuestionIn, *, index: int, errors: list[FieldError]) -> QuestionSpec | None:
    try:
        options = question_options_validate(kind=parsed.kind, options=parsed.options)
    except ValidationFailed as exc:
        errors.extend(field_error(e["field"], e["message"], index) for e in exc.errors)
        return None
    rule = parsed.consensus_rule or ""
    allowed = CONSENSUS_RULES.get(parsed.kind, frozenset())
    if rule and rule not in allowed:
        names = ", ".join(sorted(allowed))
        errors.append(field_error("consensus_rule", f"A {parsed.kind} question combines by one of: {names}.", index))
        return None
    if rule == CONSENSUS_DEFAULTS.get(parsed.kind):
        rule = ""  # the default, stored as such: it follows the kind
    assessment = parsed.assessment_type or ("expectation" if parsed.kind in EXPECTATION_KINDS else "feedback")
    return QuestionSpec(
        key=parsed.key,
        title=parsed.title.strip(),
        kind=parsed.kind,
        instructions=parsed.instructions,
        assessment_type=assessment,
        required=parsed.required,
        options=options,
        consensus_rule=rule,
        max_spread=parsed.max_spread,
    )


def _normalised(question: Question) -> dict[str, Any]:
    """A stored question as a spec's fields, so equal meaning compares equal (defaults filled in)."""
    try:
        options = question_options_validate(kind=question.kind, options=question.options)
    except ValidationFailed:
        options = dict(question.options or {})
    rule = question.consensus_rule if question.consensus_rule != CONSENSUS_DEFAULTS.get(question.kind) else ""
    return {
        "title": question.title,
        "kind": question.kind,
        "instructions": question.instructions,
        "assessment_type": question.assessment_type,
        "required": question.required,
        "options": options,
        "consensus_rule": rule,
        "max_spread": question.max_spread,
    }


@dataclass
class SchemaApplyResult:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    reordered: bool = False
    version_before: int = 0
    version_after: int = 0

    @property
    def unchanged(self) -> bool:
        return not (self.added or self.removed or self.changed or self.reordered)

    @property
    def new_version(self) -> bool:
        return self.version_after != self.version_before


def schema_apply(*, project: Project, raw: Any, actor: Actor = None) -> SchemaApplyResult:
    """Make the project's questions what the document says (see the module docstring)."""
    specs = schema_parse(raw, project=project)
    return schema_apply_specs(project=project, specs=specs, actor=actor)


def schema_apply_specs(*, project: Project, specs: list[QuestionSpec], actor: Actor = None) -> SchemaApplyResult:
    """Apply checked questions in one transaction: any refusal on the way leaves everything as it was."""
    with transaction.atomic():
        locked = Project.objects.select_for_update().get(pk=project.pk)
        result = SchemaApplyResult(version_before=locked.schema_version)
        current = {q.key: q for q in Question.objects.filter(project=locked).order_by("order", "id")}
        wanted_keys = [s.key for s in specs]
        for key in [k for k in current if k not in set(wanted_keys)]:
            question_delete(question=current.pop(key), actor=actor)
            result.removed.append(key)
        positions = _positions(wanted_keys, current)
        for spec in specs:
            order = positions[spec.key]
            existing = current.get(spec.key)
            if existing is None:
                question_create(project=locked, key=spec.key, order=order, actor=actor, **spec.fields())
                result.added.append(spec.key)
                continue
            before = _normalised(existing)
            changes = {name: value for name, value in spec.fields().items() if before[name] != value}
            if existing.order != order:
                changes["order"] = order
                result.reordered = True
            if not changes:
                continue
            question_update(question=existing, actor=actor, **changes)
            if set(changes) - {"order"}:
                result.changed.append(spec.key)
        locked.refresh_from_db(fields=["schema_version"])
        result.version_after = locked.schema_version
        if not result.unchanged:
            audit_record(
                actor=actor,
                action="schema.apply",
                target=locked,
                project=locked,
                data={
                    "added": result.added,
                    "removed": result.removed,
                    "changed": result.changed,
                    "reordered": result.reordered,
                    "schema_version": result.version_after,
                },
            )
    project.schema_version = result.version_after
    return result


def _positions(wanted: list[str], current: dict[str, Question]) -> dict[str, int]:
    """Each wanted key's ``order``: the stored ones stay when the document keeps their sequence and
    only appends (so an exported file applies as a no-op); otherwise every question is renumbered 1..n."""
    kept = [k for k in wanted if k in current]
    new = [k for k in wanted if k not in current]
    orders = [current[k].order for k in current]
    in_place = (
        kept == list(current)
        and wanted[: len(kept)] == kept  # new questions only after the existing ones
        and len(set(orders)) == len(orders)  # ties are ordered by id: make the order explicit
    )
    if not in_place:
        return {k: i + 1 for i, k in enumerate(wanted)}
    base = max(orders, default=0)
    return {**{k: current[k].order for k in kept}, **{k: base + i + 1 for i, k in enumerate(new)}}


# --- comparing versions ---------------------------------------------------------------------


@dataclass(frozen=True)
class FieldChange:
    field: str
    old: Any
    new: Any


@dataclass(frozen=True)
class QuestionChange:
    key: str
    title: str
    changes: list[FieldChange]


@dataclass(frozen=True)
class SchemaDiff:
    added: list[dict[str, Any]]
    removed: list[dict[str, Any]]
    changed: list[QuestionChange]
    moved: list[str]  # keys whose position among the shared questions changed

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.moved)


def schema_diff(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> SchemaDiff:
    """What changed from one list of question snapshots (a SchemaVersion's ``questions``) to another."""
    before = {q["key"]: question_spec_of(q) for q in old}
    after = {q["key"]: question_spec_of(q) for q in new}
    changed: list[QuestionChange] = []
    for key, spec in after.items():
        if key not in before:
            continue
        diffs = [
            FieldChange(field=name, old=before[key][name], new=spec[name])
            for name in SPEC_FIELDS
            if name != "key" and before[key][name] != spec[name]
        ]
        if diffs:
            changed.append(QuestionChange(key=key, title=spec["title"], changes=diffs))
    shared_old = [k for k in before if k in after]
    shared_new = [k for k in after if k in before]
    moved = [k for i, k in enumerate(shared_new) if shared_old.index(k) != i]
    return SchemaDiff(
        added=[after[k] for k in after if k not in before],
        removed=[before[k] for k in before if k not in after],
        changed=changed,
        moved=moved,
    )
