"""Okapi BM25 (Robertson & Zaragoza 2009, "The Probabilistic Relevance Framework: BM25 and Beyond").

score(D, Q) = sum over q in Q of IDF(q) * f(q, D) * (k1 + 1) / (f(q, D) + k1 * (1 - b + b * |D| / avgdl))
IDF(q) = ln((N - n(q) + 0.5) / (n(q) + 0.5) + 1)   (the "+1" keeps IDF positive, as Lucene does)
"""

from __future__ import annotations

import math
import re
from collections import Counter

STOPWORDS = frozenset(
    "a an and are as at be but by can do does for from has have how i if in into is it its me my no not of on "
    "or our so that the their them then there these they this to us was we were what when where which who why "
    "will with you your i'm we're it's can't don't get got".split()
)


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens without stopwords, possessives or a plural "s" ("Lumen's refunds" -> lumen, refund)."""
    tokens = []
    for word in re.findall(r"[a-z0-9]+(?:'[a-z]+)?", text.lower().replace("\u2019", "'")):
        if word.endswith("'s"):
            word = word[:-2]
        if word in STOPWORDS:
            continue
        if len(word) > 4 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        tokens.append(word)
    return tokens


class BM25:
    def __init__(self, documents: list[str], *, k1: float = 1.5, b: float = 0.75) -> None:
        self.k1 = k1
        self.b = b
        self.docs = [Counter(tokenize(doc)) for doc in documents]
        self.lengths = [sum(doc.values()) for doc in self.docs]
        self.avgdl = sum(self.lengths) / len(self.docs) if self.docs else 0.0
        df: Counter[str] = Counter()
        for doc in self.docs:
            df.update(doc.keys())
        n = len(self.docs)
        self.idf = {term: math.log((n - count + 0.5) / (count + 0.5) + 1) for term, count in df.items()}

    def scores(self, query: str) -> list[float]:
        terms = tokenize(query)
        out = []
        for doc, length in zip(self.docs, self.lengths, strict=True):
            norm = self.k1 * (1 - self.b + self.b * length / self.avgdl) if self.avgdl else self.k1
            score = 0.0
            for term in terms:
                freq = doc.get(term, 0)
                if freq:
                    score += self.idf[term] * freq * (self.k1 + 1) / (freq + norm)
            out.append(score)
        return out

    def top(self, query: str, k: int) -> list[tuple[int, float]]:
        """The ``k`` best (index, score) pairs with a positive score, best first (ties: corpus order)."""
        ranked = sorted(enumerate(self.scores(query)), key=lambda pair: (-pair[1], pair[0]))
        return [(index, score) for index, score in ranked[:k] if score > 0]
