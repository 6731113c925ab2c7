"""Evaluation suites (named, versioned lists of scorers) and runs (immutable records of one evaluation)."""

from __future__ import annotations

from evaluations.models.endpoints import Endpoint, JudgeCacheEntry
from evaluations.models.runs import Run, RunChunk, RunMlflowLog, RunResult, RunRow
from evaluations.models.suites import Suite, SuiteVersion

__all__ = [
    "Endpoint",
    "JudgeCacheEntry",
    "Run",
    "RunChunk",
    "RunMlflowLog",
    "RunResult",
    "RunRow",
    "Suite",
    "SuiteVersion",
]
