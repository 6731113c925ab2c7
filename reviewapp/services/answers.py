"""Validation of review answers against a project's questions (its label schema)."""

from __future__ import annotations

from typing import Any

from reviewapp.errors import FieldError, ValidationFailed
from reviewapp.models import Item, Question

Kind = Question.Kind
TEXT_MAX = 20_000
TRUE_WORDS = {"yes", "y", "pass", "true", "1", "thumbs_up"}
FALSE_WORDS = {"no", "n", "fail", "false", "0", "thumbs_down"}


def _err(field: str, message: str) -> FieldError:
    return {"index": None, "field": field, "message": message}


def _int_in_range(value: Any, lo: int, hi: int) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value.strip())
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and lo <= value <= hi:
        return value
    return None


def _clean_one(question: Question, value: Any, item: Item, field: str, errors: list[FieldError]) -> Any:
    kind = question.kind
    opts = question.options or {}
    if kind == Kind.PASS_FAIL:
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        errors.append(_err(field, "Answer pass (true) or fail (false)."))
    elif kind == Kind.RATING:
        lo, hi = int(opts.get("min", 1)), int(opts.get("max", 5))
        rating = _int_in_range(value, lo, hi)
        if rating is None:
            errors.append(_err(field, f"Give a whole number from {lo} to {hi}."))
        return rating
    elif kind == Kind.CHOICE:
        choices = list(opts.get("choices", []))
        if value in choices:
            return value
        errors.append(_err(field, f"Pick one of: {', '.join(map(str, choices))}."))
    elif kind == Kind.MULTI_CHOICE:
        choices = list(opts.get("choices", []))
        values = value if isinstance(value, list) else [value]
        bad = [v for v in values if v not in choices]
        if bad:
            errors.append(_err(field, f"Not an option: {', '.join(map(str, bad))}. Options: {', '.join(choices)}."))
            return None
        # Keep the schema's order and drop repeats, so equal answers compare equal.
        return [c for c in choices if c in values]
    elif kind in (Kind.TEXT, Kind.EXPECTED_RESPONSE):
        if not isinstance(value, str):
            errors.append(_err(field, "Give text."))
            return None
        if len(value) > TEXT_MAX:
            errors.append(_err(field, f"At most {TEXT_MAX} characters."))
        return value.strip()
    elif kind == Kind.EXPECTED_FACTS:
        if isinstance(value, str):
            value = value.splitlines()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            errors.append(_err(field, "Give a list of facts (one text per fact)."))
            return None
        return [v.strip() for v in value if v.strip()]
    elif kind == Kind.CONTEXT_RELEVANCE:
        lo, hi = int(opts.get("min", 0)), int(opts.get("max", 2))
        n_chunks = len(item.retrieved_context or [])
        if not isinstance(value, list) or len(value) != n_chunks:
            errors.append(_err(field, f"Give one rating per retrieved chunk ({n_chunks})."))
            return None
        cleaned: list[int | None] = []
        for i, v in enumerate(value):
            if v is None or v == "":
                cleaned.append(None)
                continue
            rating = _int_in_range(v, lo, hi)
            if rating is None:
                errors.append(_err(f"{field}[{i}]", f"Give a whole number from {lo} to {hi}."))
            cleaned.append(rating)
        return cleaned
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
        raise ValidationFailed([_err("answers", "Give the answers as an object keyed by question.")])
    errors: list[FieldError] = []
    known = {q.key for q in questions}
    for key in answers:
        if key not in known:
            errors.append(_err(f"answers.{key}", "No such question in this project."))
    cleaned: dict[str, Any] = {}
    for question in questions:
        field = f"answers.{question.key}"
        raw = answers.get(question.key)
        if raw is None or raw == "" or raw == []:
            if question.required and question.kind != Question.Kind.CONTEXT_RELEVANCE:
                errors.append(_err(field, "This question is required."))
            elif question.required and (item.retrieved_context or []):
                errors.append(_err(field, "Rate every retrieved chunk."))
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
            errors.append(_err(field, message))
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
            errors.append(_err(f"answers.{q.key}", REPEATS_FAILED))
    if expectation_repeats_failed(response=item.response, expected=loose_response, failed=True):
        errors.append(_err("expected_response", REPEATS_FAILED))
    return errors
