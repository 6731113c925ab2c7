"""Custom scorers for the evaluation tests, loaded the documented way (EVALUATION_SCORER_MODULES).

Their behaviour is driven by the item's metadata, so a test decides the outcome through the data:
``metadata.sleep`` slows a row, ``metadata.explode`` makes the scorer raise, ``metadata.verdict``
is what the fake judge answers.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from evaluations.scorers.registry import Score, ScoreInput, scorer

CALLS: list[int | None] = []  # item ids, in this process (unit tests count calls)
JUDGE_THREADS: set[str] = set()
_lock = threading.Lock()


@scorer("test_slow", params={"seconds": 0.0}, description="Sleeps (params.seconds or metadata.sleep), then 1.")
def test_slow(row: ScoreInput, params: dict[str, Any]) -> Score:
    time.sleep(float(row.metadata.get("sleep", params.get("seconds", 0.0))))
    with _lock:
        CALLS.append(row.item_id)
    return Score(value=1.0, rationale="slept")


@scorer("test_explode", direction="bool", description="Raises when metadata.explode is set.")
def test_explode(row: ScoreInput, params: dict[str, Any]) -> Score:
    if row.metadata.get("explode"):
        raise RuntimeError(f"boom on item {row.item_id}")
    return Score(value=True, rationale="fine")


@scorer("test_judge", source_type="LLM_JUDGE", direction="bool", description="Answers metadata.verdict.")
def test_judge(row: ScoreInput, params: dict[str, Any]) -> Score:
    time.sleep(float(row.metadata.get("judge_sleep", 0.0)))
    with _lock:
        JUDGE_THREADS.add(threading.current_thread().name)
    verdict = row.metadata.get("verdict")
    if verdict is None:
        return Score(value=None, error="the judge endpoint timed out")
    return Score(value=bool(verdict), rationale=f"judged {verdict}")
