"""The demo help centre: Lumen's knowledge-base articles and the chunks a retriever returns.

Articles live as markdown under ``reviewapp/demo/kb/``; an article's ``doc_uri`` is its path
relative to this package (``kb/billing/refunds.md``). An article is split into one chunk per
``## `` section (plus an "Overview" chunk for any text before the first section), so a chunk is
named ``<doc_uri>#<anchor>``, e.g. ``kb/billing/refunds.md#monthly-plans``. The demo items cite
these chunks as their retrieved context, and a retriever built over :func:`chunks_all` sees the
same text. Plain Python only: no Django import, so scripts and pipelines can use it too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parent
KB_DIR = DEMO_DIR / "kb"


@dataclass(frozen=True)
class Document:
    doc_uri: str
    title: str
    text: str


@dataclass(frozen=True)
class Chunk:
    doc_uri: str
    anchor: str
    title: str
    heading: str
    body: str

    @property
    def ref(self) -> str:
        return f"{self.doc_uri}#{self.anchor}"

    @property
    def content(self) -> str:
        """The text a retriever hands to the model: where it comes from, then the section."""
        return f"{self.title} — {self.heading}\n\n{self.body}"

    def as_context(self) -> dict[str, str]:
        """The chunk in Agent Evaluation's ``retrieved_context`` shape."""
        return {"doc_uri": self.doc_uri, "content": self.content}


def anchor_for(heading: str) -> str:
    """``"Refund window for annual plans"`` -> ``"refund-window-for-annual-plans"``."""
    return re.sub(r"[^a-z0-9]+", "-", heading.lower()).strip("-")


@cache
def documents_all() -> tuple[Document, ...]:
    docs = []
    for path in sorted(KB_DIR.rglob("*.md")):
        text = path.read_text(encoding="utf-8")
        first = text.splitlines()[0] if text else ""
        if not first.startswith("# "):
            raise ValueError(f"{path}: an article must start with a '# Title' line")
        docs.append(Document(doc_uri=path.relative_to(DEMO_DIR).as_posix(), title=first[2:].strip(), text=text))
    return tuple(docs)


def document_chunks(doc: Document) -> list[Chunk]:
    """Split on ``## `` headings, ignoring lines inside fenced code blocks."""
    sections: list[tuple[str, list[str]]] = [("Overview", [])]
    in_fence = False
    for line in doc.text.splitlines()[1:]:
        if line.startswith("```"):
            in_fence = not in_fence
        if not in_fence and line.startswith("## "):
            sections.append((line[3:].strip(), []))
        else:
            sections[-1][1].append(line)
    chunks = []
    for heading, lines in sections:
        body = "\n".join(lines).strip()
        if body:
            chunks.append(
                Chunk(doc_uri=doc.doc_uri, anchor=anchor_for(heading), title=doc.title, heading=heading, body=body)
            )
    return chunks


@cache
def chunks_all() -> tuple[Chunk, ...]:
    return tuple(chunk for doc in documents_all() for chunk in document_chunks(doc))


@cache
def chunks_by_ref() -> dict[str, Chunk]:
    index: dict[str, Chunk] = {}
    for chunk in chunks_all():
        if chunk.ref in index:
            raise ValueError(f"two sections of {chunk.doc_uri} share the anchor {chunk.anchor!r}")
        index[chunk.ref] = chunk
    return index


def chunk_get(ref: str) -> Chunk:
    """The chunk named ``<doc_uri>#<anchor>``; KeyError names the bad reference."""
    try:
        return chunks_by_ref()[ref]
    except KeyError:
        raise KeyError(f"no demo chunk {ref!r}") from None
