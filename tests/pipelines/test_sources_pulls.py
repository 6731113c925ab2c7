"""Pulls of sources on a real MLflow store: rules, caps, idempotence, resume after a killed worker, the beat.

Traces are logged with the real tracing API into a tmp SQLite store (as tests/pipelines/test_trace_ingest.py).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from pipelines.models import Source, SourcedItem, SourceKind, SourcePull
from pipelines.sources.pulls import source_pull_execute, source_pull_request, sources_due
from pipelines.sources.selectors import source_volume
from pipelines.sources.services import source_create
from reviewapp.errors import ValidationFailed
from reviewapp.jobs import job_kind_get, job_kind_sweep
from reviewapp.models import AuditEvent, Item
from reviewapp.services.ingest import items_ingest
from tests.pipelines.test_trace_ingest import EXPERIMENT, log_trace, mlflow_store  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db


def traces_source(project, rules: list | None = None, **extra) -> Source:  # type: ignore[no-untyped-def]
    return source_create(
        project=project,
        values={
            "name": extra.pop("name", "prod traces"),
            "kind": SourceKind.MLFLOW_TRACES,
            "settings": {"experiment": EXPERIMENT},
            "rules": rules or [],
            **extra,
        },
        actor=None,
    )


def pull_now(source: Source, **kwargs) -> SourcePull:  # type: ignore[no-untyped-def]
    pull = source_pull_request(source=source, actor=None)
    done = source_pull_execute(pull_id=pull.pk, **kwargs)
    assert done is not None
    return done


def feedback(trace_id: str, name: str, value: object, source_type: str = "HUMAN") -> None:
    import mlflow
    from mlflow.entities import AssessmentSource

    mlflow.log_feedback(
        trace_id=trace_id, name=name, value=value, source=AssessmentSource(source_type=source_type, source_id="u")
    )


def test_a_pull_takes_rows_by_its_rules_and_records_the_rule(project, mlflow_store) -> None:  # noqa: F811
    plain = [log_trace({"question": f"q{n}"}, {"response": f"a{n}"}) for n in range(6)]
    disliked = log_trace({"question": "Refund?"}, {"response": "No."})
    feedback(disliked, "user_feedback", "thumbs_down")
    judged = log_trace({"question": "Plans?"}, {"response": "Maybe."})
    feedback(judged, "groundedness", 0.2, source_type="LLM_JUDGE")
    tagged = log_trace({"question": "Prod?"}, {"response": "Yes."}, tags={"env": "prod"})
    source = traces_source(
        project,
        rules=[
            {"kind": "thumbs_down"},
            {"kind": "score_below", "name": "groundedness", "threshold": 0.5},
            {"kind": "match", "key": "env", "value": "prod"},
            {"kind": "percent", "percent": 0.0001},  # practically nothing else
        ],
    )

    pull = pull_now(source)

    assert pull.status == SourcePull.Status.SUCCEEDED
    assert (pull.scanned, pull.taken, pull.created, pull.sampled_out, pull.capped) == (9, 3, 3, 6, 0)
    rules = dict(SourcedItem.objects.filter(source=source).values_list("item__external_id", "rule"))
    assert rules == {disliked: "thumbs_down", judged: "score_below:groundedness", tagged: "match:env"}
    assert not Item.objects.filter(external_id__in=plain).exists()
    source.refresh_from_db()
    assert source.last_status == "succeeded" and source.last_summary["created"] == 3
    assert source.watermark["ids"] and source.watermark["timestamp_ms"] > 0


def test_a_repeated_pull_ingests_nothing_twice_and_the_next_takes_only_new_traces(project, mlflow_store) -> None:  # noqa: F811
    first = [log_trace({"question": f"q{n}"}, {"response": f"a{n}"}) for n in range(3)]
    source = traces_source(project)
    assert pull_now(source).created == 3
    stamps = dict(Item.objects.values_list("external_id", "updated_at"))

    again = pull_now(source)
    assert (again.scanned, again.created, again.updated) == (0, 0, 0)
    assert dict(Item.objects.values_list("external_id", "updated_at")) == stamps

    late = log_trace({"question": "late"}, {"response": "late answer"})
    third = pull_now(source)
    assert (third.scanned, third.created) == (1, 1)
    assert set(Item.objects.values_list("external_id", flat=True)) == {*first, late}
    assert SourcedItem.objects.filter(source=source).count() == 4
    assert source_volume(source=source).total == 4


def test_caps_count_what_the_rule_already_took_across_pulls(project, mlflow_store) -> None:  # noqa: F811
    for n in range(5):
        log_trace({"question": f"q{n}"}, {"response": f"a{n}"})
    source = traces_source(project, rules=[{"kind": "percent", "percent": 100, "max_per_hour": 3}])
    pull = pull_now(source)
    assert (pull.created, pull.capped, pull.sampled_out) == (3, 2, 0)

    for n in range(2):
        log_trace({"question": f"more{n}"}, {"response": "x"})
    assert (pull_now(source).created, SourcePull.objects.first().capped) == (0, 2)  # the hour's 3 are used

    SourcedItem.objects.filter(source=source).update(taken_at=timezone.now() - timedelta(hours=2))
    source.refresh_from_db()
    source.watermark = {}  # read everything again: the hour is free now
    source.save()
    again = pull_now(source)  # the 3 taken before are unchanged and spend nothing; 3 of the 4 others fit
    assert (again.created, again.unchanged, again.capped) == (3, 3, 1)


def test_a_pull_killed_after_a_batch_resumes_from_it_and_ingests_nothing_twice(project, mlflow_store, settings) -> None:  # noqa: F811
    settings.SOURCES_BATCH_SIZE = 2
    traces = [log_trace({"question": f"q{n}"}, {"response": f"a{n}"}) for n in range(5)]
    source = traces_source(project)
    pull = source_pull_request(source=source, actor=None)

    # The first worker commits one batch, then dies (its lease is left to expire).
    stopped = source_pull_execute(pull_id=pull.pk, batch_limit=1)
    assert stopped is not None and stopped.status == "running" and (stopped.batches, stopped.created) == (1, 2)
    assert source_pull_execute(pull_id=pull.pk) is None  # still leased: no second worker takes it
    SourcePull.objects.filter(pk=pull.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    swept = job_kind_sweep(job_kind_get(SourcePull))
    assert swept.requeued_ids == (pull.pk,)

    resumed = source_pull_execute(pull_id=pull.pk)
    assert resumed is not None and resumed.status == "succeeded" and resumed.attempts == 2
    assert (resumed.scanned, resumed.created, resumed.unchanged, resumed.batches) == (5, 5, 0, 3)
    assert set(Item.objects.filter(project=project).values_list("external_id", flat=True)) == set(traces)
    assert SourcedItem.objects.filter(pull=resumed).count() == 5


def test_at_most_one_pull_is_queued_or_running_per_source_and_pulls_are_audited(project, curator, mlflow_store) -> None:  # noqa: F811
    source = traces_source(project)
    first = source_pull_request(source=source, actor=curator)
    assert source_pull_request(source=source, actor=curator).pk == first.pk
    assert AuditEvent.objects.filter(action="source.pull", target_id=str(first.pk)).count() == 1
    source_pull_execute(pull_id=first.pk)
    assert source_pull_request(source=source, actor=curator).pk != first.pk


def test_the_beat_pulls_enabled_sources_whose_interval_passed(project, mlflow_store) -> None:  # noqa: F811
    due = traces_source(project, name="due", interval_seconds=60)
    traces_source(project, name="off", enabled=False)
    source_create(project=project, values={"name": "web", "kind": "rest"}, actor=None)
    created = sources_due()
    assert [SourcePull.objects.get(pk=pk).source_id for pk in created] == [due.pk]
    assert sources_due() == []  # queued already
    source_pull_execute(pull_id=created[0])
    assert sources_due() == []  # pulled less than 60 s ago
    assert sources_due(now=timezone.now() + timedelta(seconds=61)) != []


def test_a_failing_source_shows_why(project, mlflow_store) -> None:  # noqa: F811
    missing = traces_source(project, name="gone")
    missing.settings = {"experiment": "no-such-experiment"}
    missing.save()
    pull = pull_now(missing)
    assert pull.status == "failed" and "no-such-experiment" in pull.error
    missing.refresh_from_db()
    assert missing.last_status == "failed" and "no-such-experiment" in missing.last_error

    table = source_create(
        project=project,
        values={
            "name": "inference log",
            "kind": "delta_table",
            "settings": {"uri": "/tmp/nowhere"},
            "column_mapping": {"request": "q", "response": "a"},
        },
        actor=None,
    )
    pull = pull_now(table)
    assert pull.status == "failed" and "no Delta table at /tmp/nowhere" in pull.error


def test_rest_pushes_are_counted_against_the_rest_source_of_that_name(project) -> None:
    web = source_create(project=project, values={"name": "web-app", "kind": "rest"}, actor=None)
    items_ingest(project=project, rows=[{"request": f"q{n}", "response": "a", "source": "web-app"} for n in range(3)])
    items_ingest(project=project, rows=[{"request": "other", "response": "a", "source": "batch"}])
    volume = source_volume(source=web)
    assert (volume.total, volume.last_hour, volume.last_day) == (3, 3, 3)
    with pytest.raises(ValidationFailed) as refused:
        source_pull_request(source=web, actor=None)
    assert "nothing to pull" in refused.value.errors[0]["message"]


def test_a_pull_out_of_time_stops_after_a_batch_and_the_source_is_due_again_at_once(
    project,
    mlflow_store,  # noqa: F811
    settings,
) -> None:
    settings.SOURCES_BATCH_SIZE = 2
    settings.SOURCES_PULL_MAX_SECONDS = 0  # out of time after every batch
    for n in range(3):
        log_trace({"question": f"q{n}"}, {"response": f"a{n}"})
    source = traces_source(project, interval_seconds=3600)
    first = pull_now(source)
    assert (first.status, first.batches, first.created) == ("succeeded", 1, 2)
    source.refresh_from_db()
    assert source.last_summary["more"] and source.next_due_at <= timezone.now()
    (queued,) = sources_due()
    rest = source_pull_execute(pull_id=queued)
    assert rest is not None and (rest.created, rest.unchanged) == (1, 0)
    source.refresh_from_db()
    assert not source.last_summary["more"] and sources_due() == []


def test_the_canary_rule_takes_rows_of_a_version_being_rolled_out(project, mlflow_store) -> None:  # noqa: F811
    from django.db import transaction

    from pipelines.models import Environment, PromotionRequest
    from pipelines.releases.rollout.queueing import rollout_create
    from pipelines.sources.selectors import canary_versions
    from tests.factories import member
    from tests.pipelines.promotion_fixtures import versions

    v1, v2 = versions(project, 1, 2, name="support-assistant")
    environment = Environment.objects.create(project=project, name="production", alias="champion")
    request = PromotionRequest.objects.create(
        project=project, model_version=v2, environment=environment, requested_by=member(project, "engineer")
    )
    with transaction.atomic():
        rollout_create(request=request, environment=environment, to_version=v2, from_version=v1)
    assert canary_versions(project_id=project.pk) == frozenset({("support-assistant", v2.version)})

    old = log_trace(
        {"question": "old"}, {"response": "a"}, tags={"model_name": "support-assistant", "model_version": v1.version}
    )
    new = log_trace(
        {"question": "new"}, {"response": "b"}, tags={"model_name": "support-assistant", "model_version": v2.version}
    )
    source = traces_source(project, rules=[{"kind": "canary"}])
    pull = pull_now(source)
    assert (pull.created, pull.sampled_out) == (1, 1)
    assert SourcedItem.objects.get().item.external_id == new and old


def test_traces_sharing_a_millisecond_are_neither_lost_nor_read_twice_across_batches(
    project,
    mlflow_store,  # noqa: F811
    settings,
) -> None:
    import time

    import mlflow

    settings.SOURCES_BATCH_SIZE = 2
    start_ns = time.time_ns() // 1_000_000 * 1_000_000  # one whole millisecond for all five
    same = []
    for n in range(5):
        span = mlflow.start_span_no_context(name="rag", inputs={"question": f"same ms {n}"}, start_time_ns=start_ns)
        span.end(outputs={"response": f"a{n}"}, end_time_ns=start_ns + 5_000_000)
        same.append(str(span.trace_id))
    source = traces_source(project)

    pull = pull_now(source)

    assert (pull.scanned, pull.created, pull.batches) == (5, 5, 3)
    assert set(Item.objects.values_list("external_id", flat=True)) == set(same)
    source.refresh_from_db()
    assert source.watermark["timestamp_ms"] == start_ns // 1_000_000 and set(source.watermark["ids"]) == set(same)
    later = log_trace({"question": "later"}, {"response": "b"})
    again = pull_now(source)
    assert (again.scanned, again.created) == (1, 1) and Item.objects.filter(external_id=later).exists()
