"""Validation of review answers against a project's questions (its label schema)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from reviewapp.errors import FieldError, ValidationFailed
from reviewapp.models import Item, Question
from reviewapp.typed_input import field_error, says, value_convert

Kind = Question.Kind
TEXT_MAX = 20_000
TRUE_WORDS = {"yes", "y", "pass", "true", "1", "thumbs_up"}
FALSE_WORDS = {"no", "n", "fail", "false", "0", "thumbs_down"}


def _rating(lo: int, hi: int) -> Any:
    return Annotated[int, msgspec.Meta(ge=lo, le=hi), says(f"Give a whole number from {lo} to {hi}.")]


def _answer_type(question: Question) -> Any:
    """The msgspec type of an answer to ``question`` (None: checked by hand, see _clean_one)."""
    kind = question.kind
    opts = question.options or {}
    if kind == Kind.PASS_FAIL:
        return Annotated[bool, says("Answer pass (true) or fail (false).")]
    if kind == Kind.RATING:
        return _rating(int(opts.get("min", 1)), int(opts.get("max", 5)))
    if kind == Kind.CHOICE:
        choices = list(opts.get("choices", []))
        if not choices or not all(type(c) in (str, int) for c in choices):
            return None  # msgspec's Literal holds texts and whole numbers only
        return Annotated[Literal.__getitem__(tuple(choices)), says(f"Pick one of: {', '.join(map(str, choices))}.")]
    if kind in (Kind.TEXT, Kind.EXPECTED_RESPONSE):
        return Annotated[str, says("Give text.")]
    if kind == Kind.EXPECTED_FACTS:
        return Annotated[list[str], says("Give a list of facts (one text per fact).")]
    return None


def _typed(type_: Any, value: Any, field: str, errors: list[FieldError]) -> Any:
    """``value`` as ``type_`` (lax: "4" and 4.0 are a rating of 4), or None with the error added."""
    try:
        return value_convert(value, type_, field=field, strict=False)
    except ValidationFailed as exc:
        errors.extend(exc.errors)
        return None


def _clean_one(question: Question, value: Any, item: Item, field: str, errors: list[FieldError]) -> Any:
    kind = question.kind
    opts = question.options or {}
    if kind == Kind.PASS_FAIL and not isinstance(value, bool):
        word = str(value).strip().lower()
        value = True if word in TRUE_WORDS else False if word in FALSE_WORDS else word
    if kind == Kind.EXPECTED_FACTS and isinstance(value, str):
        value = value.splitlines()
    if kind == Kind.RATING and isinstance(value, str):
        value = value.strip()
    type_ = _answer_type(question)
    if kind == Kind.CHOICE and type_ is None:
        choices = list(opts.get("choices", []))
        if value in choices:
            return value
        errors.append(field_error(field, f"Pick one of: {', '.join(map(str, choices))}."))
        return None
    if type_ is not None:
        value = _typed(type_, value, field, errors)
        if value is None:
            return None
        if kind in (Kind.TEXT, Kind.EXPECTED_RESPONSE):
            if len(value) > TEXT_MAX:
                errors.append(field_error(field, f"At most {TEXT_MAX} characters."))
            return value.strip()
        if kind == Kind.EXPECTED_FACTS:
            return [v.strip() for v in value if v.strip()]
        return value
    if kind == Kind.MULTI_CHOICE:
        choices = list(opts.get("choices", []))
        values = value if isinstance(value, list) else [value]
        bad = [v for v in values if v not in choices]
        if bad:
            message = f"Not an option: {', '.join(map(str, bad))}. Options: {', '.join(choices)}."
            errors.append(field_error(field, message))
            return None
        # Keep the schema's order and drop repeats, so equal answers compare equal.
        return [c for c in choices if c in values]
    if kind == Kind.CONTEXT_RELEVANCE:
        rating = _rating(int(opts.get("min", 0)), int(opts.get("max", 2)))
        n_chunks = len(item.retrieved_context or [])
        if not isinstance(value, list) or len(value) != n_chunks:
            errors.append(field_error(field, f"Give one rating per retrieved chunk ({n_chunks})."))
            return None
        # One rating per chunk, each checked on its own so every bad one is named; "" is not rated yet.
        return [
            None if v is None or v == "" else _typed(rating, v, f"{field}[{i}]", errors) for i, v in enumerate(value)
        ]
    return None


def _is_empty(question: Question, value: Any) -> bool:
    if value is None or value == "" or value == []:
        return True
    if question.kind == Question.Kind.CONTEXT_RELEVANCE and isinstance(value, list):
        return any(v is None for v in value)
    return False


def answers_validate(*, questions: list[Question], item: Item, answers: Any) -> dict[str, Any]:
    """Return the cleaned answers, or raise ValidationFailed naming each bad field."""
    if not isinstance(answers, dict):
        raise ValidationFailed([field_error("answers", "Give the answers as an object keyed by question.")])
    errors: list[FieldError] = []
    known = {q.key for q in questions}
    for key in answers:
        if key not in known:
            errors.append(field_error(f"answers.{key}", "No such question in this project."))
    cleaned: dict[str, Any] = {}
    for question in questions:
        field = f"answers.{question.key}"
        raw = answers.get(question.key)
        if raw is None or raw == "" or raw == []:
            if question.required and question.kind != Question.Kind.CONTEXT_RELEVANCE:
                errors.append(field_error(field, "This question is required."))
            elif question.required and (item.retrieved_context or []):
                errors.append(field_error(field, "Rate every retrieved chunk."))
            continue
        value = _clean_one(question, raw, item, field, errors)
        if value is None:
            continue
        if question.required and _is_empty(question, value):
            message = (
                "Rate every retrieved chunk."
                if question.kind == Kind.CONTEXT_RELEVANCE
                else ("This question is required.")
            )
            errors.append(field_error(field, message))
            continue
        cleaned[question.key] = value
    errors.extend(expectation_errors(questions=questions, item=item, answers=cleaned))
    if errors:
        raise ValidationFailed(errors, "Some answers are missing or not valid.")
    return cleaned


REPEATS_FAILED = "the expected response repeats the answer you failed: correct it or leave it empty"


def normalize_text(text: Any) -> str:
    """Text compared for sameness: runs of whitespace (newlines, indentation) count as one space."""
    return " ".join(str(text or "").split())


def answers_fail(*, questions: list[Question] | list[dict[str, Any]], answers: Any) -> bool:
    """True when the answers fail the response: some pass/fail question answered fail."""
    if not isinstance(answers, dict):
        return False
    for q in questions:
        kind, key = (q["kind"], q["key"]) if isinstance(q, dict) else (q.kind, q.key)
        if kind == Kind.PASS_FAIL and answers.get(key) is False:
            return True
    return False


def expectation_repeats_failed(*, response: str, expected: Any, failed: bool) -> bool:
    """An expected response that is the very answer the same judgement failed (not an expectation)."""
    return failed and bool(normalize_text(expected)) and normalize_text(expected) == normalize_text(response)


def expectation_errors(
    *, questions: list[Question], item: Item, answers: dict[str, Any], loose_response: str | None = None
) -> list[FieldError]:
    """The refusal of an expected response that repeats the response these answers fail.

    An expectation is what a person wrote or accepted for a good answer; the failed answer itself
    would teach judges and fine-tuning the wrong thing. ``loose_response``: an expected response
    given outside the questions (a curator's decision in a project without such a question).
    """
    failed = answers_fail(questions=questions, answers=answers)
    if not failed:
        return []
    errors: list[FieldError] = []
    for q in questions:
        if q.kind == Kind.EXPECTED_RESPONSE and expectation_repeats_failed(
            response=item.response, expected=answers.get(q.key), failed=True
        ):
            errors.append(field_error(f"answers.{q.key}", REPEATS_FAILED))
    if expectation_repeats_failed(response=item.response, expected=loose_response, failed=True):
        errors.append(field_error("expected_response", REPEATS_FAILED))
    return errors
