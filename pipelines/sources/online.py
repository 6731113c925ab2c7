"""Online evaluation: the items a source newly takes are scored by its suite, on the worker.

A source may carry a suite (``Source.suite``; its latest version is used). When a pull's batch takes
items the source never took before, :func:`online_scoring_start` starts an evaluation run over them
(target: their stored responses) inside the batch's own transaction: the batch commits with its run
or not at all, and the run's chunks are sent to the workers by name once it commits (the jobs
kernel). A batch read again (a retried or re-scanned batch) finds its items already taken, so it
never starts a second run for them.

LLM judges cost money, so they run within ``Source.judge_calls_per_hour``: the calls already
granted in the last hour are summed from this source's SourceRun rows under a lock on the source
row (exact on PostgreSQL; SQLite serialises writers anyway). Items within the budget are scored by
every scorer; the others by the code scorers only, and each of their judge results is recorded as
skipped with the reason (``RunOptions.judges_skipped_item_ids``), never silently missing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from evaluations.models import Run
from evaluations.services.runs import RunOptions, run_start
from pipelines.models import Source, SourcePull, SourceRun
from pipelines.sources.selectors import judge_calls_used, judge_entries, suite_latest_version
from reviewapp.errors import ValidationFailed

logger = logging.getLogger(__name__)

OVER_BUDGET = "over the hourly judge budget"


@dataclass(frozen=True)
class OnlineStart:
    source_run: SourceRun | None
    problem: str = ""  # why no run started although the source has a suite


def online_scoring_start(*, pull: SourcePull, item_ids: list[int], now: datetime | None = None) -> OnlineStart:
    """Start scoring ``item_ids`` (newly taken by the pull's source) when the source has a suite.

    Call it inside the batch's transaction. A run that cannot start (the suite has no version, its
    items vanished) does not stop the batch: the reason is returned for the pull to show.
    """
    ids = sorted(set(item_ids))
    if not ids:
        return OnlineStart(None)
    # The lock makes the budget exact: two batches of this source never grant the same calls twice.
    source = Source.objects.select_for_update().select_related("project").get(pk=pull.source_id)
    version = suite_latest_version(source)
    if version is None:
        return OnlineStart(None, "" if source.suite_id is None else "The source's suite has no version.")
    now = now or timezone.now()
    judges = judge_entries(version)
    if judges:
        left = max(0, source.judge_calls_per_hour - judge_calls_used(source=source, now=now))
        judged = ids[: left // judges]
    else:
        judged = ids
    over = ids[len(judged) :]
    try:
        with transaction.atomic():
            run: Run = run_start(
                project=source.project,
                suite_version=version,
                actor=None,
                dataset={"ids": ids},
                target={"kind": "stored"},
                options=RunOptions(judges_skipped_item_ids=tuple(over), judges_skipped_reason=OVER_BUDGET),
            )
            made = SourceRun.objects.create(
                source=source,
                pull=pull,
                run=run,
                items=len(ids),
                judged_items=len(judged) if judges else 0,
                judges_skipped=len(over),
                judge_calls=len(judged) * judges,
                created_at=now,
            )
    except ValidationFailed as exc:
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in exc.errors)
        logger.warning("Source %s: online scoring did not start: %s", source.pk, detail)
        return OnlineStart(None, f"Online scoring did not start: {detail}")
    return OnlineStart(made)
