"""End users' feedback: stored apart from reviewers' labels, joined to its item when the item exists.

- **Sending** (``feedback_ingest``): a batch of thumbs, ratings and comments, each naming its answer
  by ``trace_id`` and/or ``external_id``. Every row is checked first (``{index, field, message}``
  errors); a batch with any bad row writes nothing.
- **Idempotent by ``client_id``**: a project keeps one row per client id; sending it again stores
  nothing and answers the stored row (the stored values win over the re-sent ones).
- **Joining**: feedback names an item by ``external_id`` (exact), else by ``trace_id`` (the oldest
  item with that trace). Feedback whose item is not there yet waits, and joins when the item is
  ingested: ``reviewapp.signals.items_ingested`` calls :func:`feedback_join_items` after the ingest
  commits. Each side looks for the other after its own commit, so whichever commits second sees
  the first: no feedback is left waiting for an item that exists.
- **From MLflow** (:func:`feedback_from_trace_assessments`): a trace's HUMAN feedback assessments,
  idempotent by the assessment id; an assessment later overridden in MLflow is removed here.

Selectors for the faces and for monitoring (:func:`feedback_summary_for_items`) are at the end.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from django.db import transaction
from django.db.models import Avg, Count, F, Q, QuerySet
from django.db.models.expressions import Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from pipelines.models import Feedback
from pipelines.models.feedback import RATING_MAX, RATING_MIN, THUMBS_DOWN, THUMBS_UP
from reviewapp.errors import FieldError, ValidationFailed
from reviewapp.jsoninput import JsonInputError, check_value
from reviewapp.models import Item, Project
from reviewapp.services.audit import audit_record
from reviewapp.typed_input import TypedInput, error_from, field_error, says, struct_errors

if TYPE_CHECKING:
    from pipelines.adapters.mlflow_tracking import TraceAssessment
    from reviewapp.usertypes import Actor

MAX_BATCH = 1000
MAX_COMMENT = 5000
FUTURE_SLACK = timedelta(minutes=5)  # clocks differ; a date further ahead is a mistake (or pins a comment on top)
ID_CHUNK = 1000
LATEST_COMMENTS = 3
MLFLOW_PREFIX = "mlflow:"  # client ids of feedback read from MLflow: "mlflow:<assessment id>"
UP_WORDS = frozenset({"up", "thumbs_up", "thumbsup", "positive", "yes", "good", "like", "helpful"})
DOWN_WORDS = frozenset({"down", "thumbs_down", "thumbsdown", "negative", "no", "bad", "dislike", "unhelpful"})

Id = Annotated[str, msgspec.Meta(max_length=200)]


class FeedbackIn(TypedInput):
    """One end user's feedback on one answer, as sent to the API."""

    client_id: Annotated[
        str,
        msgspec.Meta(min_length=1, max_length=200),
        says("Give each feedback a client_id (1 to 200 characters): your id for it, so re-sending is harmless."),
    ]
    kind: Annotated[Literal["thumbs", "rating", "comment"], says('One of "thumbs", "rating" or "comment".')]
    value: str | int | None = None
    comment: Annotated[str, msgspec.Meta(max_length=MAX_COMMENT)] = ""
    trace_id: Id = ""
    external_id: Id = ""
    user: Annotated[str, msgspec.Meta(max_length=200), says("An end user's id of at most 200 characters.")] = ""
    created_at: (
        Annotated[datetime, msgspec.Meta(tz=True), says("An ISO 8601 time with its timezone, or leave it out.")] | None
    ) = None


@dataclass(frozen=True)
class FeedbackRow:
    """A checked row, ready to store."""

    client_id: str
    kind: str
    value: int | None
    comment: str
    trace_id: str
    external_id: str
    user_ref: str
    created_at: datetime | None


@dataclass(frozen=True)
class FeedbackOutcome:
    index: int
    feedback: Feedback
    created: bool  # False: a row with this client id was already stored (it is what is answered)


@dataclass
class FeedbackIngestResult:
    outcomes: list[FeedbackOutcome] = field(default_factory=list)

    @property
    def created(self) -> int:
        return sum(1 for o in self.outcomes if o.created)

    @property
    def duplicates(self) -> int:
        return sum(1 for o in self.outcomes if not o.created)


def _value_for(kind: str, value: str | int | None, comment: str) -> tuple[int | None, str, str]:
    """The stored value for ``kind``, or ("", field, message) naming what is wrong."""
    if kind == Feedback.Kind.THUMBS:
        if value == "up":
            return THUMBS_UP, "", ""
        if value == "down":
            return THUMBS_DOWN, "", ""
        return None, "value", 'A thumbs value is "up" or "down".'
    if kind == Feedback.Kind.RATING:
        if isinstance(value, int) and RATING_MIN <= value <= RATING_MAX:
            return value, "", ""
        return None, "value", f"A rating is a whole number from {RATING_MIN} to {RATING_MAX}."
    if value is not None:
        return None, "value", "A comment has no value: put the text in comment."
    if not comment.strip():
        return None, "comment", "A comment needs its text."
    return None, "", ""


def _row_check(raw: Any, *, index: int, now: datetime) -> tuple[FeedbackRow | None, list[FieldError]]:
    try:
        check_value(raw)  # NUL (PostgreSQL cannot store it) and nesting depth, with the field's path
    except JsonInputError as exc:
        return None, [error_from(exc, index=index)]
    parsed, errors = struct_errors(raw, FeedbackIn, index=index)
    if parsed is None or errors:
        return None, errors
    if not parsed.trace_id and not parsed.external_id:
        return None, [field_error("trace_id", "Name the answer: give its trace_id or its external_id.", index)]
    value, where, message = _value_for(parsed.kind, parsed.value, parsed.comment)
    if where:
        return None, [field_error(where, message, index)]
    if parsed.created_at is not None and parsed.created_at > now + FUTURE_SLACK:
        return None, [field_error("created_at", "This time is in the future.", index)]
    row = FeedbackRow(
        client_id=parsed.client_id,
        kind=parsed.kind,
        value=value,
        comment=parsed.comment.strip(),
        trace_id=parsed.trace_id,
        external_id=parsed.external_id,
        user_ref=parsed.user,
        created_at=parsed.created_at,
    )
    return row, []


def feedback_validate(
    rows: Sequence[Any], *, now: datetime | None = None
) -> tuple[list[FeedbackRow], list[FieldError]]:
    """Check every row; the checked rows and every error (each row at most one)."""
    now = now or timezone.now()
    checked: list[FeedbackRow] = []
    errors: list[FieldError] = []
    first_seen: dict[str, int] = {}
    for index, raw in enumerate(rows):
        row, row_errors = _row_check(raw, index=index, now=now)
        if row_errors or row is None:
            errors.extend(row_errors[:1])
            continue
        if row.client_id in first_seen:
            message = f"Duplicate of row {first_seen[row.client_id]} in the same batch."
            errors.append(field_error("client_id", message, index))
            continue
        first_seen[row.client_id] = index
        checked.append(row)
    return checked, errors


def feedback_ingest(*, project: Project, rows: Sequence[Any], actor: Actor = None) -> FeedbackIngestResult:
    """Check and store a batch of end users' feedback sent to the API; all or nothing.

    Raises ValidationFailed (nothing written) when the batch is empty, too large, or any row is bad.
    """
    if not rows:
        raise ValidationFailed([field_error("", "No feedback given.")], "No feedback given.")
    if len(rows) > MAX_BATCH:
        raise ValidationFailed(
            [field_error("", f"At most {MAX_BATCH} feedback rows per request.")],
            f"Too many rows ({len(rows)}); send at most {MAX_BATCH} per request.",
        )
    checked, errors = feedback_validate(rows)
    if errors:
        raise ValidationFailed(errors, f"{len(errors)} of {len(rows)} rows are not valid; nothing was written.")
    result = _store(project=project, rows=checked, origin=Feedback.Origin.API)
    if result.created:
        audit_record(
            actor=actor,
            action="feedback.ingest",
            target=project,
            project=project,
            data={"created": result.created, "duplicates": result.duplicates, "origin": Feedback.Origin.API},
        )
    return result


def _store(*, project: Project, rows: list[FeedbackRow], origin: str) -> FeedbackIngestResult:
    """Insert the rows whose client id is new, then join them; answer every row with its stored row."""
    now = timezone.now()
    client_ids = [row.client_id for row in rows]
    with transaction.atomic():
        before = set(
            Feedback.objects.filter(project=project, client_id__in=client_ids).values_list("client_id", flat=True)
        )
        Feedback.objects.bulk_create(
            [
                Feedback(
                    project=project,
                    client_id=row.client_id,
                    kind=row.kind,
                    value=row.value,
                    comment=row.comment,
                    trace_id=row.trace_id,
                    external_id=row.external_id,
                    user_ref=row.user_ref,
                    origin=origin,
                    created_at=row.created_at or now,
                    received_at=now,
                )
                for row in rows
                if row.client_id not in before
            ],
            batch_size=500,
            ignore_conflicts=True,  # a concurrent request with the same client id: its row stands
        )
    stored_ids = Feedback.objects.filter(project=project, client_id__in=client_ids)
    # After the commit (see the module docstring): an item ingested meanwhile is seen here.
    _join(project=project, waiting=stored_ids.filter(item__isnull=True))
    stored = {f.client_id: f for f in stored_ids}
    outcomes = [
        FeedbackOutcome(
            index=index,
            feedback=stored[row.client_id],
            # Ours when it was not there before and carries our receiving time (a concurrent twin has its own).
            created=row.client_id not in before and stored[row.client_id].received_at == now,
        )
        for index, row in enumerate(rows)
    ]
    return FeedbackIngestResult(outcomes=outcomes)


def _chunks(values: Sequence[Any], size: int = ID_CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _attach(*, matches: dict[int, int], now: datetime) -> int:
    """Set each waiting feedback's item (``matches``: feedback id -> item id); how many joined."""
    by_item: dict[int, list[int]] = defaultdict(list)
    for feedback_id, item_id in matches.items():
        by_item[item_id].append(feedback_id)
    joined = 0
    for item_id, feedback_ids in by_item.items():
        # item IS NULL again: a concurrent join already done stays as it is.
        joined += Feedback.objects.filter(pk__in=feedback_ids, item__isnull=True).update(item_id=item_id, joined_at=now)
    return joined


def _match(
    waiting: Iterable[tuple[int, str, str]], by_external: dict[str, int], by_trace: dict[str, int]
) -> dict[int, int]:
    """feedback id -> item id: by external id first (unique), else by trace id."""
    matches = {}
    for feedback_id, external_id, trace_id in waiting:
        item_id = (by_external.get(external_id) if external_id else None) or (
            by_trace.get(trace_id) if trace_id else None
        )
        if item_id is not None:
            matches[feedback_id] = item_id
    return matches


def _oldest_by_trace(rows: Iterable[tuple[str, int]]) -> dict[str, int]:
    found: dict[str, int] = {}
    for trace_id, item_id in rows:
        if trace_id and (trace_id not in found or item_id < found[trace_id]):
            found[trace_id] = item_id
    return found


def _join(*, project: Project, waiting: QuerySet[Feedback]) -> int:
    """Join these waiting feedback rows to the project's items that exist now; how many joined."""
    rows = list(waiting.values_list("id", "external_id", "trace_id"))
    if not rows:
        return 0
    joined = 0
    now = timezone.now()
    for chunk in _chunks(rows):
        external_ids = sorted({r[1] for r in chunk if r[1]})
        trace_ids = sorted({r[2] for r in chunk if r[2]})
        by_external = dict(
            Item.objects.filter(project=project, external_id__in=external_ids).values_list("external_id", "id")
        )
        by_trace = _oldest_by_trace(
            Item.objects.filter(project=project, trace_id__in=trace_ids).values_list("trace_id", "id")
        )
        joined += _attach(matches=_match(chunk, by_external, by_trace), now=now)
    return joined


def feedback_join_items(*, project: Project, item_ids: Sequence[int]) -> int:
    """Join the feedback waiting for these (newly ingested) items; how many joined.

    Called after an ingest commits (``reviewapp.signals.items_ingested``). Costs one indexed query
    when nothing waits, which is the usual case.
    """
    waiting = Feedback.objects.filter(project=project, item__isnull=True)
    if not item_ids or not waiting.exists():
        return 0
    joined = 0
    now = timezone.now()
    for chunk in _chunks(list(item_ids)):
        items = list(Item.objects.filter(project=project, pk__in=chunk).values_list("id", "external_id", "trace_id"))
        by_external = {ext: item_id for item_id, ext, _ in items}
        trace_ids = sorted({trace for _, _, trace in items if trace})
        # The oldest item of each trace among all the project's items, not only this batch's.
        by_trace = _oldest_by_trace(
            Item.objects.filter(project=project, trace_id__in=trace_ids).values_list("trace_id", "id")
        )
        candidates = waiting.filter(Q(external_id__in=list(by_external)) | Q(trace_id__in=trace_ids)).values_list(
            "id", "external_id", "trace_id"
        )
        joined += _attach(matches=_match(candidates, by_external, by_trace), now=now)
    return joined


# --- From MLflow traces' assessments ------------------------------------------------------------


@dataclass
class AssessmentImportResult:
    created: int = 0
    duplicates: int = 0
    removed: int = 0  # overridden in MLflow since they were read
    skipped: dict[str, str] = field(default_factory=dict)  # assessment id -> why it is not end-user feedback


def _from_assessment(assessment: TraceAssessment, *, trace_id: str) -> tuple[FeedbackRow | None, str]:
    """The end user's feedback an MLflow feedback assessment holds, or why it holds none."""
    value = assessment.value
    rationale = (assessment.rationale or "").strip()
    kind: str
    number: int | None = None
    comment = rationale
    if isinstance(value, bool):
        kind, number = Feedback.Kind.THUMBS, THUMBS_UP if value else THUMBS_DOWN
    elif isinstance(value, int | float):
        if not (math.isfinite(value) and value == int(value) and RATING_MIN <= value <= RATING_MAX):
            return None, f"A number outside {RATING_MIN} to {RATING_MAX}, or not whole: {value!r}."
        kind, number = Feedback.Kind.RATING, int(value)
    elif isinstance(value, str) and value.strip():
        word = value.strip().lower().replace(" ", "_").replace("-", "_")
        if word in UP_WORDS or word in DOWN_WORDS:
            kind, number = Feedback.Kind.THUMBS, THUMBS_UP if word in UP_WORDS else THUMBS_DOWN
        else:
            kind, comment = Feedback.Kind.COMMENT, "\n\n".join(t for t in (value.strip(), rationale) if t)
    else:
        return None, f"Not a thumbs, rating or comment value: {type(value).__name__}."
    try:
        check_value(comment)
    except JsonInputError as exc:
        return None, f"The text cannot be stored: {exc.message}"
    created = datetime.fromtimestamp(assessment.create_time_ms / 1000, tz=UTC) if assessment.create_time_ms else None
    source_id = assessment.source_id if assessment.source_id not in ("", "default") else ""
    return (
        FeedbackRow(
            client_id=f"{MLFLOW_PREFIX}{assessment.assessment_id}"[:200],
            kind=kind,
            value=number,
            comment=comment[:MAX_COMMENT],
            trace_id=trace_id,
            external_id="",
            user_ref=source_id[:200],
            created_at=created,
        ),
        "",
    )


def feedback_from_trace_assessments(
    *, project: Project, trace_id: str, assessments: Iterable[TraceAssessment]
) -> AssessmentImportResult:
    """Store a trace's HUMAN feedback assessments as end users' feedback (origin ``mlflow``).

    ``assessments`` as ``pipelines.adapters.mlflow_tracking`` reads them. Idempotent by the
    assessment id (client id ``mlflow:<id>``): reading the same trace again stores nothing twice.
    Expectations and LLM-judge or code feedback are not end users' feedback and are left out
    silently; a HUMAN feedback whose value is none of thumbs (a boolean or up/down word), rating
    (1 to 5) or text is skipped with its reason. One that MLflow marks overridden (not valid) is
    not stored, and removed if an earlier read stored it: its overriding assessment counts instead.
    """
    result = AssessmentImportResult()
    if not trace_id:
        raise ValueError("Name the trace the assessments belong to.")
    rows: list[FeedbackRow] = []
    overridden: list[str] = []
    for assessment in assessments:
        if assessment.kind != "feedback" or assessment.source_type != "HUMAN":
            continue
        if not assessment.valid:
            overridden.append(f"{MLFLOW_PREFIX}{assessment.assessment_id}")
            continue
        row, reason = _from_assessment(assessment, trace_id=trace_id)
        if row is None:
            result.skipped[assessment.assessment_id] = reason
        else:
            rows.append(row)
    if overridden:
        result.removed, _ = Feedback.objects.filter(
            project=project, origin=Feedback.Origin.MLFLOW, client_id__in=overridden
        ).delete()
    if rows:
        stored = _store(project=project, rows=rows, origin=Feedback.Origin.MLFLOW)
        result.created, result.duplicates = stored.created, stored.duplicates
    return result


# --- Selectors ------------------------------------------------------------------------------------


def feedback_list(
    *,
    project: Project,
    item_id: int | None = None,
    trace_id: str = "",
    value: str = "",
    kind: str = "",
) -> QuerySet[Feedback]:
    """The project's end users' feedback, oldest first; ``value`` is up, down, or a rating 1 to 5."""
    rows = Feedback.objects.filter(project=project)
    if item_id is not None:
        rows = rows.filter(item_id=item_id)
    if trace_id:
        rows = rows.filter(trace_id=trace_id)
    if kind:
        rows = rows.filter(kind=kind)
    if value in ("up", "down"):
        rows = rows.filter(kind=Feedback.Kind.THUMBS, value=THUMBS_UP if value == "up" else THUMBS_DOWN)
    elif value:
        rows = rows.filter(kind=Feedback.Kind.RATING, value=int(value))
    return rows.order_by("id")


FEEDBACK_VALUES = ["up", "down", *[str(n) for n in range(RATING_MIN, RATING_MAX + 1)]]


@dataclass(frozen=True)
class LatestComment:
    text: str  # untrusted: render escaped
    created_at: datetime
    kind: str
    value_label: str


@dataclass(frozen=True)
class FeedbackSummary:
    """What end users said about one item."""

    total: int = 0  # feedback rows
    up: int = 0
    down: int = 0
    ratings: int = 0
    mean_rating: float | None = None
    comments: int = 0  # rows with a comment (any kind)
    latest_comments: tuple[LatestComment, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "up": self.up,
            "down": self.down,
            "ratings": self.ratings,
            "mean_rating": self.mean_rating,
            "comments": self.comments,
            "latest_comments": [
                {"text": c.text, "created_at": c.created_at, "kind": c.kind, "value": c.value_label}
                for c in self.latest_comments
            ],
        }


def feedback_summary_for_items(item_ids: Sequence[int], *, latest: int = LATEST_COMMENTS) -> dict[int, FeedbackSummary]:
    """Per item with any feedback: thumbs up and down, ratings and their mean, and the latest comments.

    Two queries whatever the number of items (per chunk of 1,000); items without feedback are absent.
    """
    counts: dict[int, dict[str, Any]] = {}
    comments: dict[int, list[LatestComment]] = defaultdict(list)
    for chunk in _chunks(list(item_ids)):
        for row in (
            Feedback.objects.filter(item_id__in=chunk)
            .values("item_id")
            .annotate(
                total=Count("id"),
                up=Count("id", filter=Q(kind=Feedback.Kind.THUMBS, value=THUMBS_UP)),
                down=Count("id", filter=Q(kind=Feedback.Kind.THUMBS, value=THUMBS_DOWN)),
                ratings=Count("id", filter=Q(kind=Feedback.Kind.RATING)),
                mean_rating=Avg("value", filter=Q(kind=Feedback.Kind.RATING)),
                comments=Count("id", filter=~Q(comment="")),
            )
            .order_by()
        ):
            counts[row["item_id"]] = row
        if latest > 0:
            ranked = (
                Feedback.objects.filter(item_id__in=chunk)
                .exclude(comment="")
                .annotate(
                    rank=Window(
                        RowNumber(), partition_by=F("item_id"), order_by=[F("created_at").desc(), F("id").desc()]
                    )
                )
                .filter(rank__lte=latest)
                .order_by("item_id", "rank")
            )
            for feedback in ranked:
                if feedback.item_id is None:  # filtered on item ids: never, but the type allows it
                    continue
                comments[feedback.item_id].append(
                    LatestComment(
                        text=feedback.comment,
                        created_at=feedback.created_at,
                        kind=feedback.kind,
                        value_label=feedback.value_label,
                    )
                )
    return {
        item_id: FeedbackSummary(
            total=row["total"],
            up=row["up"],
            down=row["down"],
            ratings=row["ratings"],
            mean_rating=round(float(row["mean_rating"]), 2) if row["mean_rating"] is not None else None,
            comments=row["comments"],
            latest_comments=tuple(comments.get(item_id, ())),
        )
        for item_id, row in counts.items()
    }


def feedback_thumbs_down_keys(*, project: Project, trace_ids: Sequence[str]) -> set[str]:
    """Which of these trace ids have an end user's thumbs-down, joined or waiting (for sampling rules)."""
    found: set[str] = set()
    for chunk in _chunks(sorted(set(trace_ids))):
        found.update(
            Feedback.objects.filter(
                project=project, trace_id__in=chunk, kind=Feedback.Kind.THUMBS, value=THUMBS_DOWN
            ).values_list("trace_id", flat=True)
        )
    return found
