"""Template filters for the review UI."""

from __future__ import annotations

import json
from typing import Any

from django import template
from django.utils.safestring import SafeString

from reviewapp.rendering import bidi_escape_text, render_markdown, render_untrusted

register = template.Library()


@register.filter(name="markdown")
def markdown_filter(text: str | None) -> SafeString:
    """Render markdown to sanitised HTML (see reviewapp.rendering)."""
    return render_markdown(text)


@register.filter
def untrusted(text: Any) -> SafeString:
    """Untrusted plain text (requests, chunks, comments, model output): escaped, bidi controls shown."""
    return render_untrusted(text)


@register.filter
def untrusted_attr(text: Any) -> str:
    """The same for an attribute value (title=…): controls written out; autoescape does the rest."""
    return "" if text is None else bidi_escape_text(str(text))


@register.filter
def answer_display(value: Any) -> str:
    """One stored answer as short text: pass/fail as words, lists joined."""
    if value is True:
        return "pass"
    if value is False:
        return "fail"
    if value is None:
        return "\N{EN DASH}"
    if isinstance(value, list):
        return ", ".join("\N{EN DASH}" if v is None else str(v) for v in value) or "\N{EN DASH}"
    text = str(value)
    return text if len(text) <= 80 else text[:79] + "…"


@register.filter
def answer_items(answers: Any) -> list[tuple[str, Any]]:
    """A review's answers as (key, value) pairs for listing."""
    return list(answers.items()) if isinstance(answers, dict) else []


@register.filter
def detail_pairs(data: Any) -> list[tuple[str, str]]:
    """An audit event's data as (key, short text) pairs. A filter, not ``data.items`` in the template:
    the template language looks keys up before methods, so data holding an ``items`` key would
    shadow the dict's own ``items()``."""
    if not isinstance(data, dict):
        return []
    pairs = []
    for key, value in data.items():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        pairs.append((str(key), text if len(text) <= 80 else text[:79] + "…"))
    return pairs


@register.filter
def duration_ms(value: int | None) -> str:
    """Milliseconds as '1 min 5 s' or '42 s'."""
    if value is None:
        return ""
    seconds = round(int(value) / 1000)
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"
