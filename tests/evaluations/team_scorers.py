"""A team's own scorer module, as docs/scorers.md describes: listed in REVIEWDESK_SCORER_MODULES."""

from __future__ import annotations

from typing import Any

from evaluations.scorers.registry import Score, ScoreInput, scorer


@scorer(
    "mentions_lumen",
    description="The response names the product.",
    direction="higher",
    default_threshold=1.0,
    params={"word": "lumen"},
)
def mentions_lumen(row: ScoreInput, params: dict[str, Any]) -> Score:
    word = str(params.get("word") or "lumen").lower()
    found = word in row.response.lower()
    return Score(value=1.0 if found else 0.0, rationale=f"{word!r} {'found' if found else 'not found'} in the response")
