"""manage.py ingest_traces on sources: a pull of the experiment's source, run here and now."""

from __future__ import annotations

import math
from datetime import datetime
from typing import TYPE_CHECKING

from django.utils import timezone

from pipelines.models import Source, SourceKind, SourcePull
from pipelines.sources.pulls import source_pull_request, source_pull_run_inline
from pipelines.sources.services import source_create, source_update
from reviewapp.models import Project

if TYPE_CHECKING:
    from reviewapp.usertypes import Actor

NAME_PREFIX = "ingest_traces:"


def traces_pull_inline(
    *,
    project: Project,
    experiment: str,
    filter_string: str = "",
    since: datetime | None = None,
    sample_rate: float = 1.0,
    max_traces: int = 10_000,
    actor: Actor = None,
) -> SourcePull:
    """Read the experiment's traces from ``since`` (not from the source's watermark: a re-run sees
    every trace again and counts those already ingested as unchanged) into the project's source
    ``ingest_traces:<experiment>``, with ``sample_rate`` as its percentage rule.

    Raises ValueError for bad arguments; the pull records MLflow's errors (status failed).
    """
    if not experiment.strip():
        raise ValueError("Name an MLflow experiment (its name or id).")
    if not (isinstance(sample_rate, int | float) and math.isfinite(sample_rate) and 0 < sample_rate <= 1):
        raise ValueError(f"The sample rate must be above 0 and at most 1, not {sample_rate!r}.")
    if max_traces < 1:
        raise ValueError(f"The number of traces to read must be at least 1, not {max_traces}.")
    if since is not None and timezone.is_naive(since):
        since = timezone.make_aware(since)
    name = f"{NAME_PREFIX}{experiment.strip()}"[:100]
    values = {
        "settings": {"experiment": experiment.strip(), "filter": filter_string},
        "rules": [] if sample_rate >= 1 else [{"kind": "percent", "percent": sample_rate * 100}],
    }
    source = Source.objects.filter(project=project, name=name).first()
    if source is None:
        source = source_create(
            project=project,
            values={"name": name, "kind": SourceKind.MLFLOW_TRACES, "enabled": False, **values},
            actor=actor,
        )
    elif source.kind != SourceKind.MLFLOW_TRACES:
        raise ValueError(f"The project's source {name!r} is not an MLflow traces source.")
    else:
        source = source_update(source=source, values=values, actor=actor)
    start = {"timestamp_ms": int(since.timestamp() * 1000), "ids": []} if since is not None else {}
    pull = source_pull_request(
        source=source,
        actor=actor,
        trigger="command",
        rescan_from=start,
        max_rows=min(max_traces, 10**9),
        enqueue=False,
    )
    return source_pull_run_inline(pull=pull)
