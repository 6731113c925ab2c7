"""Suites and their versions: validated at save time, immutable afterwards.

A definition is a list of scorer entries and a config. Entries may be given short
(``"token_f1"`` or ``{"scorer": "token_f1"}``); the saved version is fully explicit: every entry
has its ``name``, ``scorer``, ``threshold``, ``params`` (defaults filled in) and ``human_question``,
so a run always records exactly what it ran even if a default changes later.
"""

from __future__ import annotations

import math
import sys
from typing import Annotated, Any, ClassVar

import msgspec
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max

from evaluations.models import Suite, SuiteVersion
from evaluations.scorers.builtin import PARAM_CHECKS, RELEVANCE_LABEL_SCORERS, SHARE_SCORERS
from evaluations.scorers.registry import scorer_get, scorer_list
from reviewapp.errors import FieldError, ValidationFailed
from reviewapp.models import Project, Question
from reviewapp.services.audit import audit_record
from reviewapp.typed_input import TypedInput, field_error, says, struct_errors

MAX_SCORERS = 50
ENTRY_KEYS = ("name", "scorer", "threshold", "params", "human_question")
CONFIG_KEYS = ("human_question", "max_error_rate", "chunk_size")
NAME_MAX = 100
NAME_MESSAGE = f"Give a name of 1 to {NAME_MAX} characters."


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _type_ok(default: Any, value: Any) -> bool:
    """A parameter keeps the type of its default (ints and floats mix; a None default takes anything)."""
    if default is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int | float):
        return _is_number(value)
    return isinstance(value, type(default))


def _questions(project: Project) -> dict[str, str]:
    return dict(Question.objects.filter(project=project).values_list("key", "kind"))


def _first(questions: dict[str, str], kind: str) -> str:
    for key, question_kind in questions.items():
        if question_kind == kind:
            return key
    return ""


def suite_definition_validate(
    *, project: Project, scorers: Any, config: Any = None
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The explicit scorer entries and config, or ValidationFailed naming each bad field.

    Field names follow the input: ``scorers[2].threshold``, ``scorers[0].params.k``,
    ``config.max_error_rate``.
    """
    errors: list[FieldError] = []
    questions = _questions(project)
    pass_fail = {k for k, kind in questions.items() if kind == Question.Kind.PASS_FAIL}
    config_out = _config_validate(config, questions=questions, pass_fail=pass_fail, errors=errors)
    if not isinstance(scorers, list) or not scorers:
        errors.append(field_error("scorers", "Give a non-empty list of scorers."))
        raise ValidationFailed(errors, "The suite definition is not valid.")
    if len(scorers) > MAX_SCORERS:
        errors.append(field_error("scorers", f"At most {MAX_SCORERS} scorers per suite."))
    entries: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(scorers):
        entry = _entry_validate(
            raw,
            i,
            questions=questions,
            pass_fail=pass_fail,
            default_question=config_out["human_question"],
            errors=errors,
        )
        if entry is None:
            continue
        if entry["name"] in seen:
            errors.append(
                field_error(
                    f"scorers[{i}].name",
                    f"“{entry['name']}” is already used by scorers[{seen[entry['name']]}]; "
                    "give this entry its own name.",
                    i,
                )
            )
            continue
        seen[entry["name"]] = i
        entries.append(entry)
    if errors:
        raise ValidationFailed(errors, "The suite definition is not valid.")
    return entries, config_out


PassFailKey = Annotated[str, says("Give the key of a pass/fail question of this project.")]


class SuiteConfigIn(TypedInput):
    unknown_message: ClassVar[str] = f"Unknown setting; use {', '.join(CONFIG_KEYS)}."
    not_object_message: ClassVar[str] = "Give the config as an object."

    human_question: PassFailKey | None | msgspec.UnsetType = msgspec.UNSET  # "" or None: no human comparison
    max_error_rate: (
        Annotated[float, msgspec.Meta(ge=0, le=1), says("Give a share between 0 and 1 (0.2 fails a run above 20%).")]
        | msgspec.UnsetType
    ) = msgspec.UNSET
    chunk_size: (
        Annotated[int, msgspec.Meta(ge=1, le=5000), says("Give a whole number of items from 1 to 5000.")]
        | msgspec.UnsetType
    ) = msgspec.UNSET


class SuiteEntryIn(TypedInput):
    """One scorer entry; ``"token_f1"`` is short for ``{"scorer": "token_f1"}``."""

    unknown_message: ClassVar[str] = f"Unknown field; use {', '.join(ENTRY_KEYS)}."
    not_object_message: ClassVar[str] = 'Give a scorer name or an object like {"scorer": "token_f1", "threshold": 0.5}.'

    scorer: Annotated[str, msgspec.Meta(min_length=1), says("Name a scorer.")]
    name: Annotated[str, msgspec.Meta(max_length=NAME_MAX), says(NAME_MESSAGE)] | None = None
    threshold: Annotated[float, says("Give a number (or null for no pass/fail verdict).")] | None = None
    params: Annotated[dict[str, Any], says("Give the parameters as an object.")] | None = None
    human_question: PassFailKey | None | msgspec.UnsetType = msgspec.UNSET  # unset: the config's


def _config_validate(
    config: Any, *, questions: dict[str, str], pass_fail: set[str], errors: list[FieldError]
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "human_question": _first(questions, Question.Kind.PASS_FAIL),
        "max_error_rate": settings.EVALUATION_MAX_ERROR_RATE,
        "chunk_size": settings.EVALUATION_CHUNK_SIZE,
    }
    if config is None:
        return out
    parsed, problems = struct_errors(config, SuiteConfigIn, field="config")
    errors.extend(problems)
    if parsed is None:  # not an object
        return out
    if parsed.human_question in (None, ""):
        out["human_question"] = ""
    elif parsed.human_question is not msgspec.UNSET:
        if parsed.human_question not in pass_fail:
            errors.append(field_error("config.human_question", _pass_fail_message(parsed.human_question, pass_fail)))
        else:
            out["human_question"] = parsed.human_question
    if parsed.max_error_rate is not msgspec.UNSET:
        out["max_error_rate"] = float(parsed.max_error_rate)
    if parsed.chunk_size is not msgspec.UNSET:
        out["chunk_size"] = parsed.chunk_size
    return out


def _pass_fail_message(question: Any, pass_fail: set[str]) -> str:
    known = ", ".join(sorted(pass_fail)) or "none in this project"
    return f"“{question}” is not a pass/fail question of this project (pass/fail questions: {known})."


def _entry_validate(
    raw: Any,
    i: int,
    *,
    questions: dict[str, str],
    pass_fail: set[str],
    default_question: str,
    errors: list[FieldError],
) -> dict[str, Any] | None:
    where = f"scorers[{i}]"
    if isinstance(raw, str):
        raw = {"scorer": raw}
    before = len(errors)
    entry, problems = struct_errors(raw, SuiteEntryIn, field=where, index=i)
    errors.extend(problems)
    if entry is None:  # not an object, or no scorer named
        return None
    name = entry.scorer
    try:
        spec = scorer_get(name)
    except KeyError:
        known = ", ".join(s.name for s in scorer_list())
        errors.append(field_error(f"{where}.scorer", f"Unknown scorer “{name}”. Known scorers: {known}.", i))
        return None
    entry_name = entry.name if entry.name is not None else name
    if not entry_name.strip():
        errors.append(field_error(f"{where}.name", NAME_MESSAGE, i))
        entry_name = name
    threshold = entry.threshold if "threshold" in raw else spec.default_threshold
    if spec.direction == "bool":
        if entry.threshold is not None:
            message = f"{name} passes on a true value; it takes no threshold."
            errors.append(field_error(f"{where}.threshold", message, i))
        threshold = None
    elif threshold is not None:
        if not math.isfinite(threshold):
            errors.append(field_error(f"{where}.threshold", "Give a number (or null for no pass/fail verdict).", i))
        elif name in SHARE_SCORERS and not 0 <= threshold <= 1:
            message = f"{name} gives a share from 0 to 1; the threshold must be too."
            errors.append(field_error(f"{where}.threshold", message, i))
        elif threshold < 0:
            message = f"{name} is never negative; give a threshold of 0 or more."
            errors.append(field_error(f"{where}.threshold", message, i))
    params = _params_validate(entry.params, spec.params, name, where, i, errors)
    if name in RELEVANCE_LABEL_SCORERS and params is not None:
        relevance = {k for k, kind in questions.items() if kind == Question.Kind.CONTEXT_RELEVANCE}
        if not params.get("human_question"):
            params["human_question"] = _first(questions, Question.Kind.CONTEXT_RELEVANCE)
        if params["human_question"] not in relevance:
            known = ", ".join(sorted(relevance)) or "none in this project"
            message = (
                f"{name} compares with human per-chunk relevance labels: name a context_relevance question "
                f"(this project's: {known})."
            )
            errors.append(field_error(f"{where}.params.human_question", message, i))
    if params is not None and spec.source_type == "LLM_JUDGE":
        # A judge module may check its params against the outside world (its endpoint exists, ...).
        check = getattr(sys.modules.get(spec.fn.__module__), "judge_params_validate", None)
        for problem in check(name=name, params=params) if check else []:
            errors.append(field_error(f"{where}.{problem['field']}", problem["message"], i))
    human_question = default_question if entry.human_question is msgspec.UNSET else entry.human_question
    if human_question in (None, ""):
        human_question = ""
    elif human_question not in pass_fail:
        errors.append(field_error(f"{where}.human_question", _pass_fail_message(human_question, pass_fail), i))
    if len(errors) > before:
        return None
    return {
        "name": entry_name.strip(),
        "scorer": name,
        "threshold": float(threshold) if threshold is not None else None,
        "params": params or {},
        "human_question": human_question,
    }


def _params_validate(
    raw: Any, defaults: dict[str, Any], name: str, where: str, i: int, errors: list[FieldError]
) -> dict[str, Any] | None:
    if raw is None:
        return dict(defaults)
    if not isinstance(raw, dict):
        errors.append(field_error(f"{where}.params", "Give the parameters as an object.", i))
        return None
    checks = PARAM_CHECKS.get(name, {})
    out = dict(defaults)
    for key, value in raw.items():
        field = f"{where}.params.{key}"
        if key not in defaults:
            known = ", ".join(defaults) or "none"
            errors.append(field_error(field, f"{name} has no parameter “{key}” (its parameters: {known}).", i))
            continue
        if not _type_ok(defaults[key], value):
            message = f"Expected {type(defaults[key]).__name__}, got {type(value).__name__}."
            errors.append(field_error(field, message, i))
            continue
        check = checks.get(key)
        message = check(value) if check else None
        if message:
            errors.append(field_error(field, message, i))
            continue
        out[key] = value
    return out


def suite_create(
    *,
    project: Project,
    name: str,
    scorers: Any,
    actor: Any,
    description: str = "",
    config: Any = None,
) -> Suite:
    """A new suite with its first version."""
    name = (name or "").strip()
    errors: list[FieldError] = []
    if not name or len(name) > 200:
        errors.append(field_error("name", "Give the suite a name of 1 to 200 characters."))
    elif Suite.objects.filter(project=project, name=name).exists():
        message = f"This project already has a suite named “{name}”; add a version to it instead."
        errors.append(field_error("name", message))
    try:
        entries, config_out = suite_definition_validate(project=project, scorers=scorers, config=config)
    except ValidationFailed as exc:
        errors.extend(exc.errors)
    if errors:
        raise ValidationFailed(errors, "The suite is not valid.")
    try:
        with transaction.atomic():
            suite = Suite.objects.create(
                project=project, name=name, description=(description or "").strip(), created_by=_user(actor)
            )
            version = SuiteVersion.objects.create(
                suite=suite, number=1, scorers=entries, config=config_out, created_by=_user(actor)
            )
            audit_record(
                actor=actor,
                action="evaluation.suite_create",
                target=suite,
                project=project,
                data={"name": name, "version": version.number, "scorers": version.scorer_names},
            )
    except IntegrityError:  # a concurrent create with the same name
        raise ValidationFailed([field_error("name", f"This project already has a suite named “{name}”.")]) from None
    return suite


def suite_version_create(*, suite: Suite, scorers: Any, actor: Any, config: Any = None) -> SuiteVersion:
    """The suite's next version (earlier versions, and the runs that used them, stay as they are)."""
    entries, config_out = suite_definition_validate(project=suite.project, scorers=scorers, config=config)
    with transaction.atomic():
        Suite.objects.select_for_update().filter(pk=suite.pk).first()  # numbers versions one at a time
        number = (SuiteVersion.objects.filter(suite=suite).aggregate(n=Max("number"))["n"] or 0) + 1
        version = SuiteVersion.objects.create(
            suite=suite, number=number, scorers=entries, config=config_out, created_by=_user(actor)
        )
        audit_record(
            actor=actor,
            action="evaluation.suite_version_create",
            target=suite,
            project=suite.project,
            data={"version": number, "scorers": version.scorer_names},
        )
    return version


def _user(actor: Any) -> Any:
    return actor if getattr(actor, "is_authenticated", False) else None
