"""Scorers for the online evaluation tests, loaded the documented way (REVIEWDESK_SCORER_MODULES on workers).

``online_length`` is a code scorer (the response's length); ``online_judge`` stands for an LLM judge
(source type LLM_JUDGE): it passes a response containing "good" and counts its calls in this process.
"""

from __future__ import annotations

import threading
from typing import Any

from evaluations.scorers.registry import Score, ScoreInput, scorer

JUDGE_CALLS: list[int | None] = []  # item ids the judge was called for, in this process
_lock = threading.Lock()


@scorer("online_length", description="The response's length in characters.")
def online_length(row: ScoreInput, params: dict[str, Any]) -> Score:
    return Score(value=float(len(row.response or "")), rationale="characters")


@scorer("online_judge", source_type="LLM_JUDGE", direction="bool", description="Passes a response saying good.")
def online_judge(row: ScoreInput, params: dict[str, Any]) -> Score:
    with _lock:
        JUDGE_CALLS.append(row.item_id)
    good = "good" in (row.response or "").lower()
    return Score(value=good, rationale="says good" if good else "does not say good")
