"""Delivery of curated rows to Delta tables and Unity Catalog: targets, pushes, the feed, the sweeper.

A push is a row first, then a task (``pipelines.push_execute``): ``push_execute`` claims it with a
lease (a conditional UPDATE), writes the batch exactly once and records the outcome. Exactly once
holds at two levels:

- our ledger: a push whose ``batch_id`` already succeeded on the same target writes nothing;
- the destination: Delta keeps the batch id as an application transaction in the same atomic
  commit as the rows (``pipelines.adapters.delta``); Unity Catalog loads each batch file once (COPY INTO
  skips loaded files) and MERGEs on ``(row_id, dataset_id)`` (a replay changes nothing). A dataset
  version's batch also deletes that dataset's rows the version no longer holds, in the same MERGE.

``batch_id`` depends only on the target and what the batch covers (a dataset version and its
content hash, or a feed range of curated labels), so a retry, a redelivered message or a second
"push now" of the same version has the same id.

The continuous feed: ``feed_push_due`` (beat, every DELIVERY_PUSH_INTERVAL_SECONDS) creates, for each
target with the feed on that has labels changed since its watermark (``updated_at``, id), one
micro-batch: at most DELIVERY_BATCH_MAX_ROWS of those new labels, plus every label stamped in the
DELIVERY_FEED_OVERLAP_SECONDS before the watermark, and never while an earlier batch is unfinished.
The watermark moves when the batch succeeds. The overlap is there because ``updated_at`` is stamped
before the transaction commits: a label committed after a batch moved the watermark past its stamp
would otherwise be skipped for ever. Re-read rows whose content hash is unchanged are not rewritten
(the MERGE's update predicate), so the overlap costs a read, not a write, and ``rows_written`` counts
only rows inserted or changed.
"""

from pipelines.datasets.pushes.execution import ERROR_MAX, PushOutcome, feedback_kinds, push_execute
from pipelines.datasets.pushes.queueing import (
    FEED_SETTLE_SECONDS,
    Mark,
    PushSweep,
    feed_push_create,
    feed_push_due,
    push_create,
    pushes_sweep,
)
from pipelines.datasets.pushes.targets import (
    delivery_target_create,
    delivery_target_set_feed,
    delta_default_uri,
    target_validate,
)

__all__ = [
    "ERROR_MAX",
    "FEED_SETTLE_SECONDS",
    "Mark",
    "PushOutcome",
    "PushSweep",
    "delivery_target_create",
    "delivery_target_set_feed",
    "delta_default_uri",
    "feed_push_create",
    "feed_push_due",
    "feedback_kinds",
    "push_create",
    "push_execute",
    "pushes_sweep",
    "target_validate",
]
