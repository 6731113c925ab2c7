"""Template filters of the adjudication pages: whole answers, for comparing reviews side by side."""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()
DASH = "\N{EN DASH}"


@register.filter
def answer_full(value: Any, kind: str = "") -> str:
    """One stored answer in full: pass/fail as words, facts one per line, ratings per chunk joined."""
    if value is True:
        return "pass"
    if value is False:
        return "fail"
    if value is None or value == "" or value == []:
        return DASH
    if isinstance(value, list):
        if kind == "expected_facts":
            return "\n".join(f"\N{BULLET} {v}" for v in value)
        return ", ".join(DASH if v is None else str(v) for v in value)
    return str(value)


@register.filter
def answer_tone(value: Any) -> str:
    """A CSS modifier for an answer: pass, fail, or none."""
    if value is True:
        return "pass"
    if value is False:
        return "fail"
    return "none" if value is None or value == "" or value == [] else ""
