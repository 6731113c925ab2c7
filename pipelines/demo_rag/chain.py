"""Retrieve help-centre passages with BM25, then answer with sentences taken from them, with citations.

Two generators, chosen by :class:`RagSettings`:

- ``first_sentence``: the first sentence of the best passage, whatever it says (version 1's
  naive behaviour: often the article's intro or a neighbouring rule, not the answer);
- ``overlap``: the sentences of the top passages that share the most rare query terms (weighted
  by BM25's IDF), in reading order, each cited ``[n]`` with a source list (version 2).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Literal

from .bm25 import BM25, tokenize

FALLBACK = (
    "I couldn't find this in the Lumen help centre. Would you like me to pass your question to a person "
    "on our support team?"
)


@dataclass(frozen=True)
class RagSettings:
    top_k: int = 3
    generator: Literal["first_sentence", "overlap"] = "overlap"
    max_sentences: int = 3
    query_turns: Literal["last_user", "all_user"] = "all_user"  # which chat turns form the search query
    prompt_template: str = "{answer}\n\nSources: {sources}"  # fields: answer, sources
    bm25_k1: float = 1.5
    bm25_b: float = 0.75

    def __post_init__(self) -> None:
        if self.top_k < 1 or self.max_sentences < 1:
            raise ValueError("top_k and max_sentences must be at least 1")
        if self.generator not in ("first_sentence", "overlap"):
            raise ValueError(f"unknown generator {self.generator!r}")
        if self.query_turns not in ("last_user", "all_user"):
            raise ValueError(f"unknown query_turns {self.query_turns!r}")

    def as_params(self) -> dict[str, str]:
        return {key: str(value) for key, value in asdict(self).items()}


# The two registered versions of the demo model "support-assistant".
VARIANTS: dict[str, RagSettings] = {
    "v1": RagSettings(
        top_k=1, generator="first_sentence", max_sentences=1, query_turns="last_user", prompt_template="{answer}"
    ),
    "v2": RagSettings(top_k=3, generator="overlap", max_sentences=3, query_turns="all_user"),
}


@dataclass(frozen=True)
class Passage:
    doc_uri: str
    title: str
    heading: str
    body: str

    @property
    def content(self) -> str:
        """The same text as ``reviewapp.demo.corpus.Chunk.content``: where it comes from, then the section."""
        return f"{self.title} — {self.heading}\n\n{self.body}"


def sentences(body: str) -> list[str]:
    """Plain-text sentences of a markdown section: list items and table rows count as sentences."""
    out: list[str] = []
    for raw in body.splitlines():
        line = raw.strip()
        if not line or line.startswith("```") or re.fullmatch(r"[|\s:-]+", line):
            continue
        line = re.sub(r"^([-*+]|\d+[.)])\s+", "", line)
        line = line.strip("|").replace("|", ";")
        line = re.sub(r"\*\*|__|`", "", line)
        out += [part.strip() for part in re.split(r"(?<=[.!?])\s+(?=[A-Z0-9\"(])", line) if part.strip()]
    return out


def query_text(request: Any, turns: str) -> str:
    """The search query for a request: the text, or the user turns of a chat ``{"messages": [...]}``."""
    if isinstance(request, dict):
        users = [
            str(m.get("content", ""))
            for m in request.get("messages") or []
            if isinstance(m, dict) and m.get("role") == "user"
        ]
        if not users:
            return ""
        return users[-1] if turns == "last_user" else " ".join(users)
    return "" if request is None else str(request)


class RagChain:
    def __init__(self, passages: list[Passage], settings: RagSettings) -> None:
        self.passages = passages
        self.settings = settings
        self.index = BM25([p.content for p in passages], k1=settings.bm25_k1, b=settings.bm25_b)

    def retrieve(self, query: str) -> list[tuple[Passage, float]]:
        return [(self.passages[i], score) for i, score in self.index.top(query, self.settings.top_k)]

    def answer(self, request: Any) -> dict[str, Any]:
        """``{"response", "retrieved_context": [{doc_uri, content}]}`` for one request."""
        query = query_text(request, self.settings.query_turns)
        hits = [passage for passage, _ in self.retrieve(query)]
        context = [{"doc_uri": p.doc_uri, "content": p.content} for p in hits]
        if not hits:
            return {"response": FALLBACK, "retrieved_context": context}
        if self.settings.generator == "first_sentence":
            picked = [(0, sentences(hits[0].body)[0])]
        else:
            picked = self._overlap_sentences(query, hits)
        if not picked:
            return {"response": FALLBACK, "retrieved_context": context}
        cited = sorted({rank for rank, _ in picked})
        numbers = {rank: n for n, rank in enumerate(cited, start=1)}
        with_marks = "{answer}" in self.settings.prompt_template and "{sources}" in self.settings.prompt_template
        answer = " ".join(f"{text} [{numbers[rank]}]" if with_marks else text for rank, text in picked)
        sources = "; ".join(f"[{numbers[r]}] {hits[r].title} — {hits[r].heading} ({hits[r].doc_uri})" for r in cited)
        response = self.settings.prompt_template.format(answer=answer, sources=sources)
        return {"response": response, "retrieved_context": context}

    def _overlap_sentences(self, query: str, hits: list[Passage]) -> list[tuple[int, str]]:
        terms = set(tokenize(query))
        scored = []
        for rank, passage in enumerate(hits):
            for position, sentence in enumerate(sentences(passage.body)):
                overlap = terms & set(tokenize(sentence))
                score = sum(self.index.idf.get(t, 0.0) for t in overlap)
                if score > 0:
                    scored.append((score, rank, position, sentence))
        best = sorted(scored, key=lambda s: (-s[0], s[1], s[2]))[: self.settings.max_sentences]
        return [(rank, sentence) for _, rank, _, sentence in sorted(best, key=lambda s: (s[1], s[2]))]

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Answer each request: a list of ``{"request": str | chat}`` records, a DataFrame, strings, or one dict."""
        return [self.answer(request) for request in requests_from(model_input)]


def requests_from(model_input: Any) -> list[Any]:
    if hasattr(model_input, "to_dict"):  # a pandas DataFrame, as `mlflow models serve` passes it
        model_input = model_input.to_dict(orient="records")
    if isinstance(model_input, dict | str):
        model_input = [model_input]
    out = []
    for record in model_input:
        if isinstance(record, dict) and "request" in record:
            out.append(record["request"])
        elif isinstance(record, dict) and "messages" in record:
            out.append({"messages": record["messages"]})
        else:
            out.append(record)
    return out
