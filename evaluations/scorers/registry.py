"""The scorer contract and registry.

A scorer is a function ``(ScoreInput) -> Score`` registered under a stable name with
``@scorer(...)``. Built-in code scorers live in ``builtin.py``, LLM judges in ``llm_judges.py``;
teams add their own in any module listed in ``settings.EVALUATION_SCORER_MODULES`` (imported on
first use), without forking. Results follow MLflow's feedback shape: a value, a rationale and a
source type (``CODE`` or ``LLM_JUDGE``).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

SourceType = Literal["CODE", "LLM_JUDGE"]
BUILTIN_MODULES = ["evaluations.scorers.builtin", "evaluations.scorers.llm_judges"]


@dataclass(frozen=True)
class ScoreInput:
    """One row to score. Field names follow Databricks Agent Evaluation."""

    request: str | dict[str, Any]  # text, or a chat {"messages": [...]}
    response: str
    retrieved_context: list[dict[str, str]] = field(default_factory=list)  # [{doc_uri, content}]
    expected_response: str | None = None
    expected_facts: list[str] | None = None
    guidelines: list[str] | None = None
    # Curated human answers per question key, when the item has a curated label (for alignment).
    human: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)  # e.g. latency_ms
    item_id: int | None = None

    @property
    def request_text(self) -> str:
        """The last user turn of a chat request, or the request itself."""
        if isinstance(self.request, dict):
            for message in reversed(self.request.get("messages") or []):
                if isinstance(message, dict) and message.get("role") == "user":
                    return str(message.get("content", ""))
            return ""
        return str(self.request)


@dataclass(frozen=True)
class Score:
    """A scorer's verdict on one row.

    ``value`` is a number, bool or label; ``passed`` is the verdict against the threshold (set by
    the runner with ``Scorer.judge``) and ``error`` is non-empty when the row could not be scored
    (the run records it and goes on).
    """

    value: float | bool | str | None
    rationale: str = ""
    passed: bool | None = None
    error: str = ""


ScorerFn = Callable[[ScoreInput, dict[str, Any]], Score]


@dataclass(frozen=True)
class Scorer:
    name: str
    fn: ScorerFn
    source_type: SourceType
    description: str
    # "higher" means value >= threshold passes; "lower" means value <= threshold passes;
    # "bool" means a True value passes (threshold unused).
    direction: Literal["higher", "lower", "bool"] = "higher"
    default_threshold: float | None = None
    # Parameters the scorer accepts in a suite definition, with their defaults.
    params: dict[str, Any] = field(default_factory=dict)

    def judge(self, score: Score, threshold: float | None) -> Score:
        """Fill ``passed`` from the value and the threshold."""
        if score.error or score.value is None:
            return score
        limit = self.default_threshold if threshold is None else threshold
        if self.direction == "bool":
            passed = bool(score.value)
        elif limit is None:
            passed = None
        elif self.direction == "higher":
            passed = float(score.value) >= limit
        else:
            passed = float(score.value) <= limit
        return Score(value=score.value, rationale=score.rationale, passed=passed, error=score.error)


_REGISTRY: dict[str, Scorer] = {}
_loaded = False


def scorer(
    name: str,
    *,
    source_type: SourceType = "CODE",
    description: str = "",
    direction: Literal["higher", "lower", "bool"] = "higher",
    default_threshold: float | None = None,
    params: dict[str, Any] | None = None,
) -> Callable[[ScorerFn], ScorerFn]:
    """Register ``fn(row: ScoreInput, params: dict) -> Score`` under ``name``."""

    def register(fn: ScorerFn) -> ScorerFn:
        if name in _REGISTRY and _REGISTRY[name].fn is not fn:
            raise ValueError(f"A scorer named {name!r} is already registered")
        _REGISTRY[name] = Scorer(
            name=name,
            fn=fn,
            source_type=source_type,
            description=description or (fn.__doc__ or "").strip().split("\n")[0],
            direction=direction,
            default_threshold=default_threshold,
            params=dict(params or {}),
        )
        return fn

    return register


def _load() -> None:
    global _loaded
    if _loaded:
        return
    from django.conf import settings

    for module in [*BUILTIN_MODULES, *getattr(settings, "EVALUATION_SCORER_MODULES", [])]:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # a real import error inside the module
                raise
            if module not in BUILTIN_MODULES:
                raise
    _loaded = True


def scorer_get(name: str) -> Scorer:
    _load()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"Unknown scorer {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def scorer_list() -> list[Scorer]:
    _load()
    return sorted(_REGISTRY.values(), key=lambda s: s.name)
