"""Executing one chunk of a run: claim it, score what is missing, write it, close it.

``run_chunk_execute`` is what the ``evaluations.run_chunk`` task calls. It claims the chunk through
the jobs kernel (reviewapp.jobs: ``pending``, or ``running`` with an expired lease, and a fresh token),
then scores only the (item, scorer) pairs that have no RunResult yet and writes them with
ON CONFLICT DO NOTHING, so a redelivered message, a retry or a second worker never double-counts.
While it works it renews its lease (and notices a cancelled run or a lost claim) every few
seconds; the kernel's sweeper re-queues a chunk whose lease ran out.

Code scorers run inline. LLM judges run concurrently: through their module's batch function when
it has one (``scorer_batch_fn``), else row by row in a thread pool.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from evaluations.models import Run, RunChunk, RunResult, RunRow, SuiteVersion
from evaluations.scorers.registry import Score, ScoreInput, Scorer, scorer_get
from evaluations.services.datasets import score_input_for_item
from evaluations.services.runs import TEXT_MAX, chunk_close, run_judges_skipped, targets_module
from pipelines.adapters.errors import PermanentPipelineError, TransientPipelineError
from reviewapp.jobs import job_claim, job_fail, job_finish, job_held, job_renew
from reviewapp.models import CuratedLabel, Item

logger = logging.getLogger(__name__)

BATCH_ITEMS = 100  # items generated and scored between two writes
RENEW_EVERY_SECONDS = 5.0  # at most; a third of the lease when that is shorter
ChunkStatus = RunChunk.Status


BatchFn = Callable[[list[ScoreInput], dict[str, Any]], list[Score]]


@dataclass(frozen=True)
class _Entry:
    name: str
    scorer: Scorer | None
    threshold: float | None
    params: dict[str, Any]
    problem: str  # why the scorer cannot run (it is no longer registered)
    batch: BatchFn | None = None

    @property
    def is_judge(self) -> bool:
        return self.scorer is not None and self.scorer.source_type == "LLM_JUDGE"


def scorer_batch_fn(spec: Scorer) -> BatchFn | None:
    """The many-rows form of an LLM judge, when its module offers one.

    Batch protocol: a scorer module may define ``judge_rows(*, name, rows, params) -> list[Score]``
    (one Score per row, in order) and ``PROMPTS`` holding the scorer's name (llm_judges.py does): the
    runner then hands it a whole batch, so it reads its cache once and calls its endpoint with the
    endpoint's own concurrency. Other judges are called row by row, EVALUATION_JUDGE_CONCURRENCY at a time.
    """
    module = sys.modules.get(spec.fn.__module__)
    judge_rows = getattr(module, "judge_rows", None)
    if spec.source_type != "LLM_JUDGE" or judge_rows is None or spec.name not in getattr(module, "PROMPTS", {}):
        return None

    def batch(rows: list[ScoreInput], params: dict[str, Any]) -> list[Score]:
        return list(judge_rows(name=spec.name, rows=rows, params=params))

    return batch


def _entries(version: SuiteVersion) -> list[_Entry]:
    out = []
    for entry in version.scorers:
        try:
            spec: Scorer | None = scorer_get(entry["scorer"])
            problem = ""
        except KeyError as exc:
            spec, problem = None, str(exc.args[0])
        out.append(
            _Entry(
                name=entry["name"],
                scorer=spec,
                threshold=entry.get("threshold"),
                params=dict(entry.get("params") or {}),
                problem=problem,
                batch=scorer_batch_fn(spec) if spec is not None else None,
            )
        )
    return out


class _Claim:
    """The lease a worker holds on a chunk, renewed every third of its length."""

    def __init__(self, *, chunk_id: int, run_id: int, token: str) -> None:
        self.chunk_id, self.run_id, self.token = chunk_id, run_id, token
        self.seconds = settings.EVALUATION_CHUNK_LEASE_SECONDS
        self.every = min(self.seconds / 3, RENEW_EVERY_SECONDS)
        self.renewed = time.monotonic()

    @property
    def due(self) -> bool:
        return time.monotonic() - self.renewed > self.every

    def renew(self) -> bool:
        """Extend the lease; False when the claim was lost (another worker has it) or the run stopped."""
        self.renewed = time.monotonic()
        if not job_renew(RunChunk, self.chunk_id, self.token):
            return False
        return Run.objects.filter(pk=self.run_id, status__in=Run.ACTIVE).exists()


def _chunk_claim(chunk_id: int) -> str | None:
    """The lease owner token of a new claim on the chunk, or None (its run stopped, or someone has it)."""
    run_status = RunChunk.objects.filter(pk=chunk_id).values_list("run__status", flat=True).first()
    if run_status not in Run.ACTIVE:
        return None
    return job_claim(RunChunk, chunk_id)


def run_chunk_execute(*, chunk_id: int) -> None:
    """Claim the chunk, score what is missing, record it, and close the run after its last chunk.

    Safe to call any number of times, also concurrently: a call that cannot claim the chunk does
    nothing. TransientPipelineError (a generation target is down) releases the chunk and is raised
    for the task to retry; any other error fails the chunk, and its rows count as errored.
    """
    token = _chunk_claim(chunk_id)
    if token is None:
        return
    chunk = RunChunk.objects.select_related("run__suite_version").get(pk=chunk_id)
    run = chunk.run
    Run.objects.filter(pk=run.pk, status=Run.Status.QUEUED).update(status=Run.Status.RUNNING, started_at=timezone.now())
    claim = _Claim(chunk_id=chunk_id, run_id=run.pk, token=token)
    try:
        completed = _chunk_work(chunk=chunk, run=run, claim=claim)
    except TransientPipelineError:
        job_fail(RunChunk, chunk_id, token, "", transient=True)  # the task retries it
        raise
    except Exception as exc:
        logger.exception("Chunk %s of run %s failed", chunk.index, run.pk)
        chunk_close(chunk_id, job_held(RunChunk, chunk_id, token), ChunkStatus.FAILED, _describe(exc))
        return
    if completed:
        chunk_close(chunk_id, job_held(RunChunk, chunk_id, token), ChunkStatus.DONE)
    elif not Run.objects.filter(pk=run.pk, status__in=Run.ACTIVE).exists():
        job_finish(RunChunk, chunk_id, token, status=ChunkStatus.CANCELLED)


def _describe(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc)
    return f"{type(exc).__name__}: {message}"[:TEXT_MAX]


def _label(item: Item) -> CuratedLabel | None:
    try:
        return item.curated_label
    except CuratedLabel.DoesNotExist:
        return None


def _chunk_work(*, chunk: RunChunk, run: Run, claim: _Claim) -> bool:
    """Score the chunk's missing results; False when it stopped early (claim lost, run stopped)."""
    entries = _entries(run.suite_version)
    ids = list(chunk.item_ids)
    items = {i.pk: i for i in Item.objects.filter(pk__in=ids).select_related("curated_label")}
    done = set(RunResult.objects.filter(run=run, item_id__in=ids).values_list("item_id", "scorer"))
    generates = run.target.get("kind", "stored") != "stored"
    rows = {r.item_id: r for r in RunRow.objects.filter(run=run, item_id__in=ids)} if generates else {}
    # A run over a dataset version scores against what the version snapshotted, not today's labels.
    snapshots: dict[str, dict[str, Any]] | None = dict(chunk.expectations or {}) if run.dataset_version else None
    skip = run_judges_skipped(run)
    executor = (
        ThreadPoolExecutor(max_workers=settings.EVALUATION_JUDGE_CONCURRENCY, thread_name_prefix="judge")
        if any(e.is_judge and e.batch is None for e in entries)
        else None
    )
    try:
        for start in range(0, len(ids), BATCH_ITEMS):
            batch = [items[i] for i in ids[start : start + BATCH_ITEMS] if i in items]
            todo = [item for item in batch if any((item.pk, e.name) not in done for e in entries)]
            if not todo:
                continue
            if generates:
                missing = [item for item in todo if item.pk not in rows]
                if missing:
                    rows.update(_generate(run=run, items=missing, snapshots=snapshots))
            inputs = [(item, _row_input(item, rows.get(item.pk), snapshots)) for item in todo]
            if not _score(
                run=run, inputs=inputs, entries=entries, done=done, executor=executor, claim=claim, skip=skip
            ):
                return False
            if claim.due and not claim.renew():
                return False
    finally:
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
    return True


def _snapshot(item: Item, snapshots: dict[str, dict[str, Any]] | None) -> dict[str, Any] | None:
    """The item's entry of a dataset-version run's snapshot (``{}`` when the version had none)."""
    if snapshots is None:
        return None
    return snapshots.get(str(item.pk)) or {}


def _input(item: Item, snapshots: dict[str, dict[str, Any]] | None, **generated: Any) -> ScoreInput:
    snapshot = _snapshot(item, snapshots)
    label = None if snapshot is not None else _label(item)
    return score_input_for_item(item, label=label, snapshot=snapshot, **generated)


def _row_input(item: Item, row: RunRow | None, snapshots: dict[str, dict[str, Any]] | None = None) -> ScoreInput | str:
    """The scorer row, or the generation error that left the item without a response."""
    if row is None:
        return _input(item, snapshots)
    if row.error:
        return row.error
    return _input(
        item,
        snapshots,
        response=row.response,
        retrieved_context=row.retrieved_context,
        latency_ms=row.latency_ms,
    )


def _generate(*, run: Run, items: list[Item], snapshots: dict[str, dict[str, Any]] | None = None) -> dict[int, RunRow]:
    targets = targets_module()
    if targets is None:
        raise PermanentPipelineError("Response generation (evaluations.targets) is not installed.", system="targets")
    requests = [_input(item, snapshots) for item in items]
    try:
        generated = list(targets.responses_generate(target=run.target, rows=requests, project=run.project))
        if len(generated) != len(items):
            raise PermanentPipelineError(f"The target answered {len(generated)} of {len(items)} requests.")
        made = [
            RunRow(
                run=run,
                item=item,
                response=str(g.response or ""),
                retrieved_context=g.retrieved_context,
                latency_ms=g.latency_ms,
                error=str(g.error or "")[:TEXT_MAX],
            )
            for item, g in zip(items, generated, strict=True)
        ]
    except PermanentPipelineError as exc:
        made = [RunRow(run=run, item=item, error=_describe(exc)) for item in items]
    RunRow.objects.bulk_create(made, ignore_conflicts=True)
    # Read back what is stored: if another holder wrote a row first, score that one.
    return {r.item_id: r for r in RunRow.objects.filter(run=run, item_id__in=[i.pk for i in items])}


def _score_one(entry: _Entry, row: ScoreInput) -> Score:
    if entry.scorer is None:
        return Score(value=None, error=entry.problem)
    try:
        score = entry.scorer.fn(row, entry.params)
        if not isinstance(score, Score):
            return Score(value=None, error=f"{entry.name} returned {type(score).__name__}, not a Score.")
        return entry.scorer.judge(score, entry.threshold)
    except Exception as exc:  # a scorer's bug or a judge's failure marks the row, never the run
        return Score(value=None, error=_describe(exc))


def _judge_call(entry: _Entry, row: ScoreInput) -> Score:
    try:
        return _score_one(entry, row)
    finally:
        connection.close()  # this thread's own connection, if the judge used the database (its cache)


@dataclass(frozen=True, slots=True)
class _Verdict:
    """One RunResult row to write (plain data: 10,000 items x 12 scorers is 120,000 of them)."""

    item_id: int
    scorer: str
    value: Any
    number: float | None
    passed: bool | None
    rationale: str
    error: str
    source_type: str
    skipped: bool = False


def _skipped(item_id: int, entry: _Entry, reason: str) -> _Verdict:
    """A judge not called for this item on purpose (the run's options): recorded, with why."""
    source_type = entry.scorer.source_type if entry.scorer is not None else "LLM_JUDGE"
    return _Verdict(item_id, entry.name, None, None, None, reason[:TEXT_MAX], "", source_type, skipped=True)


def _verdict(item_id: int, entry: _Entry, score: Score) -> _Verdict:
    value: Any = score.value
    error = score.error
    number = None
    if isinstance(value, bool):
        number = float(value)
    elif isinstance(value, int | float):
        if math.isfinite(value):
            number = float(value)
        else:
            value, error = None, error or f"The value {value!r} is not a finite number."
    elif value is not None and not isinstance(value, str):
        value = str(value)
    return _Verdict(
        item_id=item_id,
        scorer=entry.name,
        value=value,
        number=number,
        passed=score.passed if isinstance(score.passed, bool) and not error else None,
        rationale=(score.rationale or "")[:TEXT_MAX],
        error=(error or "")[:TEXT_MAX],
        source_type=entry.scorer.source_type if entry.scorer is not None else "CODE",
    )


def _write(run: Run, verdicts: list[_Verdict]) -> None:
    """Insert the verdicts; one that already exists (another holder wrote it) is left as it is."""
    if not verdicts:
        return
    if connection.vendor != "postgresql":
        fields = ("item_id", "scorer", "value", "number", "passed", "rationale", "error", "source_type", "skipped")
        RunResult.objects.bulk_create(
            [RunResult(run=run, **{f: getattr(v, f) for f in fields}) for v in verdicts],
            ignore_conflicts=True,
            batch_size=500,
        )
        return
    # COPY into a session-local staging table, then one INSERT ... ON CONFLICT DO NOTHING: about
    # five times faster than bulk_create for 10,000 rows (the same approach as items_ingest).
    columns = "item_id, scorer, value, number, passed, rationale, error, source_type, skipped"
    with transaction.atomic(), connection.cursor() as cursor:
        raw = cursor.cursor  # the psycopg cursor underneath Django's wrapper
        # Results can be recomputed, so their commit need not wait for the disk; the chunk's close
        # commits synchronously, which flushes these earlier commits too (the WAL is written in order).
        raw.execute("SET LOCAL synchronous_commit TO OFF")
        raw.execute(
            "CREATE TEMP TABLE IF NOT EXISTS reviewdesk_result_stage (item_id bigint, scorer text, value jsonb, "
            "number double precision, passed boolean, rationale text, error text, source_type text, skipped boolean) "
            "ON COMMIT DELETE ROWS"
        )
        with raw.copy(f"COPY reviewdesk_result_stage ({columns}) FROM STDIN") as copy:
            for v in verdicts:
                value = None if v.value is None else json.dumps(v.value)
                copy.write_row(
                    (v.item_id, v.scorer, value, v.number, v.passed, v.rationale, v.error, v.source_type, v.skipped)
                )
        raw.execute(
            f"INSERT INTO {RunResult._meta.db_table} (run_id, {columns}) "  # noqa: S608 - names from the model
            f"SELECT %s, {columns} FROM reviewdesk_result_stage ON CONFLICT (run_id, item_id, scorer) DO NOTHING",
            [run.pk],
        )
        # ON COMMIT only empties it at a real commit, not when this block is a savepoint in a larger one.
        raw.execute("TRUNCATE reviewdesk_result_stage")


def _judge_batch(entry: _Entry, rows: list[ScoreInput]) -> list[Score]:
    assert entry.batch is not None and entry.scorer is not None
    try:
        scores = entry.batch(rows, entry.params)
        if len(scores) != len(rows):
            raise ValueError(f"{entry.name} returned {len(scores)} scores for {len(rows)} rows")
    except Exception as exc:  # the judge as a whole failed: every row of the batch records why
        return [Score(value=None, error=_describe(exc)) for _ in rows]
    return [
        entry.scorer.judge(s, entry.threshold) if isinstance(s, Score) else Score(value=None, error="not a Score")
        for s in scores
    ]


def _score(
    *,
    run: Run,
    inputs: list[tuple[Item, ScoreInput | str]],
    entries: list[_Entry],
    done: set[tuple[int, str]],
    executor: ThreadPoolExecutor | None,
    claim: _Claim,
    skip: tuple[frozenset[int], str] = (frozenset(), ""),
) -> bool:
    """Score and write one batch; False when the claim was lost or the run stopped on the way."""
    skipped_ids, skip_reason = skip
    verdicts: list[_Verdict] = []
    futures: dict[Future[Score], tuple[int, _Entry]] = {}
    batches: dict[str, tuple[_Entry, list[int], list[ScoreInput]]] = {}

    def flush() -> None:
        _write(run, verdicts)
        done.update((v.item_id, v.scorer) for v in verdicts)
        verdicts.clear()

    def keep_going() -> bool:
        """Write what is scored and renew the lease, every few seconds."""
        if not claim.due:
            return True
        flush()
        return claim.renew()

    for item, row in inputs:
        for entry in entries:
            if (item.pk, entry.name) in done:
                continue
            if entry.is_judge and item.pk in skipped_ids:
                verdicts.append(_skipped(item.pk, entry, skip_reason))
            elif isinstance(row, str):
                verdicts.append(_verdict(item.pk, entry, Score(value=None, error=f"No response: {row}")))
            elif entry.batch is not None:
                _, ids, rows = batches.setdefault(entry.name, (entry, [], []))
                ids.append(item.pk)
                rows.append(row)
            elif entry.is_judge and executor is not None:
                futures[executor.submit(_judge_call, entry, row)] = (item.pk, entry)
            else:
                verdicts.append(_verdict(item.pk, entry, _score_one(entry, row)))
        if not keep_going():
            return False
    for entry, ids, rows in batches.values():
        for item_id, score in zip(ids, _judge_batch(entry, rows), strict=True):
            verdicts.append(_verdict(item_id, entry, score))
        if not keep_going():
            return False
    waiting = set(futures)
    while waiting:
        finished, waiting = wait(waiting, timeout=claim.every, return_when=FIRST_COMPLETED)
        for future in finished:
            item_id, entry = futures[future]
            verdicts.append(_verdict(item_id, entry, future.result()))
        if not keep_going():
            return False
    flush()
    return True
