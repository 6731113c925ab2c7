"""Monitoring: quality per model version over time, from precomputed hour and day buckets.

**Per item first.** Every figure is a mean over items (``reviewapp.item_stats``): an item's value of
the human pass rate is its curated label's answer to the project's primary pass/fail question, else
the mean of its current reviews' answers (``item_stats.item_value``, the rule the release evidence
uses); retrieval precision is the share of its rated chunks that humans found relevant (curated
per-chunk labels, else the mean over its reviews); a judge or code score is the newest result of
that scorer on the item's own (stored) response; latency and tokens come from the trace the item
was made from. An item is counted at its trace's timestamp when it carries one, else when it was
created, under its model version.

**Buckets merge.** A bucket keeps n (items), the sum of the values and the sum of their squares.
A rate's interval is Wilson's over items (split votes count their fraction as successes); a mean's
is the normal interval mean ± z·sd/√n. Volume is n.

**Refresh.** ``monitoring_refresh`` recomputes the values of the items touched since its watermark
(items created or updated, reviews submitted, edited or sent back, curated labels, new evaluation
results, end users' feedback) and then recomputes each bucket those items were in or are now in,
exactly, from the values table: the same input gives the same buckets however often it runs.
Not seen by an incremental refresh (a full one fixes them): a deleted item or curated label.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import re
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal

import msgspec
from django.conf import settings
from django.db import connection, models, transaction
from django.db.models import Count, F, Max, Q, Sum
from django.db.models.functions import TruncDay, TruncHour
from django.utils import timezone

from evaluations.models import RunResult
from pipelines.models import Feedback, Granularity, MonitoringBucket, MonitoringRefresh, MonitoringValue, Rollout
from pipelines.models.feedback import THUMBS_DOWN as FEEDBACK_DOWN
from pipelines.releases.evidence import primary_pass_question
from reviewapp import item_stats
from reviewapp.csv_safe import csv_cell
from reviewapp.errors import ValidationFailed
from reviewapp.jobs import job_claim, job_enqueue, job_fail, job_finish, task_send_on_commit
from reviewapp.models import ApiToken, CuratedLabel, Item, Project, Question, Review
from reviewapp.permissions import Capability
from reviewapp.selectors.projects import project_get_for_user
from reviewapp.typed_input import TypedInput, field_error, says, struct_errors
from reviewapp.usertypes import AnyUser

logger = logging.getLogger(__name__)

CHUNK = 2000  # items per round of value recomputation

VOLUME = "volume"
PASS_RATE = "human_pass_rate"  # noqa: S105 - a metric name, not a secret
PRECISION = "retrieval_precision"
LATENCY = "latency_ms"
TOKENS = "tokens"
THUMBS_DOWN = "thumbs_down_rate"
SCORE_PREFIX = "score:"  # + the suite entry's name (a judge or code scorer)

COUNT, RATE, MEAN = "count", "rate", "mean"


@dataclass(frozen=True)
class Metric:
    name: str
    title: str
    kind: str  # COUNT (n), RATE (0..1, Wilson over items) or MEAN (normal interval over items)
    unit: str = ""
    help: str = ""


FIXED_METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric(VOLUME, "Volume", COUNT, "items", "Items per bucket, at their trace's time (else when ingested)."),
        Metric(
            PASS_RATE,
            "Human pass rate",
            RATE,
            help="The primary pass/fail question over items: each item its curated label, else its reviews' mean.",
        ),
        Metric(THUMBS_DOWN, "End-user thumbs-down rate", RATE, help="Share of end users' thumbs that are down."),
        Metric(
            PRECISION,
            "Retrieval precision",
            RATE,
            help="Share of an item's rated retrieved chunks that humans labelled relevant, over items.",
        ),
        Metric(LATENCY, "Latency per request", MEAN, "ms", "From the trace (metadata latency_ms)."),
        Metric(TOKENS, "Tokens per request", MEAN, "tokens", "From the trace (metadata total_tokens or tokens)."),
    )
}


def metric_get(name: str) -> Metric | None:
    """The metric called ``name``: a fixed one, or ``score:<scorer>`` (a judge or code scorer's mean)."""
    if name in FIXED_METRICS:
        return FIXED_METRICS[name]
    if name.startswith(SCORE_PREFIX) and len(name) > len(SCORE_PREFIX):
        scorer = name[len(SCORE_PREFIX) :]
        return Metric(name, f"Score: {scorer}", MEAN, help="The newest result of this scorer on each item, over items.")
    return None


def metrics_of(*, project: Project) -> list[Metric]:
    """The fixed metrics, then the scorers with buckets in the project (by name; read from the day
    buckets, 24 times fewer than the hours)."""
    names = (
        MonitoringBucket.objects.filter(project=project, granularity=Granularity.DAY, metric__startswith=SCORE_PREFIX)
        .values_list("metric", flat=True)
        .distinct()
        .order_by("metric")
    )
    scores = [m for m in (metric_get(n) for n in names) if m is not None]
    return [*FIXED_METRICS.values(), *scores]


# --- per-item values -----------------------------------------------------------------------------


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def item_time(metadata: Any, created_at: datetime) -> datetime:
    """When the request happened: the trace's timestamp in the item's metadata, else its creation."""
    if isinstance(metadata, dict):
        for key in ("trace_timestamp", "timestamp"):
            raw = metadata.get(key)
            if isinstance(raw, str) and raw:
                try:
                    return _aware(datetime.fromisoformat(raw))
                except ValueError:
                    continue
    return created_at


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def item_tokens(metadata: Any) -> float | None:
    """Tokens of the request, when the trace carried them (``total_tokens``, ``tokens`` or a usage dict)."""
    if not isinstance(metadata, dict):
        return None
    for key in ("total_tokens", "tokens"):
        found = _number(metadata.get(key))
        if found is not None:
            return found
    usage = metadata.get("token_usage") or metadata.get("usage")
    if isinstance(usage, dict):
        return _number(usage.get("total_tokens"))
    return None


def chunk_precision(ratings: Any, *, relevant_above: float) -> float | None:
    """Share of the rated chunks whose rating is above the scale's minimum (None: none rated)."""
    if not isinstance(ratings, list):
        return None
    rated = [v for v in (_number(r) for r in ratings) if v is not None]
    if not rated:
        return None
    return sum(1 for v in rated if v > relevant_above) / len(rated)


def precision_value(
    *, curated: dict[str, Any] | None, reviews: list[dict[str, Any]], key: str, low: float
) -> float | None:
    """An item's retrieval precision: its curated per-chunk labels', else the mean of its reviews'."""
    if curated is not None:
        own = chunk_precision(curated.get(key), relevant_above=low)
        if own is not None:
            return own
    per_review = [
        p for p in (chunk_precision((r or {}).get(key), relevant_above=low) for r in reviews) if p is not None
    ]
    return math.fsum(per_review) / len(per_review) if per_review else None


# End users' feedback belongs to another part of pipelines; read by name so monitoring runs (without
# that metric) while the model does not exist. Thumbs are its ``value`` field: up or down.
def thumbs_down_values(*, item_ids: list[int]) -> dict[int, float]:
    """Per item: the share of its end users' thumbs that are down (items without thumbs are left out)."""
    if not item_ids:
        return {}
    rows = Feedback.objects.filter(item_id__in=item_ids, kind=Feedback.Kind.THUMBS).values_list("item_id", "value")
    thumbs: dict[int, list[float]] = defaultdict(list)
    for item_id, value in rows:
        thumbs[item_id].append(1.0 if value == FEEDBACK_DOWN else 0.0)
    return {item_id: sum(v) / len(v) for item_id, v in thumbs.items()}


def feedback_changed_items(*, project: Project, since: datetime) -> set[int]:
    """Items whose end users' feedback arrived, or joined them, since ``since``."""
    rows = Feedback.objects.filter(
        Q(received_at__gte=since) | Q(joined_at__gte=since), project=project, item__isnull=False
    )
    return set(rows.values_list("item_id", flat=True))


def _stored_response_results() -> Q:
    # Results on the item's own response (a "stored" target); other targets scored other responses.
    return Q(run__target__kind="stored") | ~Q(run__target__has_key="kind")


@dataclass(frozen=True)
class Questions:
    pass_key: str  # "" without a pass/fail question
    relevance_key: str  # "" without a context_relevance question
    relevance_low: float  # ratings above this count as relevant (the scale's minimum)


def questions_for(*, project: Project) -> Questions:
    primary = primary_pass_question(project=project)
    relevance = (
        Question.objects.filter(project=project, kind=Question.Kind.CONTEXT_RELEVANCE).order_by("order", "id").first()
    )
    low = _number((relevance.options or {}).get("min")) if relevance is not None else None
    return Questions(
        pass_key=primary.key if primary else "",
        relevance_key=relevance.key if relevance else "",
        relevance_low=low if low is not None else 0.0,
    )


ValueKey = tuple[int, str]  # (item id, metric)
ValueRow = tuple[str, datetime, float]  # (model version, at, value)


def item_values(*, project: Project, item_ids: list[int], questions: Questions) -> dict[ValueKey, ValueRow]:
    """The monitoring values of these items: five queries for the whole chunk."""
    items = Item.objects.filter(project=project, pk__in=item_ids).values_list(
        "id", "model_version", "created_at", "metadata"
    )
    reviews: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for item_id, answers in Review.objects.filter(item_id__in=item_ids, returned_at__isnull=True).values_list(
        "item_id", "answers"
    ):
        reviews[item_id].append(answers or {})
    labels = dict(CuratedLabel.objects.filter(item_id__in=item_ids).values_list("item_id", "answers"))
    scores: dict[int, dict[str, float]] = defaultdict(dict)
    results = (
        RunResult.objects.filter(_stored_response_results(), item_id__in=item_ids, error="", number__isnull=False)
        .order_by("id")
        .values_list("item_id", "scorer", "number")
    )
    for item_id, scorer, number in results:
        if number is not None:  # (filtered above)
            scores[item_id][scorer] = float(number)  # in id order: the newest result wins
    thumbs = thumbs_down_values(item_ids=item_ids)
    out: dict[ValueKey, ValueRow] = {}
    for item_id, version, created_at, metadata in items:
        at = item_time(metadata, created_at)
        found: list[tuple[str, float | None]] = [(VOLUME, 1.0)]
        curated = labels.get(item_id)
        if curated is not None and not isinstance(curated, dict):
            curated = {}
        answers = reviews.get(item_id, [])
        if questions.pass_key:
            value, _, _ = item_stats.item_value(
                curated=curated, reviews=answers, key=questions.pass_key, kind="pass_fail"
            )
            found.append((PASS_RATE, value))
        if questions.relevance_key:
            found.append(
                (
                    PRECISION,
                    precision_value(
                        curated=curated, reviews=answers, key=questions.relevance_key, low=questions.relevance_low
                    ),
                )
            )
        if isinstance(metadata, dict):
            found.append((LATENCY, _number(metadata.get("latency_ms"))))
            found.append((TOKENS, item_tokens(metadata)))
        found.append((THUMBS_DOWN, thumbs.get(item_id)))
        found.extend((SCORE_PREFIX + scorer[:100], number) for scorer, number in scores.get(item_id, {}).items())
        for metric, value in found:
            if value is not None:
                out[(item_id, metric)] = (version, at, value)
    return out


# --- buckets -------------------------------------------------------------------------------------
# Hour buckets are recomputed from the values; day buckets from their hours (n and the sums add up
# exactly), so a change recomputes one hour of items, not one day.

STEP = {Granularity.HOUR: timedelta(hours=1), Granularity.DAY: timedelta(days=1)}
RANGES_PER_QUERY = 200  # OR-ed time ranges in one query (SQLite's expression depth is 1000)


def bucket_start(at: datetime, granularity: str) -> datetime:
    at = at.astimezone(UTC)
    if granularity == Granularity.DAY:
        return at.replace(hour=0, minute=0, second=0, microsecond=0)
    return at.replace(minute=0, second=0, microsecond=0)


Touched = set[tuple[str, str, datetime]]  # (metric, model version, hour start)


def _ranges(starts: Iterable[datetime], step: timedelta) -> list[tuple[datetime, datetime]]:
    """Sorted bucket starts as [lo, hi) ranges of consecutive buckets."""
    out: list[tuple[datetime, datetime]] = []
    for start in sorted(set(starts)):
        if out and out[-1][1] == start:
            out[-1] = (out[-1][0], start + step)
        else:
            out.append((start, start + step))
    return out


def _sums(rows: Any, group: tuple[str, ...]) -> dict[tuple[Any, ...], tuple[int, float, float]]:
    return {
        tuple(_aware(r[f]) if f == "start" else r[f] for f in group): (
            int(r["n"]),
            float(r["total"] or 0.0),
            float(r["total_sq"] or 0.0),
        )
        for r in rows
    }


def _hour_sums(values: models.QuerySet[MonitoringValue]) -> dict[tuple[Any, ...], tuple[int, float, float]]:
    rows = (
        values.annotate(start=TruncHour("at", tzinfo=UTC))
        .values("metric", "model_version", "start")
        .annotate(n=Count("id"), total=Sum("value"), total_sq=Sum(F("value") * F("value")))
        .order_by()
    )
    return _sums(rows, ("metric", "model_version", "start"))


def _day_sums(hours: models.QuerySet[MonitoringBucket]) -> dict[tuple[Any, ...], tuple[int, float, float]]:
    rows = (
        hours.annotate(day=TruncDay("start", tzinfo=UTC))
        .values("metric", "model_version", "day")
        .annotate(n=Sum("n"), total=Sum("total"), total_sq=Sum("total_sq"))
        .order_by()
    )
    return {
        (r["metric"], r["model_version"], _aware(r["day"])): (int(r["n"]), float(r["total"]), float(r["total_sq"]))
        for r in rows
    }


def _write(
    project: Project,
    granularity: str,
    sums: dict[tuple[Any, ...], tuple[int, float, float]],
    wanted: set[tuple[str, str, datetime]] | None,
) -> int:
    """Upsert the buckets in ``sums``; delete the ``wanted`` ones it lacks (they lost their last item)."""
    now = timezone.now()
    rows = [
        MonitoringBucket(
            project=project,
            granularity=granularity,
            metric=metric,
            model_version=version,
            start=start,
            n=n,
            total=total,
            total_sq=total_sq,
            refreshed_at=now,
        )
        for (metric, version, start), (n, total, total_sq) in sums.items()
    ]
    for i in range(0, len(rows), 2000):
        MonitoringBucket.objects.bulk_create(
            rows[i : i + 2000],
            update_conflicts=True,
            unique_fields=["project", "granularity", "metric", "model_version", "start"],
            update_fields=["n", "total", "total_sq", "refreshed_at"],
        )
    gone: dict[tuple[str, str], list[datetime]] = defaultdict(list)
    for metric, version, start in wanted or ():
        if (metric, version, start) not in sums:
            gone[(metric, version)].append(start)
    for (metric, version), starts in gone.items():
        MonitoringBucket.objects.filter(
            project=project, granularity=granularity, metric=metric, model_version=version, start__in=starts
        ).delete()
    return len(rows) + sum(len(v) for v in gone.values())


def _grouped(touched: Touched) -> dict[tuple[str, str], set[datetime]]:
    groups: dict[tuple[str, str], set[datetime]] = defaultdict(set)
    for metric, version, start in touched:
        groups[(metric, version)].add(start)
    return groups


def _in_ranges(field: str, ranges: list[tuple[datetime, datetime]]) -> Q:
    where = Q()
    for lo, hi in ranges:
        where |= Q(**{f"{field}__gte": lo, f"{field}__lt": hi})
    return where


def buckets_recompute(*, project: Project, touched: Touched) -> int:
    """Recompute exactly the hour buckets in ``touched`` from the values, then their days from their hours."""
    written = 0
    days: Touched = set()
    for granularity in (Granularity.HOUR, Granularity.DAY):
        wanted = touched if granularity == Granularity.HOUR else days
        for (metric, version), starts in _grouped(wanted).items():
            ranges = _ranges(starts, STEP[granularity])
            for i in range(0, len(ranges), RANGES_PER_QUERY):
                where = _in_ranges(
                    "at" if granularity == Granularity.HOUR else "start", ranges[i : i + RANGES_PER_QUERY]
                )
                if granularity == Granularity.HOUR:
                    sums = _hour_sums(
                        MonitoringValue.objects.filter(where, project=project, metric=metric, model_version=version)
                    )
                else:
                    sums = _day_sums(
                        MonitoringBucket.objects.filter(
                            where, project=project, granularity=Granularity.HOUR, metric=metric, model_version=version
                        )
                    )
                lo, hi = ranges[i][0], ranges[min(i + RANGES_PER_QUERY, len(ranges)) - 1][1]
                batch = {(metric, version, s) for s in starts if lo <= s < hi}
                written += _write(project, granularity, sums, batch)
        days = {(metric, version, bucket_start(start, Granularity.DAY)) for metric, version, start in touched}
    return written


def buckets_rebuild(*, project: Project) -> int:
    """Every bucket of the project anew from the values (a full refresh): hours, then days from hours."""
    with transaction.atomic():
        MonitoringBucket.objects.filter(project=project).delete()
        written = _write(project, Granularity.HOUR, _hour_sums(MonitoringValue.objects.filter(project=project)), None)
        hours = MonitoringBucket.objects.filter(project=project, granularity=Granularity.HOUR)
        written += _write(project, Granularity.DAY, _day_sums(hours), None)
    return written


# --- the refresh ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RefreshResult:
    full: bool
    items: int  # items whose values were recomputed
    buckets: int  # buckets rewritten or removed
    changed_since: datetime  # the next refresh's watermark
    result_id: int
    seconds: float


def touched_items(*, project: Project, since: datetime, result_after: int) -> set[int]:
    """Items whose values may have changed: the item itself, its reviews, curated label, results, feedback."""
    ids: set[int] = set(Item.objects.filter(project=project, updated_at__gte=since).values_list("id", flat=True))
    ids |= set(
        Review.objects.filter(Q(updated_at__gte=since) | Q(returned_at__gte=since), project=project).values_list(
            "item_id", flat=True
        )
    )
    ids |= set(CuratedLabel.objects.filter(project=project, updated_at__gte=since).values_list("item_id", flat=True))
    ids |= set(RunResult.objects.filter(run__project=project, pk__gt=result_after).values_list("item_id", flat=True))
    ids |= feedback_changed_items(project=project, since=since)
    return ids


def _hour(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def values_upsert(rows: list[tuple[int, int, str, str, datetime, float]]) -> None:
    """Insert or update values (project, item, metric, version, at, value) in one statement per batch.

    Plain SQL (the same on PostgreSQL and SQLite): a full refresh writes a few rows per item, and
    building model instances for millions of them costs more than the database does.
    """
    if not rows:
        return
    ops = connection.ops
    q = ops.quote_name
    columns = ", ".join(q(c) for c in ("project_id", "item_id", "metric", "model_version", "at", "value"))
    updates = ", ".join(f"{q(c)} = excluded.{q(c)}" for c in ("model_version", "at", "value"))
    table = q(MonitoringValue._meta.db_table)
    conflict = f"ON CONFLICT ({q('item_id')}, {q('metric')}) DO UPDATE SET {updates}"
    sql = f"INSERT INTO {table} ({columns}) VALUES (%s, %s, %s, %s, %s, %s) {conflict}"  # noqa: S608 - quoted names only
    adapt = ops.adapt_datetimefield_value
    with connection.cursor() as cursor:
        for start in range(0, len(rows), 5000):
            cursor.executemany(
                sql, [(p, i, m, v, adapt(at), value) for p, i, m, v, at, value in rows[start : start + 5000]]
            )


def _values_replace(*, project: Project, item_ids: list[int], questions: Questions, touched: Touched | None) -> None:
    """Recompute the values of these items, writing only those that changed; note in ``touched`` the
    hours they were in and are now in."""
    new = item_values(project=project, item_ids=item_ids, questions=questions)
    old: dict[ValueKey, ValueRow] = {
        (item_id, metric): (version, at, value)
        for item_id, metric, version, at, value in MonitoringValue.objects.filter(item_id__in=item_ids).values_list(
            "item_id", "metric", "model_version", "at", "value"
        )
    }
    changed = [key for key, row in new.items() if old.get(key) != row]
    gone = [key for key in old if key not in new]
    if touched is not None:
        for key in [*changed, *gone]:
            for row in (old.get(key), new.get(key)):
                if row is not None:
                    touched.add((key[1], row[0], _hour(row[1])))
    by_metric: dict[str, list[int]] = defaultdict(list)
    for item_id, metric in gone:
        by_metric[metric].append(item_id)
    with transaction.atomic():
        for metric, ids in by_metric.items():
            MonitoringValue.objects.filter(metric=metric, item_id__in=ids).delete()
        values_upsert([(project.pk, item_id, metric, *new[(item_id, metric)]) for item_id, metric in changed])


def monitoring_refresh(
    *, project: Project, changed_since: datetime | None = None, result_id: int = 0, full: bool = False
) -> RefreshResult:
    """Bring the project's buckets up to date: the items changed since the watermark, then their buckets.

    Without a watermark (or with ``full``) every item and every bucket is recomputed. Idempotent: a
    bucket is always recomputed from the values, never adjusted by a delta.
    """
    began = time.monotonic()
    now = timezone.now()
    # Taken before reading, so a result written meanwhile is read now or by the next refresh.
    newest_result = RunResult.objects.filter(run__project=project).aggregate(m=Max("id"))["m"] or 0
    questions = questions_for(project=project)
    full = full or changed_since is None
    if full:
        ids = list(Item.objects.filter(project=project).order_by("id").values_list("id", flat=True))
        for start in range(0, len(ids), CHUNK):
            _values_replace(project=project, item_ids=ids[start : start + CHUNK], questions=questions, touched=None)
        buckets = buckets_rebuild(project=project)
    else:
        assert changed_since is not None
        overlap = timedelta(seconds=settings.MONITORING_REFRESH_OVERLAP_SECONDS)
        ids = sorted(touched_items(project=project, since=changed_since - overlap, result_after=result_id))
        touched: Touched = set()
        for start in range(0, len(ids), CHUNK):
            _values_replace(project=project, item_ids=ids[start : start + CHUNK], questions=questions, touched=touched)
        buckets = buckets_recompute(project=project, touched=touched)
    return RefreshResult(
        full=full,
        items=len(ids),
        buckets=buckets,
        changed_since=now,
        result_id=newest_result,
        seconds=time.monotonic() - began,
    )


def monitoring_refresh_queue(*, projects: Iterable[Project] | None = None) -> list[int]:
    """Queue the refresh job of each project (beat): a row per project, sent again once it finished.

    A refresh still queued or running is left alone (the jobs kernel's sweeper re-sends it if its
    worker died). The ids of the rows sent.
    """
    now = timezone.now()
    sent: list[int] = []
    for project in projects if projects is not None else Project.objects.all():
        row, created = MonitoringRefresh.objects.get_or_create(project=project, defaults={"enqueued_at": now})
        if created or MonitoringRefresh.objects.filter(pk=row.pk, status__in=["done", "failed"]).update(
            status="queued", attempts=0, error="", enqueued_at=now
        ):
            sent.append(row.pk)
    job_enqueue(MonitoringRefresh, sent)
    return sent


def monitoring_refresh_execute(*, refresh_id: int) -> RefreshResult | None:
    """Run one project's refresh row (the task): claim, refresh from its watermarks, record them."""
    owner = job_claim(MonitoringRefresh, refresh_id)
    if owner is None:
        return None
    row = MonitoringRefresh.objects.select_related("project").get(pk=refresh_id)
    try:
        result = monitoring_refresh(project=row.project, changed_since=row.changed_since, result_id=row.result_id)
    except Exception as exc:
        job_fail(MonitoringRefresh, refresh_id, owner, f"{type(exc).__name__}: {exc}", transient=True)
        raise
    job_finish(
        MonitoringRefresh,
        refresh_id,
        owner,
        changed_since=result.changed_since,
        result_id=result.result_id,
        last_items=result.items,
        last_buckets=result.buckets,
        last_seconds=result.seconds,
        error="",
    )
    # The alert rules read the buckets' values just written (by name: services never import tasks).
    task_send_on_commit("pipelines.alerts_evaluate", row.project_id)
    return result


# --- reading -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Point:
    """One bucket of one model version: n items, the value (a rate, a mean, or n) and its 95% interval."""

    start: datetime
    model_version: str
    n: int
    value: float | None
    low: float | None
    high: float | None


INTERVALS = {
    RATE: item_stats.WILSON + " (split votes count their fraction)",
    MEAN: "normal interval over items (mean ± 1.96·sd/√n)",
    COUNT: "",
}


def point_from(metric: Metric, *, start: datetime, model_version: str, n: int, total: float, total_sq: float) -> Point:
    """A bucket's figure and interval from its merged sums."""
    if metric.kind == COUNT:
        return Point(start, model_version, n, float(n), None, None)
    if n <= 0:
        return Point(start, model_version, n, None, None, None)
    mean = total / n
    if metric.kind == RATE:
        ci = item_stats.wilson(total, n)
        return Point(start, model_version, n, mean, ci[0] if ci else None, ci[1] if ci else None)
    if n < 2:
        return Point(start, model_version, n, mean, None, None)
    variance = max(0.0, (total_sq - total * total / n) / (n - 1))
    half = item_stats.z_for(item_stats.DEFAULT_CONFIDENCE) * math.sqrt(variance / n)
    return Point(start, model_version, n, mean, mean - half, mean + half)


def monitoring_series(
    *,
    project: Project,
    granularity: str,
    since: datetime,
    until: datetime,
    metrics: list[Metric],
    model_version: str | None = None,
) -> dict[str, list[Point]]:
    """Per metric: its buckets in [since, until), oldest first, every version (or the one asked for). One query."""
    by_name = {m.name: m for m in metrics}
    rows = MonitoringBucket.objects.filter(
        project=project, granularity=granularity, metric__in=list(by_name), start__gte=since, start__lt=until
    )
    if model_version is not None:
        rows = rows.filter(model_version=model_version)
    out: dict[str, list[Point]] = {name: [] for name in by_name}
    for metric, version, start, n, total, total_sq in rows.order_by("start", "model_version").values_list(
        "metric", "model_version", "start", "n", "total", "total_sq"
    ):
        out[metric].append(
            point_from(by_name[metric], start=start, model_version=version, n=n, total=total, total_sq=total_sq)
        )
    return out


def model_versions_monitored(*, project: Project) -> list[str]:
    """The model versions with volume, for the filter (from the day buckets: a few rows per day)."""
    names = (
        MonitoringBucket.objects.filter(project=project, granularity=Granularity.DAY, metric=VOLUME)
        .values_list("model_version", flat=True)
        .distinct()
    )
    return sorted(set(names), key=lambda v: (len(v), v))


@dataclass(frozen=True)
class ReleaseMark:
    at: datetime
    kind: str  # "promotion" or "rollback"
    label: str


def release_marks(*, project: Project, since: datetime, until: datetime) -> list[ReleaseMark]:
    """Promotions and rollbacks that went live (or are going live) in [since, until), oldest first."""
    rows = (
        Rollout.objects.filter(request__project=project)
        .exclude(status=Rollout.Status.FAILED)
        .filter(created_at__lt=until)
        .select_related("to_version", "environment")
        .order_by("created_at")
    )
    marks = []
    for r in rows:
        at = r.finished_at or r.started_at or r.created_at
        if not since <= at < until:
            continue
        if r.kind == Rollout.Kind.ROLLBACK:
            marks.append(ReleaseMark(at, "rollback", f"rollback of {r.environment.name} to v{r.to_version.version}"))
        else:
            marks.append(ReleaseMark(at, "promotion", f"v{r.to_version.version} to {r.environment.name}"))
    return marks


def monitoring_refresh_status(*, project: Project) -> MonitoringRefresh | None:
    return MonitoringRefresh.objects.filter(project=project).first()


# --- what a page or API call asks for --------------------------------------------------------------

DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DEFAULT_DAYS = 30
MAX_POINTS = 5000  # buckets per version: hours over ~7 months, days over ~13 years


class MonitoringQueryInput(TypedInput):
    """The query string of the monitoring page and API (every value a string, as sent)."""

    unknown_message: ClassVar[str] = "Unknown parameter."

    metric: Annotated[str, msgspec.Meta(min_length=1, max_length=120)] | None = None
    bucket: Annotated[Literal["hour", "day"], says("Give bucket=hour or bucket=day.")] = "day"
    model_version: (
        Annotated[str, msgspec.Meta(max_length=100), says("Give a model version (100 characters at most).")] | None
    ) = None
    since: Annotated[datetime, says("Give since as a date (2026-01-31) or an ISO 8601 date and time.")] | None = None
    until: Annotated[datetime, says("Give until as a date (2026-01-31) or an ISO 8601 date and time.")] | None = None


@dataclass(frozen=True)
class MonitoringQuery:
    granularity: str
    since: datetime  # inclusive, at a bucket start
    until: datetime  # exclusive, at a bucket start
    model_version: str | None
    metric: Metric | None


def monitoring_query_parse(
    raw: dict[str, str],
    *,
    metric_required: bool,
    allowed: Iterable[str] = ("metric", "bucket", "model_version", "since", "until"),
) -> MonitoringQuery:
    """The query string as a MonitoringQuery, or ValidationFailed naming every bad parameter.

    A date alone means its midnight (UTC); ``until`` given as a date includes that day. Without
    ``until``: up to the current bucket; without ``since``: the 30 days before ``until``.
    """
    given = {k: v for k, v in raw.items() if k in allowed}
    for key in ("since", "until"):
        value = given.get(key)
        if value == "":
            given.pop(key)
        elif value is not None and DATE_ONLY.match(value):
            given[key] = value + "T00:00:00+00:00"
    if given.get("model_version") == "":
        given.pop("model_version")
    if given.get("metric") == "" and not metric_required:
        given.pop("metric")
    parsed, errors = struct_errors(given, MonitoringQueryInput)
    if parsed is None or errors:
        raise ValidationFailed(
            errors or [field_error("", "The query is not valid.")], errors[0]["message"] if errors else ""
        )
    granularity = Granularity(parsed.bucket)
    step = STEP[granularity]
    metric = None
    if parsed.metric is not None:
        metric = metric_get(parsed.metric)
        if metric is None:
            errors.append(
                field_error("metric", f"Unknown metric; give one of {', '.join(FIXED_METRICS)} or score:<scorer name>.")
            )
    elif metric_required:
        errors.append(
            field_error("metric", f"Give a metric: one of {', '.join(FIXED_METRICS)} or score:<scorer name>.")
        )
    until = _aware(parsed.until) if parsed.until else timezone.now()
    if parsed.until is not None and DATE_ONLY.match(raw.get("until", "")):
        until += timedelta(days=1)
    until = bucket_start(until, granularity) + (step if until != bucket_start(until, granularity) else timedelta(0))
    since = bucket_start(_aware(parsed.since), granularity) if parsed.since else until - timedelta(days=DEFAULT_DAYS)
    if since >= until:
        errors.append(field_error("since", "Give a since before until."))
    elif (until - since) / step > MAX_POINTS:
        errors.append(field_error("since", f"At most {MAX_POINTS} {granularity}s at a time; narrow the dates."))
    if errors:
        raise ValidationFailed(errors, errors[0]["message"])
    return MonitoringQuery(granularity, since, until, parsed.model_version, metric)


def project_for_monitoring(*, user: AnyUser, slug: str, token: ApiToken | None = None) -> Project:
    """The project, if the user may watch its monitoring: curators, engineers and admins (not reviewers).

    Per-version quality over time is aggregate evidence of every review, so it needs the ``export``
    capability (token scope ``export``) that reading every review needs.
    """
    return project_get_for_user(user=user, slug=slug, capability=Capability.EXPORT, token=token)


def monitoring_csv(*, metric: Metric, points: list[Point]) -> str:
    """One metric's buckets as CSV (cells made safe for spreadsheets)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["bucket_start", "model_version", "n", metric.name, "ci_low", "ci_high"])
    for p in points:
        writer.writerow(
            [
                csv_cell(v)
                for v in (
                    p.start.isoformat(),
                    p.model_version,
                    p.n,
                    _csv_num(p.value),
                    _csv_num(p.low),
                    _csv_num(p.high),
                )
            ]
        )
    return out.getvalue()


def _csv_num(value: float | None) -> str:
    return "" if value is None else f"{value:.6g}"
