"""Pulls: a source's new rows, sampled by its rules, into the review queue.

A pull is a row first (:func:`source_pull_request`, at most one queued or running per source),
then the task ``pipelines.source_pull_execute`` (:func:`source_pull_execute`), a job of the one
jobs kernel. It reads the source batch by batch (``pipelines.sources.readers``), decides each row
with the rules (``pipelines.sources.sampling``) and commits each batch in one transaction: the
items (``reviewapp.services.ingest.items_ingest``), which rule took each one (SourcedItem), the
pull's counters and the watermark, on the pull and on the source. A worker killed mid-pull leaves
the last committed batch; the sweeper sends the pull again and it goes on from there, so nothing
is ingested twice. A batch is committed only while the worker still holds the pull's lease.

The same transaction stores the end users' HUMAN feedback read with the taken traces
(``feedback_from_trace_assessments``) and, when the source carries a suite, starts the evaluation
run over the items it took for the first time (``pipelines.sources.online``; its chunks go to the
workers on commit).

Beat: :func:`sources_due` creates a pull for each enabled source whose interval has passed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from pipelines.adapters.errors import PipelineError, TransientPipelineError
from pipelines.models import Source, SourcedItem, SourceKind, SourcePull
from pipelines.sources.feedback import feedback_from_trace_assessments, feedback_thumbs_down_keys
from pipelines.sources.online import online_scoring_start
from pipelines.sources.readers import Batch, SourceRow, reader_for
from pipelines.sources.sampling import Rule, decide, rule_room, rules_validate
from pipelines.sources.selectors import canary_versions
from reviewapp.errors import ValidationFailed
from reviewapp.jobs import ERROR_MAX, job_claim, job_enqueue, job_fail, job_finish, job_held
from reviewapp.models import Item
from reviewapp.services.audit import audit_record
from reviewapp.services.ingest import items_ingest, items_validate
from reviewapp.typed_input import field_error
from reviewapp.usertypes import signed_in

if TYPE_CHECKING:
    from reviewapp.usertypes import Actor

logger = logging.getLogger(__name__)

# The Item fields a row fills; equal values on all of them mean "nothing new" (as traces_ingest).
COMPARED = ("request", "response", "retrieved_context", "model_name", "model_version", "trace_id", "source", "metadata")
REASONS_KEPT = 50  # skipped rows whose reason the pull keeps


def batch_size() -> int:
    return min(int(settings.SOURCES_BATCH_SIZE), int(settings.INGEST_MAX_ITEMS))


def lease_seconds() -> int:
    return int(settings.SOURCES_PULL_LEASE_SECONDS)


# --- requesting ----------------------------------------------------------------------------------


def source_pull_request(
    *,
    source: Source,
    actor: Actor,
    trigger: str = "manual",
    rescan_from: dict[str, Any] | None = None,
    max_rows: int | None = None,
    enqueue: bool = True,
) -> SourcePull:
    """Queue a pull of the source, or return the one already queued or running.

    The row commits first; the task is sent by name once the transaction commits. ``rescan_from``
    (manage.py ingest_traces): read from this watermark and leave the source's own alone.
    """
    return _pull_request(
        source=source, actor=actor, trigger=trigger, rescan_from=rescan_from, max_rows=max_rows, enqueue=enqueue
    )[0]


def _pull_request(
    *,
    source: Source,
    actor: Actor,
    trigger: str,
    rescan_from: dict[str, Any] | None = None,
    max_rows: int | None = None,
    enqueue: bool = True,
) -> tuple[SourcePull, bool]:
    """The pull and whether it is new."""
    if source.kind == SourceKind.REST:
        raise ValidationFailed(
            [field_error("source", "A REST source is pushed to (the items API); there is nothing to pull.")]
        )
    now = timezone.now()
    try:
        with transaction.atomic():
            locked = Source.objects.select_for_update().get(pk=source.pk)
            active = SourcePull.objects.filter(source=locked, status__in=SourcePull.ACTIVE).first()
            if active is not None:
                return active, False
            pull = SourcePull.objects.create(
                source=locked,
                project_id=locked.project_id,
                trigger=trigger,
                created_by=signed_in(actor),
                watermark_from=locked.watermark if rescan_from is None else rescan_from,
                rescan=rescan_from is not None,
                max_rows=max_rows,
                enqueued_at=now,
            )
            Source.objects.filter(pk=locked.pk).update(last_pull_at=now, last_status=pull.status)
            if trigger == "manual":
                audit_record(
                    actor=actor, action="source.pull", target=pull, project=locked.project, data={"source": locked.pk}
                )
            if enqueue:
                job_enqueue(SourcePull, [pull.pk])
    except IntegrityError:  # a concurrent request won the one active slot (SQLite has no row lock)
        active = SourcePull.objects.filter(source=source, status__in=SourcePull.ACTIVE).first()
        if active is None:
            raise
        return active, False
    return pull, True


def sources_due(*, now: datetime | None = None) -> list[int]:
    """Beat: a pull for every enabled source whose interval has passed since its last pull; the new ids."""
    now = now or timezone.now()
    created = []
    for source in Source.objects.filter(enabled=True).exclude(kind=SourceKind.REST).order_by("id"):
        due = source.next_due_at
        if due is None or due > now:
            continue
        try:
            pull, new = _pull_request(source=source, actor=None, trigger="beat")
        except Exception:  # one broken source must not stop the others
            logger.exception("Could not queue a pull of source %s", source.pk)
            continue
        if new:
            created.append(pull.pk)
    return created


# --- executing -----------------------------------------------------------------------------------


@dataclass
class BatchOutcome:
    counts: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)


class _LostClaim(Exception):
    """Another worker holds the pull now (this one's lease expired): stop without writing."""


def _room(source: Source, rules: list[Rule], now: datetime) -> dict[str, int]:
    """How many more items each capped rule may take now, from the items it took (rolling windows)."""
    room: dict[str, int] = {}
    for rule in rules:
        if not rule.capped:
            continue
        taken = SourcedItem.objects.filter(source=source, rule=rule.label)
        left = rule_room(
            rule,
            taken_last_hour=taken.filter(taken_at__gte=now - timedelta(hours=1)).count(),
            taken_last_day=taken.filter(taken_at__gte=now - timedelta(days=1)).count(),
        )
        if left is not None:
            room[rule.label] = left
    return room


def _decide(
    source: Source, rows: list[SourceRow], rules: list[Rule], canary: frozenset[tuple[str, str]], now: datetime
) -> tuple[list[tuple[SourceRow, str]], BatchOutcome]:
    outcome = BatchOutcome(counts=dict.fromkeys(SourcePull.COUNTERS, 0))
    outcome.counts["scanned"] = len(rows)
    room = _room(source, rules, now)
    # Rows this source already took (read again: a re-scan, a changed trace) do not spend a cap again.
    known = set(
        SourcedItem.objects.filter(
            source=source, item__external_id__in=[row.item.get("external_id") for row in rows]
        ).values_list("item__external_id", flat=True)
    )
    if any(rule.kind == "thumbs_down" for rule in rules):
        # End users' feedback sent to the feedback API (joined or still waiting for its item).
        disliked = feedback_thumbs_down_keys(
            project=source.project, trace_ids=[row.signals.trace_id for row in rows if row.signals.trace_id]
        )
        for row in rows:
            row.signals.thumbs_down = row.signals.thumbs_down or row.signals.trace_id in disliked
    taken: list[tuple[SourceRow, str]] = []
    for row in rows:
        if row.skip_reason:
            outcome.counts["skipped"] += 1
            outcome.reasons[row.key] = row.skip_reason
            continue
        uncapped = row.item.get("external_id") in known
        decision = decide(rules, row.signals, canary=canary, room=None if uncapped else room)
        if decision.rule is None:
            outcome.counts["capped" if decision.capped else "sampled_out"] += 1
        else:
            taken.append((row, decision.rule))
    return taken, outcome


def _ingest(
    pull: SourcePull, taken: list[tuple[SourceRow, str]], outcome: BatchOutcome, actor: Actor, now: datetime
) -> list[int]:
    """Validate, compare with the stored items, ingest what is new or changed, record the rule.

    Returns the ids of the items this source took for the first time (online evaluation scores them)."""
    if not taken:
        return []
    items = [row.item for row, _ in taken]
    _, errors = items_validate(items)
    bad: set[int] = set()
    for error in errors:
        index = cast("int", error["index"])
        bad.add(index)
        outcome.reasons[taken[index][0].key] = f"Not a valid item: {error['field'] or '(row)'}: {error['message']}"
    outcome.counts["skipped"] += len(bad)
    valid = [pair for i, pair in enumerate(taken) if i not in bad]
    outcome.counts["taken"] += len(valid)
    if not valid:
        return []
    existing = {
        values["external_id"]: values
        for values in Item.objects.filter(
            project_id=pull.project_id, external_id__in=[row.item["external_id"] for row, _ in valid]
        ).values("external_id", *COMPARED)
    }
    changed = []
    for row, _ in valid:
        stored = existing.get(row.item["external_id"])
        if stored is not None and all(stored[name] == row.item.get(name) for name in COMPARED):
            outcome.counts["unchanged"] += 1
        else:
            changed.append(row.item)
    if changed:
        result = items_ingest(
            project=pull.project, rows=changed, actor=actor, source=str(changed[0].get("source") or pull.source.name)
        )
        outcome.counts["created"] += result.created
        outcome.counts["updated"] += result.updated
    ids = dict(
        Item.objects.filter(
            project_id=pull.project_id, external_id__in=[row.item["external_id"] for row, _ in valid]
        ).values_list("external_id", "id")
    )
    before = set(SourcedItem.objects.filter(item_id__in=ids.values()).values_list("item_id", flat=True))
    # The first source and rule that took an item keep it (an item read again is not taken again).
    SourcedItem.objects.bulk_create(
        [
            SourcedItem(
                item_id=ids[row.item["external_id"]], source_id=pull.source_id, pull=pull, rule=rule, taken_at=now
            )
            for row, rule in valid
            if row.item["external_id"] in ids
        ],
        ignore_conflicts=True,
    )
    _feedback_import(pull, [row for row, _ in valid])
    fresh = set(ids.values()) - before
    # Of those, the ones this pull's rows hold (a concurrent pull of another source may have won one).
    return list(SourcedItem.objects.filter(item_id__in=fresh, pull=pull).values_list("item_id", flat=True))


def _feedback_import(pull: SourcePull, rows: list[SourceRow]) -> None:
    """End users' HUMAN feedback on the traces taken, stored as feedback and joined to their items.

    Only taken rows: a sampled-out trace never becomes an item, so its feedback would wait forever
    (and the stored feedback would grow with all traffic, not with the sample). Idempotent by the
    assessment id, so a batch read again stores nothing twice.
    """
    for row in rows:
        if row.assessments and row.signals.trace_id:
            feedback_from_trace_assessments(
                project=pull.project, trace_id=row.signals.trace_id, assessments=row.assessments
            )


def _commit(
    pull: SourcePull, owner: str, batch: Batch, taken: list[tuple[SourceRow, str]], outcome: BatchOutcome
) -> None:
    """One batch: items, rules, counters and watermark in one transaction, only while holding the lease."""
    now = timezone.now()
    with transaction.atomic():
        held = SourcePull.objects.select_for_update().filter(job_held(SourcePull, pull.pk, owner)).first()
        if held is None:
            raise _LostClaim
        fresh = _ingest(pull, taken, outcome, pull.created_by, now)
        started = online_scoring_start(pull=pull, item_ids=fresh, now=now)
        if started.problem:
            outcome.reasons.setdefault("online scoring", started.problem)
        reasons = dict(held.skipped_reasons)
        for key, reason in outcome.reasons.items():
            if len(reasons) >= REASONS_KEPT:
                break
            reasons.setdefault(key, reason)
        SourcePull.objects.filter(pk=pull.pk).update(
            **{name: F(name) + value for name, value in outcome.counts.items() if value},
            batches=F("batches") + 1,
            watermark_to=batch.watermark,
            skipped_reasons=reasons,
            lease_expires_at=now + timedelta(seconds=lease_seconds()),
        )
        if not pull.rescan:
            Source.objects.filter(pk=pull.source_id).update(watermark=batch.watermark)


def _describe(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc)
    if isinstance(exc, ValidationFailed):
        message += " " + "; ".join(f"{e['field']}: {e['message']}" for e in exc.errors)
    return f"{type(exc).__name__}: {message}"[:ERROR_MAX]


def _source_status(pull_id: int, *, more: bool = False) -> None:
    """Copy the pull's outcome onto its source (the list shows it). ``more``: the pull stopped with rows
    left to read (its time was up), so the source is due again at once."""
    pull = SourcePull.objects.filter(pk=pull_id).first()
    if pull is None:
        return
    fields: dict[str, Any] = {"last_status": pull.status}
    if not pull.is_active:
        fields["last_summary"] = {
            **pull.counters(),
            "pull": pull.pk,
            "finished_at": timezone.now().isoformat(),
            "more": more,
        }
        fields["last_error"] = pull.error if pull.status == SourcePull.Status.FAILED else ""
    else:
        fields["last_error"] = pull.error
    Source.objects.filter(pk=pull.source_id).update(**fields)


def source_pull_execute(*, pull_id: int, batch_limit: int | None = None) -> SourcePull | None:
    """Claim the pull and read its source batch by batch until nothing new is left (or ``max_rows``).

    ``batch_limit`` stops after that many batches (tests: a worker stopped mid-pull). Raises
    TransientPipelineError after putting the pull back in the queue (its task retries); a permanent
    error fails the pull with its message.
    """
    owner = job_claim(SourcePull, pull_id)
    if owner is None:
        return None  # finished, running elsewhere, or out of attempts
    pull = SourcePull.objects.select_related("source", "project", "created_by").get(pk=pull_id)
    Source.objects.filter(pk=pull.source_id).update(last_status=SourcePull.Status.RUNNING)
    try:
        more = _run(pull, owner, batch_limit=batch_limit)
    except _LostClaim:
        logger.warning("Pull %s was taken over by another worker; this one stops.", pull_id)
        return None
    except TransientPipelineError as exc:
        job_fail(SourcePull, pull_id, owner, _describe(exc), transient=True)
        _source_status(pull_id)
        raise
    except (PipelineError, ValidationFailed, ValueError) as exc:
        job_fail(SourcePull, pull_id, owner, _describe(exc), transient=False)
        _source_status(pull_id)
        return SourcePull.objects.get(pk=pull_id)
    except Exception as exc:  # a bug: fail the pull with its message rather than retry forever
        logger.exception("Pull %s failed", pull_id)
        job_fail(SourcePull, pull_id, owner, _describe(exc), transient=False)
        _source_status(pull_id)
        return SourcePull.objects.get(pk=pull_id)
    if batch_limit is None:
        job_finish(SourcePull, pull_id, owner)
        _source_status(pull_id, more=more)
    return SourcePull.objects.get(pk=pull_id)


def _run(pull: SourcePull, owner: str, *, batch_limit: int | None) -> bool:
    """Read and commit batches; True when it stopped with more to read (its time was up)."""
    source = pull.source
    rules, errors = rules_validate(source.rules or [])
    if errors:
        raise ValidationFailed(errors, "The source's rules are not valid.")
    reader = reader_for(source.kind)
    canary = canary_versions(project_id=source.project_id)
    watermark = pull.watermark_to or pull.watermark_from
    scanned = pull.scanned
    batches = 0
    deadline = time.monotonic() + settings.SOURCES_PULL_MAX_SECONDS
    while batch_limit is None or batches < batch_limit:
        limit = batch_size()
        if pull.max_rows is not None:
            limit = min(limit, pull.max_rows - scanned)
            if limit <= 0:
                break
        batch = reader(source, watermark, limit)
        if batch.scanned == 0 and batch.watermark == watermark:
            break  # nothing new
        taken, outcome = _decide(source, batch.rows, rules, canary, timezone.now())
        # Rows the reader left unbuilt (a table read: no rule could take them) were scanned and sampled out.
        outcome.counts["scanned"] = batch.scanned
        outcome.counts["sampled_out"] += batch.scanned - len(batch.rows)
        _commit(pull, owner, batch, taken, outcome)
        watermark, scanned, batches = batch.watermark, scanned + batch.scanned, batches + 1
        if batch.done:
            break
        if time.monotonic() > deadline:
            return True  # finish within the task's time limit; the next pull goes on from the watermark
    return False


def source_pull_run_inline(*, pull: SourcePull) -> SourcePull:
    """Run a pull here and now (manage.py ingest_traces), not on a worker."""
    done = source_pull_execute(pull_id=pull.pk)
    return done if done is not None else SourcePull.objects.get(pk=pull.pk)
