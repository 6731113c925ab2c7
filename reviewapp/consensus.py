"""Consensus rules: how the reviews of one item combine, question by question.

Pure functions over question snapshots (``question_snapshot``) and answer dicts, so the same code
combines reviews of any schema version and needs no database.

Rules (``Question.ConsensusRule``), with ``n`` the number of reviews combined; an unanswered
optional question counts as its own answer ("no answer"), so silence is never outvoted by one voice:

- majority (pass_fail, choice): the answer given by more than half of the reviewers. Anything
  else, every tie included, goes to adjudication.
- majority (multi_choice): per option; an option is in when more than half ticked it, out when
  fewer than half did, and a tie on any option goes to adjudication.
- median (rating): the median rating; with an even ``n`` the lower middle value, so the label
  stays a whole number on the scale and errs on the strict side. The reviewers disagree when the
  spread (highest minus lowest) exceeds the question's ``max_spread`` (default 1), or when only
  some of them answered.
- median (context_relevance): the rating rule, chunk by chunk.
- union / intersection (expected_facts): the facts (compared ignoring case and spacing) any /
  every reviewer gave. An empty intersection while reviewers did give facts is a disagreement.
- unanimous (text, expected_response, or by choice any kind): agreed only when every answer is the
  same (text compared with its spacing collapsed).
- skip (text): not combined; left out of the curated label.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reviewapp.models import Question, Review
from reviewapp.models.projects import CONSENSUS_DEFAULTS

Kind = Question.Kind
Rule = Question.ConsensusRule
SNAPSHOT_FIELDS = ("key", "title", "instructions", "kind", "assessment_type", "required", "order", "options")


def question_snapshot(question: Question) -> dict[str, Any]:
    """What a review answered, plus how it combines: the unit of a SchemaVersion's ``questions``."""
    data = {name: getattr(question, name) for name in SNAPSHOT_FIELDS}
    data["consensus_rule"] = question.effective_consensus_rule
    data["max_spread"] = question.max_spread
    return data


@dataclass(frozen=True)
class QuestionOutcome:
    key: str
    title: str
    kind: str
    rule: str
    values: list[Any]  # each review's answer, in review order (None: not answered)
    agreed: bool
    # The consensus when agreed; otherwise the best suggestion (a plurality, the median) or None.
    value: Any
    reason: str = ""  # why the reviewers disagree; "" when they agree
    pairwise_agreement: float | None = None  # share of reviewer pairs giving the same answer

    def as_dict(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "kind": self.kind,
            "rule": self.rule,
            "values": self.values,
            "agreed": self.agreed,
            "value": self.value,
            "reason": self.reason,
            "pairwise_agreement": self.pairwise_agreement,
        }


@dataclass(frozen=True)
class Consensus:
    outcomes: list[QuestionOutcome] = field(default_factory=list)

    @property
    def agreed(self) -> bool:
        return all(o.agreed for o in self.outcomes)

    @property
    def answers(self) -> dict[str, Any]:
        """The combined answers (suggestions where the reviewers disagree), without empty ones."""
        return {o.key: o.value for o in self.outcomes if o.rule != Rule.SKIP and not _is_blank(o.value)}

    @property
    def disagreements(self) -> list[dict[str, str]]:
        return [{"key": o.key, "reason": o.reason} for o in self.outcomes if not o.agreed]

    def by_key(self) -> dict[str, QuestionOutcome]:
        return {o.key: o for o in self.outcomes}


def consensus_compute(
    *, questions: Sequence[Mapping[str, Any]], answer_sets: Sequence[Mapping[str, Any]], n_chunks: int
) -> Consensus:
    """Combine ``answer_sets`` (one answers dict per review) question by question."""
    outcomes = []
    for q in questions:
        key = str(q["key"])
        values = [answers.get(key) for answers in answer_sets]
        outcomes.append(_combine(q, values, n_chunks))
    return Consensus(outcomes)


def _combine(q: Mapping[str, Any], values: list[Any], n_chunks: int) -> QuestionOutcome:
    kind = str(q["kind"])
    rule = str(q.get("consensus_rule") or CONSENSUS_DEFAULTS.get(kind, Rule.UNANIMOUS))
    spread = int(q.get("max_spread", 1))
    base = {"key": str(q["key"]), "title": str(q.get("title", q["key"])), "kind": kind, "rule": rule}
    pairs = _pairwise(values)
    if rule == Rule.SKIP:
        agreed, value, reason = True, None, ""
    elif rule == Rule.MAJORITY and kind == Kind.MULTI_CHOICE:
        agreed, value, reason = _majority_per_option(values, list((q.get("options") or {}).get("choices", [])))
        if agreed and not value and q.get("required") and any(values):
            agreed, reason = False, "no option was ticked by more than half of the reviewers"
    elif rule == Rule.MAJORITY:
        agreed, value, reason = _majority(values)
    elif rule == Rule.MEDIAN and kind == Kind.CONTEXT_RELEVANCE:
        agreed, value, reason = _median_per_chunk(values, spread, n_chunks)
    elif rule == Rule.MEDIAN:
        agreed, value, reason = _median(values, spread)
    elif rule in (Rule.UNION, Rule.INTERSECTION):
        agreed, value, reason = _facts(values, intersection=rule == Rule.INTERSECTION)
    else:
        agreed, value, reason = _unanimous(values)
    return QuestionOutcome(**base, values=values, agreed=agreed, value=value, reason=reason, pairwise_agreement=pairs)


def reviews_basis(reviews: Sequence[Review], *, reviews_per_item: int) -> tuple[list[Review], int | None]:
    """The reviews an item's label rests on, and their schema version.

    The reviews of the newest schema version that has at least ``reviews_per_item`` of them; else,
    if the item has that many reviews across versions, all of them with version None (a curator
    must combine them); else nothing yet.
    """
    by_version: dict[int, list[Review]] = defaultdict(list)
    for review in reviews:
        by_version[review.schema_version].append(review)
    ready = [v for v, rs in by_version.items() if len(rs) >= reviews_per_item]
    if ready:
        return by_version[max(ready)], max(ready)
    if len(reviews) >= reviews_per_item:
        return list(reviews), None
    return [], None


def reviews_fingerprint(reviews: Sequence[Review]) -> str:
    """Changes when a review is added, removed or answers differently (not for comment-only edits)."""
    rows = sorted([r.pk, r.schema_version, r.answers] for r in reviews)
    return hashlib.sha256(json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest()[:32]


# --- the rules ------------------------------------------------------------------------------------


def _is_blank(value: Any) -> bool:
    return value is None or value == "" or value == []


def _hashable(value: Any) -> Any:
    if isinstance(value, str):
        return " ".join(value.split())
    if isinstance(value, list):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value


def display(value: Any) -> str:
    """An answer as short text for reasons and pages."""
    if value is True:
        return "pass"
    if value is False:
        return "fail"
    if _is_blank(value):
        return "no answer"
    if isinstance(value, list | tuple):
        return ", ".join("\N{EN DASH}" if v is None else str(v) for v in value)
    text = " ".join(str(value).split())
    return text if len(text) <= 40 else text[:39] + "…"


def _tally(counts: Counter[Any], originals: dict[Any, Any]) -> str:
    return ", ".join(f"{n} x {display(originals[v])}" for v, n in counts.most_common())


def _majority(values: list[Any]) -> tuple[bool, Any, str]:
    """More than half; otherwise the unique plurality (if any) is only a suggestion."""
    n = len(values)
    keys = [_hashable(None if _is_blank(v) else v) for v in values]
    originals = {k: (None if _is_blank(v) else v) for k, v in zip(keys, values, strict=True)}
    counts = Counter(keys)
    ranked = counts.most_common()
    top, top_n = ranked[0]
    unique_top = len(ranked) == 1 or ranked[1][1] < top_n
    if 2 * top_n > n:
        return True, originals[top], ""
    label = "tie" if not unique_top else "no majority"
    return False, originals[top] if unique_top else None, f"{label}: {_tally(counts, originals)}"


def _majority_per_option(values: list[Any], choices: list[Any]) -> tuple[bool, list[Any], str]:
    n = len(values)
    ticked = [set(v) if isinstance(v, list) else set() for v in values]
    seen = [c for c in choices if any(c in s for s in ticked)]
    # Options no longer in the schema still count, after the current ones.
    seen += sorted({c for s in ticked for c in s if c not in choices}, key=str)
    chosen, tied = [], []
    for option in seen:
        votes = sum(option in s for s in ticked)
        if 2 * votes > n:
            chosen.append(option)
        elif 2 * votes == n:
            tied.append(option)
    if tied:
        return False, chosen, f"tie on {', '.join(map(str, tied))} ({n // 2} of {n} ticked it)"
    return True, chosen, ""


def _median(values: list[Any], max_spread: int) -> tuple[bool, Any, str]:
    numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if not numbers:
        if all(_is_blank(v) for v in values):
            return True, None, ""
        return False, None, "no rating to combine"
    value = statistics.median_low(numbers)
    if len(numbers) < len(values):
        return False, value, f"answered by {len(numbers)} of {len(values)} reviewers"
    spread = max(numbers) - min(numbers)
    if spread > max_spread:
        return False, value, f"spread {spread} > {max_spread} ({min(numbers)} to {max(numbers)})"
    return True, value, ""


def _median_per_chunk(values: list[Any], max_spread: int, n_chunks: int) -> tuple[bool, Any, str]:
    if all(_is_blank(v) for v in values):
        return True, None, ""
    rows = [v if isinstance(v, list) else [] for v in values]
    width = max([n_chunks, *(len(r) for r in rows)])
    combined: list[Any] = []
    problems: list[str] = []
    for i in range(width):
        column = [r[i] if i < len(r) else None for r in rows]
        agreed, value, reason = _median(column, max_spread)
        combined.append(value)
        if not agreed:
            problems.append(f"chunk {i + 1}: {reason}")
    if any(len(r) != n_chunks for r in rows) and not problems:
        problems.append("the reviews rated a different number of chunks")
    return not problems, combined, "; ".join(problems)


def _fact_key(fact: str) -> str:
    return " ".join(str(fact).casefold().split())


def _facts(values: list[Any], *, intersection: bool) -> tuple[bool, list[str], str]:
    lists = [[str(f) for f in v] if isinstance(v, list) else [] for v in values]
    union: dict[str, str] = {}
    for facts in lists:
        for fact in facts:
            union.setdefault(_fact_key(fact), fact.strip())
    if not intersection:
        return True, list(union.values()), ""
    common = set.intersection(*({_fact_key(f) for f in facts} for facts in lists)) if lists else set()
    shared = [fact for key, fact in union.items() if key in common]
    if not shared and union:
        # The curator starts from every fact given and strikes the ones that do not hold.
        return False, list(union.values()), "no fact is in every review"
    return True, shared, ""


def _unanimous(values: list[Any]) -> tuple[bool, Any, str]:
    keys = [_hashable(None if _is_blank(v) else v) for v in values]
    if len(set(keys)) <= 1:
        first = values[0] if values else None
        return True, None if _is_blank(first) else first, ""
    counts = Counter(keys)
    ranked = counts.most_common()
    suggestion = None
    if ranked[0][1] > ranked[1][1]:
        suggestion = next(v for v, k in zip(values, keys, strict=True) if k == ranked[0][0])
    return False, suggestion, f"{len(counts)} different answers"


def _pairwise(values: list[Any]) -> float | None:
    """Share of reviewer pairs who gave the same answer (None with fewer than two reviews)."""
    n = len(values)
    if n < 2:
        return None
    counts = Counter(_hashable(None if _is_blank(v) else v) for v in values)
    same = sum(c * (c - 1) for c in counts.values())
    return round(same / (n * (n - 1)), 4)
