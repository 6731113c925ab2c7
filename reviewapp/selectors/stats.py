"""Reads for the dashboards and the stats API: every figure aggregated in the database.

Each function runs a fixed number of queries whatever the size of the project (one per
question at most for distributions, one for all agreement values). Only current reviews count
(not the ones a curator sent back).

Answer distributions count answers (reviews). Every decision figure (pass rates, rating means)
is over items, with its n of items and reviews (``version_figures``, ``reviewapp.item_stats``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import statistics
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import Aggregate, Count, FloatField
from django.db.models.fields.json import KeyTransform
from django.db.models.functions import TruncDate
from django.utils import timezone

from reviewapp.agreement import Agreement, Level, krippendorff_alpha, percent_agreement
from reviewapp.item_stats import ItemAnswers, ItemFigure, items_mean, items_rate, question_values, wilson
from reviewapp.models import Item, Project, Question, Review
from reviewapp.models.curation import Adjudication, CuratedLabel
from reviewapp.selectors.gold import GoldAccuracy, gold_accuracy_for_reviewers
from reviewapp.selectors.projects import questions_for_project

THROUGHPUT_DAYS = 30
# Agreement level by question kind; kinds not listed (free text, facts) have no agreement figure.
AGREEMENT_LEVELS: dict[str, Level] = {
    Question.Kind.PASS_FAIL: "nominal",
    Question.Kind.CHOICE: "nominal",
    Question.Kind.MULTI_CHOICE: "nominal",
    Question.Kind.RATING: "ordinal",
    Question.Kind.CONTEXT_RELEVANCE: "ordinal",
}
STAT_KINDS = frozenset(AGREEMENT_LEVELS)


class Median(Aggregate):
    """PostgreSQL's continuous median."""

    function = "PERCENTILE_CONT"
    template = "%(function)s(0.5) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()


@dataclass(frozen=True)
class Progress:
    items: int
    reviewed: int  # items with at least one review
    complete: int  # items with all their reviews
    curated: int  # items with a curated label
    left: int  # items still short of reviews

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class VersionDistribution:
    model_version: str
    counts: dict[str, int]  # answer value (as text) -> number of answers
    n: int  # answers (reviews) counted in ``counts``
    pass_rate: float | None  # pass_fail only: over items (see ``VersionFigure``), not over answers
    items: int = 0  # pass_fail only: the items behind ``pass_rate``
    pass_low: float | None = None
    pass_high: float | None = None


@dataclass(frozen=True)
class VersionFigure:
    """A pass/fail or rating question's figure for one model version, over items with its n.

    See ``reviewapp.item_stats``: each item counts once (its curated answer, else its
    reviews' mean); pass rates have a Wilson interval over items (a bootstrap over items when split
    votes give fractions), rating means a bootstrap over items.
    """

    model_version: str
    question: str
    title: str
    kind: str
    figure: ItemFigure

    def as_dict(self) -> dict[str, Any]:
        return {
            "model_version": self.model_version,
            "question": self.question,
            "title": self.title,
            "kind": self.kind,
            **self.figure.as_dict(),
        }


@dataclass(frozen=True)
class QuestionDistribution:
    key: str
    title: str
    kind: str
    values: list[str]  # every value, in display order
    versions: list[VersionDistribution]


@dataclass(frozen=True)
class QuestionAgreement:
    key: str
    title: str
    kind: str
    level: str
    alpha: Agreement
    percent: Agreement


@dataclass(frozen=True)
class HotSpots:
    by_question: list[tuple[str, int]]  # question key, adjudications naming it
    by_version: list[tuple[str, int, int]]  # model version, adjudications, of which open


@dataclass(frozen=True)
class ProjectStats:
    progress: Progress
    throughput: list[tuple[dt.date, int]] = field(default_factory=list)
    distributions: list[QuestionDistribution] = field(default_factory=list)
    agreement: list[QuestionAgreement] = field(default_factory=list)
    hot_spots: HotSpots | None = None
    figures: list[VersionFigure] = field(default_factory=list)  # per version and question, over items


@dataclass(frozen=True)
class ReviewerStats:
    reviewer_id: int
    username: str
    reviews: int
    median_time_ms: float | None
    gold: GoldAccuracy | None
    consensus_compared: int  # answers compared with the curated label
    consensus_agreed: int
    consensus_rate: float | None
    consensus_ci_low: float | None
    consensus_ci_high: float | None


def _value_text(value: object) -> str:
    if isinstance(value, bool):
        return "pass" if value else "fail"
    return str(value)


def _current_reviews(project: Project) -> Any:
    return Review.objects.filter(project=project, returned_at__isnull=True)


def project_progress(*, project: Project) -> Progress:
    """Three small queries: items (an index-only count), current reviews per item, curated labels.

    Review states come from the reviews, not from ``Item.review_count``: counting over the wide
    item rows reads the whole item heap.
    """
    items = Item.objects.filter(project=project).count()
    per_item = _current_reviews(project).values("item_id").annotate(n=Count("id")).order_by()
    with connection.cursor() as cursor:
        sql, params = per_item.query.sql_with_params()
        cursor.execute(
            f"SELECT COUNT(*), COALESCE(SUM(CASE WHEN s.n >= %s THEN 1 ELSE 0 END), 0) FROM ({sql}) AS s",  # noqa: S608
            [project.reviews_per_item, *params],
        )
        reviewed, complete = cursor.fetchone()
    curated = CuratedLabel.objects.filter(project=project).count()
    return Progress(items=items, reviewed=reviewed, complete=complete, curated=curated, left=items - complete)


def project_throughput(*, project: Project, days: int = THROUGHPUT_DAYS) -> list[tuple[dt.date, int]]:
    """Reviews submitted per day over the last ``days`` days, oldest first, days without any as 0."""
    today = timezone.localdate()
    first = today - dt.timedelta(days=days - 1)
    start = timezone.make_aware(dt.datetime.combine(first, dt.time.min))
    counts = dict(
        _current_reviews(project)
        .filter(submitted_at__gte=start)
        .annotate(day=TruncDate("submitted_at"))
        .values("day")
        .annotate(n=Count("id"))
        .values_list("day", "n")
    )
    return [(first + dt.timedelta(days=i), counts.get(first + dt.timedelta(days=i), 0)) for i in range(days)]


def _expand(kind: str, value: object) -> list[object]:
    """The countable values inside one answer (each option of a multi choice, each chunk rating)."""
    if value is None or value == "":
        return []
    if kind in (Question.Kind.MULTI_CHOICE, Question.Kind.CONTEXT_RELEVANCE) and isinstance(value, list):
        return [v for v in value if v is not None]
    return [value]


def _domain(question: Question) -> list[str]:
    opts = question.options or {}
    if question.kind == Question.Kind.PASS_FAIL:
        return ["pass", "fail"]
    if question.kind in (Question.Kind.CHOICE, Question.Kind.MULTI_CHOICE):
        return [str(c) for c in opts.get("choices", [])]
    if question.kind == Question.Kind.RATING:
        return [str(v) for v in range(int(opts.get("min", 1)), int(opts.get("max", 5)) + 1)]
    if question.kind == Question.Kind.CONTEXT_RELEVANCE:
        return [str(v) for v in range(int(opts.get("min", 0)), int(opts.get("max", 2)) + 1)]
    return []


FIGURE_KINDS = {Question.Kind.PASS_FAIL: "pass_fail", Question.Kind.RATING: "rating"}


def version_figures(*, project: Project, questions: list[Question]) -> list[VersionFigure]:
    """Per model version and pass/fail or rating question: the figure over items, with its n.

    Two queries (current reviews' answers to those questions, curated labels' answers), reading
    only the answer keys needed; item values are formed here (``item_stats.question_values``).
    """
    wanted = [q for q in questions if q.kind in FIGURE_KINDS]
    if not wanted:
        return []
    annotations = {f"a{i}": KeyTransform(q.key, "answers") for i, q in enumerate(wanted)}
    per_version: dict[str, dict[int, ItemAnswers]] = defaultdict(dict)
    reviews = (
        _current_reviews(project)
        .annotate(**annotations)
        .values_list("item__model_version", "item_id", *annotations)
        .order_by()
    )
    for version, item_id, *values in reviews.iterator(chunk_size=5000):
        entry = per_version[version or ""].setdefault(item_id, ItemAnswers(item_id=item_id, reviews=[]))
        entry.reviews.append({q.key: v for q, v in zip(wanted, values, strict=True)})  # type: ignore[union-attr]
    labels = (
        CuratedLabel.objects.filter(project=project)
        .annotate(**annotations)
        .values_list("item__model_version", "item_id", *annotations)
        .order_by()
    )
    for version, item_id, *values in labels.iterator(chunk_size=5000):
        entry = per_version[version or ""].setdefault(item_id, ItemAnswers(item_id=item_id, reviews=[]))
        entry.curated = {q.key: v for q, v in zip(wanted, values, strict=True)}
    out = []
    for version in sorted(per_version):
        entries = list(per_version[version].values())
        for q in wanted:
            kind = FIGURE_KINDS[q.kind]
            values, counts, curated = question_values(entries, key=q.key, kind=kind)
            make = items_rate if kind == "pass_fail" else items_mean
            figure = make(list(values.values()), reviews=sum(counts.values()), curated=curated)
            if figure.items:
                out.append(VersionFigure(version or "(none)", q.key, q.title, kind, figure))
    return out


def rating_distributions(
    *, project: Project, questions: list[Question], figures: list[VersionFigure] | None = None
) -> list[QuestionDistribution]:
    """Per question, per model version: how often each answer was given.

    One GROUP BY over (model version, every question's answer); the groups are few (versions times
    the answer combinations that occur) and are summed per question here.
    """
    stat_questions = [q for q in questions if q.kind in STAT_KINDS]
    if not stat_questions:
        return []
    annotations = {f"a{i}": KeyTransform(q.key, "answers") for i, q in enumerate(stat_questions)}
    rows = (
        _current_reviews(project)
        .annotate(**annotations)
        .values("item__model_version", *annotations)
        .annotate(n=Count("id"))
        .values_list("item__model_version", *annotations, "n")
        .order_by()
    )
    per_question: list[dict[str, dict[str, int]]] = [defaultdict(lambda: defaultdict(int)) for _ in stat_questions]
    for row in rows:
        version, values, n = row[0], row[1:-1], row[-1]
        for question, value, per_version in zip(stat_questions, values, per_question, strict=True):
            for v in _expand(question.kind, value):
                per_version[version][_value_text(v)] += n
    by_version = {(f.model_version, f.question): f.figure for f in figures or []}
    result = []
    for question, per_version in zip(stat_questions, per_question, strict=True):
        domain = _domain(question)
        seen = {v for counts in per_version.values() for v in counts}
        values_order = domain + sorted(seen - set(domain))
        versions = []
        for version in sorted(per_version):
            counts = per_version[version]
            total = sum(counts.values())
            label = version or "(none)"
            figure = by_version.get((label, question.key)) if question.kind == Question.Kind.PASS_FAIL else None
            versions.append(
                VersionDistribution(
                    label,
                    {v: counts.get(v, 0) for v in values_order},
                    total,
                    figure.value if figure else None,
                    figure.items if figure else 0,
                    figure.low if figure else None,
                    figure.high if figure else None,
                )
            )
        result.append(QuestionDistribution(question.key, question.title, question.kind, values_order, versions))
    return result


def agreement_units(*, project: Project, questions: list[Question]) -> dict[str, list[list[object]]]:
    """Per question key, the values each item's reviewers gave: one query reading only
    (item_id, reviewer_id, answers->key) for every question.

    A multi choice answer is one value (the set of options); a chunk-relevance answer gives one
    unit per retrieved chunk.
    """
    keys = [q for q in questions if q.kind in STAT_KINDS]
    if not keys:
        return {}
    annotations = {f"a{i}": KeyTransform(q.key, "answers") for i, q in enumerate(keys)}
    rows = (
        _current_reviews(project).annotate(**annotations).values_list("item_id", "reviewer_id", *annotations).order_by()
    )
    units: dict[str, dict[object, list[object]]] = {q.key: defaultdict(list) for q in keys}
    for row in rows:
        item_id = row[0]
        for q, value in zip(keys, row[2:], strict=True):
            if value is None or value == "" or value == []:
                continue
            bucket = units[q.key]
            if q.kind == Question.Kind.MULTI_CHOICE:
                bucket[item_id].append(tuple(value) if isinstance(value, list) else (value,))
            elif q.kind == Question.Kind.CONTEXT_RELEVANCE:
                if isinstance(value, list):
                    for i, v in enumerate(value):
                        if v is not None:
                            bucket[(item_id, i)].append(v)
            else:
                bucket[item_id].append(value)
    return {key: list(by_unit.values()) for key, by_unit in units.items()}


def question_agreement(*, project: Project, questions: list[Question]) -> list[QuestionAgreement]:
    units = agreement_units(project=project, questions=questions)
    result = []
    for q in questions:
        if q.key not in units:
            continue
        level = AGREEMENT_LEVELS[q.kind]
        alpha = krippendorff_alpha(units[q.key], level=level)
        percent = percent_agreement(units[q.key])
        result.append(QuestionAgreement(q.key, q.title, q.kind, level, alpha, percent))
    return result


def disagreement_hot_spots(*, project: Project) -> HotSpots:
    """Which questions and model versions send most items to adjudication (two grouped queries)."""
    adjudication = Adjudication._meta.db_table
    item = Item._meta.db_table
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                SELECT d.value ->> 'key' AS key, COUNT(*)
                FROM {adjudication} a
                CROSS JOIN LATERAL jsonb_array_elements(
                    CASE WHEN jsonb_typeof(a.disagreements) = 'array' THEN a.disagreements ELSE '[]'::jsonb END
                ) AS d(value)
                WHERE a.project_id = %s AND jsonb_typeof(d.value) = 'object'
                GROUP BY 1
                """,  # noqa: S608 - table names come from the models, values are parameters
                [project.pk],
            )
            question_counts = cursor.fetchall()
    else:
        # The embedded (SQLite) database has no JSON set functions; adjudications are few there.
        counter: dict[str, int] = defaultdict(int)
        for disagreements in Adjudication.objects.filter(project=project).values_list("disagreements", flat=True):
            for entry in disagreements if isinstance(disagreements, list) else []:
                if isinstance(entry, dict):
                    counter[str(entry.get("key") or "")] += 1
        question_counts = list(counter.items())
    by_question = sorted(((k or "", n) for k, n in question_counts), key=lambda r: (-r[1], r[0]))
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT i.model_version, COUNT(*), COALESCE(SUM(CASE WHEN a.status = 'open' THEN 1 ELSE 0 END), 0)
            FROM {adjudication} a JOIN {item} i ON i.id = a.item_id
            WHERE a.project_id = %s
            GROUP BY 1
            """,  # noqa: S608
            [project.pk],
        )
        by_version = sorted(
            ((v or "(none)", n_adj, n_open) for v, n_adj, n_open in cursor.fetchall()),
            key=lambda r: (-r[1], r[0]),
        )
    return HotSpots(by_question=by_question, by_version=by_version)


def project_stats(*, project: Project, full: bool = True) -> ProjectStats:
    """The project dashboard's figures; ``full=False`` gives progress only (for reviewers)."""
    progress = project_progress(project=project)
    if not full:
        return ProjectStats(progress=progress)
    questions = questions_for_project(project=project)
    figures = version_figures(project=project, questions=questions)
    return ProjectStats(
        progress=progress,
        throughput=project_throughput(project=project),
        figures=figures,
        distributions=rating_distributions(project=project, questions=questions, figures=figures),
        agreement=question_agreement(project=project, questions=questions),
        hot_spots=disagreement_hot_spots(project=project),
    )


STATS_CACHE_SECONDS = 3600


def _max_stale_seconds() -> float:
    """Figures at most this old are served while the project changes; the worker refreshes them
    every STATS_REFRESH_SECONDS, so a page only computes them itself when no worker runs."""
    return 2.0 * settings.STATS_REFRESH_SECONDS


def _stats_fingerprint(*, project: Project) -> str:
    """What the figures depend on, in one cheap query (index scans and small tables only).

    Any submitted, edited, returned or deleted review, any adjudication or curated label change
    and question changes give a new fingerprint. New items without reviews and edits of an item's
    model version do not: counting items reads the wide item rows (an index-only scan turns into
    heap fetches on a busy table); the cache's lifetime (STATS_CACHE_SECONDS) bounds those.
    """
    tables = {
        "review": Review._meta.db_table,
        "adjudication": Adjudication._meta.db_table,
        "label": CuratedLabel._meta.db_table,
        "question": Question._meta.db_table,
    }
    sql = """
        SELECT
          (SELECT CONCAT_WS('/', COUNT(*), MAX(updated_at), COUNT(returned_at), MAX(returned_at), MAX(id))
             FROM {review} WHERE project_id = %(p)s),
          (SELECT CONCAT_WS('/', COUNT(*), MAX(updated_at)) FROM {adjudication} WHERE project_id = %(p)s),
          (SELECT CONCAT_WS('/', COUNT(*), MAX(updated_at)) FROM {label} WHERE project_id = %(p)s),
          (SELECT md5(string_agg(CONCAT_WS('/', id, key, kind, options::text, title), ',' ORDER BY id))
             FROM {question} WHERE project_id = %(p)s)
    """.format(**tables)  # noqa: S608 - table names come from the models
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(sql, {"p": project.pk})
            row = cursor.fetchone()
    else:
        row = _stats_fingerprint_portable(project=project)
    raw = "|".join(str(v) for v in row) + f"|{project.reviews_per_item}|{timezone.localdate().isoformat()}"
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def _stats_fingerprint_portable(*, project: Project) -> tuple[object, ...]:
    """The same inputs as the PostgreSQL query, in two portable queries (the embedded SQLite database)."""
    review, adjudication, label = (m._meta.db_table for m in (Review, Adjudication, CuratedLabel))
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT (SELECT COUNT(*) FROM {review} WHERE project_id = %(p)s),
                   (SELECT MAX(updated_at) FROM {review} WHERE project_id = %(p)s),
                   (SELECT COUNT(returned_at) FROM {review} WHERE project_id = %(p)s),
                   (SELECT MAX(returned_at) FROM {review} WHERE project_id = %(p)s),
                   (SELECT MAX(id) FROM {review} WHERE project_id = %(p)s),
                   (SELECT COUNT(*) FROM {adjudication} WHERE project_id = %(p)s),
                   (SELECT MAX(updated_at) FROM {adjudication} WHERE project_id = %(p)s),
                   (SELECT COUNT(*) FROM {label} WHERE project_id = %(p)s),
                   (SELECT MAX(updated_at) FROM {label} WHERE project_id = %(p)s)
            """,  # noqa: S608 - table names come from the models
            {"p": project.pk},
        )
        row = cursor.fetchone()
    questions = Question.objects.filter(project=project).order_by("id")
    return (*row, repr(list(questions.values_list("id", "key", "kind", "options", "title"))))


def _stats_key(project: Project, full: bool) -> str:
    # v2: figures over items (older cached ProjectStats lack them)
    return f"reviewdesk:stats:v2:{project.pk}:{int(full)}"


def project_stats_cached(*, project: Project, full: bool = True) -> ProjectStats:
    """``project_stats``, recomputed when the project changes (see ``_stats_fingerprint``).

    The worker keeps the figures of changed projects fresh (``projects_stats_refresh``, every
    STATS_REFRESH_SECONDS), so a page normally costs the fingerprint query and a cache read.
    While reviews keep arriving the fingerprint changes on every request; figures up to
    ``_max_stale_seconds()`` old are then served rather than recomputed on every page view.
    The cache is shared by all processes, so the times in it are wall-clock times.
    """
    key = _stats_key(project, full)
    fingerprint = _stats_fingerprint(project=project)
    cached = cache.get(key)
    now = time.time()
    if cached is not None:
        cached_fingerprint, computed_at, stats = cached
        if cached_fingerprint == fingerprint or now - computed_at < _max_stale_seconds():
            return stats
    stats = project_stats(project=project, full=full)
    cache.set(key, (fingerprint, now, stats), STATS_CACHE_SECONDS)
    return stats


def project_stats_refresh(*, project: Project) -> bool:
    """Recompute the project's cached figures if the project changed since; True when it did."""
    fingerprint = _stats_fingerprint(project=project)
    refreshed = False
    for full in (True, False):
        key = _stats_key(project, full)
        cached = cache.get(key)
        if cached is None and not full:
            continue  # the short form is computed only once a page asked for it
        if cached is not None and cached[0] == fingerprint:
            continue
        cache.set(key, (fingerprint, time.time(), project_stats(project=project, full=full)), STATS_CACHE_SECONDS)
        refreshed = True
    return refreshed


def projects_stats_refresh() -> int:
    """Refresh the figures of every project that changed (the beat task); returns how many were recomputed."""
    return sum(project_stats_refresh(project=project) for project in Project.objects.order_by("id"))


def _consensus_counts(*, project: Project, keys: list[str]) -> dict[int, tuple[int, int]]:
    """Per reviewer: (answers compared with the curated label, of which equal), in one query."""
    if not keys:
        return {}
    if connection.vendor != "postgresql":
        return _consensus_counts_portable(project=project, keys=keys)
    review = Review._meta.db_table
    label = CuratedLabel._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT r.reviewer_id, COUNT(*), COUNT(*) FILTER (WHERE r.answers -> k.key = c.answers -> k.key)
            FROM {review} r
            JOIN {label} c ON c.item_id = r.item_id
            CROSS JOIN unnest(%s::text[]) AS k(key)
            WHERE r.project_id = %s AND r.returned_at IS NULL
              AND COALESCE(jsonb_typeof(r.answers -> k.key), 'null') <> 'null'
              AND COALESCE(jsonb_typeof(c.answers -> k.key), 'null') <> 'null'
            GROUP BY r.reviewer_id
            """,  # noqa: S608
            [keys, project.pk],
        )
        return {reviewer_id: (compared, agreed) for reviewer_id, compared, agreed in cursor.fetchall()}


def _consensus_counts_portable(*, project: Project, keys: list[str]) -> dict[int, tuple[int, int]]:
    """``_consensus_counts`` computed in Python (the embedded SQLite database has no unnest)."""
    labels = dict(CuratedLabel.objects.filter(project=project).values_list("item_id", "answers"))
    counts: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    rows = _current_reviews(project).filter(item_id__in=list(labels)).values_list("reviewer_id", "item_id", "answers")
    for reviewer_id, item_id, answers in rows:
        label = labels[item_id] or {}
        for key in keys:
            mine, final = (answers or {}).get(key), label.get(key)
            if mine is None or final is None:
                continue
            counts[reviewer_id][0] += 1
            counts[reviewer_id][1] += int(mine == final)
    return {reviewer_id: (c[0], c[1]) for reviewer_id, c in counts.items()}


def _medians_portable(*, project: Project) -> dict[int, float | None]:
    times: dict[int, list[int]] = defaultdict(list)
    for reviewer_id, ms in _current_reviews(project).values_list("reviewer_id", "time_on_task_ms"):
        if ms is not None:
            times[reviewer_id].append(ms)
    return {reviewer_id: float(statistics.median(values)) for reviewer_id, values in times.items()}


def reviewer_stats(*, project: Project) -> list[ReviewerStats]:
    """Per reviewer: reviews, median time per item, gold accuracy and agreement with the curated label."""
    per_reviewer = _current_reviews(project).values("reviewer_id", "reviewer__username")
    if connection.vendor == "postgresql":
        rows = list(
            per_reviewer.annotate(n=Count("id"), median=Median("time_on_task_ms"))
            .values_list("reviewer_id", "reviewer__username", "n", "median")
            .order_by()
        )
    else:  # no PERCENTILE_CONT in the embedded SQLite database
        medians = _medians_portable(project=project)
        rows = [
            (reviewer_id, username, n, medians.get(reviewer_id))
            for reviewer_id, username, n in per_reviewer.annotate(n=Count("id"))
            .values_list("reviewer_id", "reviewer__username", "n")
            .order_by()
        ]
    gold = {g.reviewer_id: g for g in gold_accuracy_for_reviewers(project=project)}
    keys = [q.key for q in questions_for_project(project=project) if q.kind in STAT_KINDS]
    consensus = _consensus_counts(project=project, keys=keys)
    result = []
    for reviewer_id, username, n, median in rows:
        compared, agreed = consensus.get(reviewer_id, (0, 0))
        low, high = wilson(agreed, compared) or (None, None)
        result.append(
            ReviewerStats(
                reviewer_id=reviewer_id,
                username=username,
                reviews=n,
                median_time_ms=median,
                gold=gold.get(reviewer_id),
                consensus_compared=compared,
                consensus_agreed=agreed,
                consensus_rate=agreed / compared if compared else None,
                consensus_ci_low=low,
                consensus_ci_high=high,
            )
        )
    return sorted(result, key=lambda r: (-r.reviews, r.username))


def project_stats_as_dict(*, stats: ProjectStats, reviewers: list[ReviewerStats] | None = None) -> dict[str, Any]:
    """Plain data for the API and for JSON."""
    data: dict[str, Any] = {
        "progress": stats.progress.as_dict(),
        "throughput": [{"day": day.isoformat(), "reviews": n} for day, n in stats.throughput],
        "distributions": [
            {
                "question": d.key,
                "title": d.title,
                "kind": d.kind,
                "values": d.values,
                "versions": [
                    {
                        "model_version": v.model_version,
                        "counts": v.counts,
                        "n": v.n,
                        "pass_rate": v.pass_rate,
                        "items": v.items,
                        "pass_low": v.pass_low,
                        "pass_high": v.pass_high,
                    }
                    for v in d.versions
                ],
            }
            for d in stats.distributions
        ],
        "figures": [f.as_dict() for f in stats.figures],
        "agreement": [
            {
                "question": a.key,
                "title": a.title,
                "kind": a.kind,
                "level": a.level,
                "alpha": a.alpha.as_dict(),
                "percent_agreement": a.percent.as_dict(),
            }
            for a in stats.agreement
        ],
        "hot_spots": {
            "by_question": [{"question": k, "adjudications": n} for k, n in stats.hot_spots.by_question]
            if stats.hot_spots
            else [],
            "by_model_version": [
                {"model_version": v, "adjudications": n, "open": m} for v, n, m in stats.hot_spots.by_version
            ]
            if stats.hot_spots
            else [],
        },
    }
    if reviewers is not None:
        data["reviewers"] = [
            {
                "reviewer": r.username,
                "reviews": r.reviews,
                "median_time_ms": r.median_time_ms,
                "gold_accuracy": r.gold.accuracy if r.gold else None,
                "gold_n": r.gold.n if r.gold else 0,
                "gold_ci_low": r.gold.ci_low if r.gold else None,
                "gold_ci_high": r.gold.ci_high if r.gold else None,
                "consensus_rate": r.consensus_rate,
                "consensus_compared": r.consensus_compared,
                "consensus_ci_low": r.consensus_ci_low,
                "consensus_ci_high": r.consensus_ci_high,
            }
            for r in reviewers
        ]
    return json.loads(json.dumps(data))
