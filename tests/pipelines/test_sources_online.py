"""Online evaluation: a source's suite scores the items its pulls newly take (code scorers always, LLM judges
within the hourly budget, the rest recorded as skipped), a repeated pull starts no second run, and the traces'
HUMAN feedback is imported during the pull and joined to the items. A real MLflow store (as test_sources_pulls);
the run's chunks are executed here as the worker would (test_sources_online_worker runs them on real workers).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.utils import timezone

import tests.pipelines.online_scorers  # noqa: F401 - registers the scorers in this process
from evaluations.models import Run, RunChunk, RunResult
from evaluations.services.chunks import run_chunk_execute
from evaluations.services.runs import RunOptions, run_start
from evaluations.services.suites import suite_create
from pipelines.models import Feedback, Source, SourcedItem, SourcePull, SourceRun
from pipelines.sources.online import OVER_BUDGET
from pipelines.sources.selectors import judge_calls_used
from pipelines.sources.services import source_update
from reviewapp.errors import ValidationFailed
from reviewapp.models import Item
from tests.pipelines import online_scorers
from tests.pipelines.datasets_helpers import bearer, session
from tests.pipelines.test_sources_pulls import feedback, pull_now, traces_source
from tests.pipelines.test_trace_ingest import log_trace, mlflow_store  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db

CODE_ONLY = ["online_length"]
WITH_JUDGE = ["online_length", {"scorer": "online_judge", "name": "judge"}]


@pytest.fixture(autouse=True)
def _judge_calls() -> Iterator[None]:
    online_scorers.JUDGE_CALLS.clear()
    yield


def suite_of(project, scorers: list, name: str = "online") -> int:  # type: ignore[no-untyped-def]
    return suite_create(project=project, name=name, scorers=scorers, actor=None).pk


def score(run: Run) -> Run:
    """What the workers do once the batch commits: execute each chunk of the run."""
    for chunk_id in RunChunk.objects.filter(run=run).values_list("pk", flat=True):
        run_chunk_execute(chunk_id=chunk_id)
    run.refresh_from_db()
    return run


def results(run: Run, scorer: str) -> dict[str, RunResult]:
    return {r.item.external_id: r for r in RunResult.objects.filter(run=run, scorer=scorer).select_related("item")}


def test_a_pull_with_a_suite_scores_the_new_items_with_its_code_scorers(project, mlflow_store) -> None:  # noqa: F811
    traces = [log_trace({"question": f"q{n}"}, {"response": "x" * (n + 1)}) for n in range(3)]
    source = traces_source(project, suite=suite_of(project, CODE_ONLY))

    pull = pull_now(source)

    assert pull.status == SourcePull.Status.SUCCEEDED and pull.created == 3
    online = SourceRun.objects.get(source=source)
    assert (online.pull_id, online.items, online.judge_calls, online.judges_skipped) == (pull.pk, 3, 0, 0)
    run = score(online.run)
    assert run.status == Run.Status.SUCCEEDED and run.target == {"kind": "stored"}
    assert sorted(run.chunks.get().item_ids) == sorted(Item.objects.values_list("pk", flat=True))
    lengths = {key: r.number for key, r in results(run, "online_length").items()}
    assert lengths == {trace: float(n + 1) for n, trace in enumerate(traces)}


def test_judges_run_within_the_hourly_budget_and_the_rest_are_recorded_skipped(project, mlflow_store) -> None:  # noqa: F811
    first = [log_trace({"question": f"q{n}"}, {"response": f"good answer {n}"}) for n in range(3)]
    source = traces_source(project, suite=suite_of(project, WITH_JUDGE), judge_calls_per_hour=2)

    pull_now(source)
    online = SourceRun.objects.get(source=source)
    assert (online.items, online.judged_items, online.judges_skipped, online.judge_calls) == (3, 2, 1, 2)
    run = score(online.run)
    assert run.status == Run.Status.SUCCEEDED, run.error
    judged = results(run, "judge")
    assert len(online_scorers.JUDGE_CALLS) == 2  # the judge was called for two items only
    called = {key for key, r in judged.items() if not r.skipped}
    skipped = [r for r in judged.values() if r.skipped]
    assert len(called) == 2 and called < set(first)
    assert all(judged[key].passed is True and judged[key].source_type == "LLM_JUDGE" for key in called)
    assert len(skipped) == 1
    gap = skipped[0]
    assert (gap.value, gap.passed, gap.error, gap.rationale) == (None, None, "", OVER_BUDGET)
    assert skipped[0].source_type == "LLM_JUDGE"
    assert len(results(run, "online_length")) == 3  # code scorers always run
    assert run.metrics["judge"]["n_skipped"] == 1 and run.metrics["judge"]["n_errors"] == 0
    assert judge_calls_used(source=source) == 2

    # The hour's budget is used: the next pull's items get the code scorers and skipped judges.
    later = [log_trace({"question": f"later{n}"}, {"response": "good"}) for n in range(2)]
    pull_now(source)
    second = SourceRun.objects.filter(source=source).order_by("-id").first()
    assert second is not None and (second.items, second.judged_items, second.judge_calls) == (2, 0, 0)
    run2 = score(second.run)
    assert set(results(run2, "judge")) == set(later)
    assert all(r.skipped for r in results(run2, "judge").values())
    assert len(online_scorers.JUDGE_CALLS) == 2

    # An hour later the budget is free again.
    SourceRun.objects.filter(source=source).update(created_at=timezone.now() - timedelta(hours=1, minutes=1))
    assert judge_calls_used(source=source) == 0
    log_trace({"question": "next hour"}, {"response": "not so"})
    pull_now(source)
    third = SourceRun.objects.filter(source=source).order_by("-id").first()
    assert third is not None and (third.judged_items, third.judge_calls) == (1, 1)
    assert [r.passed for r in results(score(third.run), "judge").values()] == [False]


def test_a_repeated_pull_or_a_re_read_batch_starts_no_second_run(project, mlflow_store) -> None:  # noqa: F811
    for n in range(3):
        log_trace({"question": f"q{n}"}, {"response": f"a{n}"})
    source = traces_source(project, suite=suite_of(project, CODE_ONLY))
    assert pull_now(source).created == 3
    assert pull_now(source).scanned == 0  # nothing new
    # Read every trace again (as a batch retried after its commit would): the items are known to the source.
    source.refresh_from_db()
    source_update(source=source, values={"reset_watermark": True}, actor=None)
    again = pull_now(source)
    assert (again.scanned, again.unchanged, again.created) == (3, 3, 0)
    assert SourceRun.objects.filter(source=source).count() == 1
    assert Run.objects.count() == 1


def test_a_source_without_a_suite_starts_no_run_and_a_suite_added_later_scores_only_new_items(
    project,
    mlflow_store,  # noqa: F811
) -> None:
    log_trace({"question": "before"}, {"response": "a"})
    source = traces_source(project)
    pull_now(source)
    assert not SourceRun.objects.exists()
    source_update(source=source, values={"suite": suite_of(project, CODE_ONLY)}, actor=None)
    late = log_trace({"question": "after"}, {"response": "bb"})
    pull_now(source)
    run = score(SourceRun.objects.get(source=source).run)
    assert set(results(run, "online_length")) == {late}


def test_the_suite_and_budget_are_validated(project, mlflow_store) -> None:  # noqa: F811
    from tests.factories import ProjectFactory

    other = suite_of(ProjectFactory(slug="other"), CODE_ONLY)
    with pytest.raises(ValidationFailed) as caught:
        traces_source(project, suite=other, judge_calls_per_hour=-1)
    assert sorted(e["field"] for e in caught.value.errors) == ["judge_calls_per_hour", "suite"]


def test_run_options_are_validated(project, mlflow_store) -> None:  # noqa: F811
    log_trace({"question": "q"}, {"response": "a"})
    source = traces_source(project)
    pull_now(source)
    item = Item.objects.get()
    version = suite_create(project=project, name="s", scorers=WITH_JUDGE, actor=None).versions.get()
    with pytest.raises(ValidationFailed) as caught:
        run_start(
            project=project,
            suite_version=version,
            actor=None,
            dataset={"ids": [item.pk]},
            options=RunOptions(judges_skipped_item_ids=(item.pk + 1000,), judges_skipped_reason=""),
        )
    assert sorted(e["field"] for e in caught.value.errors) == [
        "options.judges_skipped_item_ids",
        "options.judges_skipped_reason",
    ]


def test_human_feedback_on_taken_traces_is_imported_during_the_pull_and_joined(project, mlflow_store) -> None:  # noqa: F811
    disliked = log_trace({"question": "Refund?"}, {"response": "No."})
    feedback(disliked, "user_feedback", False)  # a thumbs-down as MLflow's feedback UI logs it
    feedback(disliked, "comment", "Not what I asked")
    feedback(disliked, "groundedness", 0.1, source_type="LLM_JUDGE")  # a judge: not end users' feedback
    ignored = log_trace({"question": "Hello"}, {"response": "Hi."})
    feedback(ignored, "user_feedback", True)
    source = traces_source(project, rules=[{"kind": "thumbs_down"}])  # takes only the disliked trace

    pull = pull_now(source)

    assert (pull.taken, pull.sampled_out) == (1, 1)
    item = Item.objects.get(external_id=disliked)
    stored = {f.kind: f for f in Feedback.objects.filter(project=project)}
    assert set(stored) == {"thumbs", "comment"}
    assert all(f.item_id == item.pk and f.origin == "mlflow" and f.trace_id == disliked for f in stored.values())
    assert stored["thumbs"].value == -1 and "Not what I asked" in stored["comment"].comment
    assert not Feedback.objects.filter(trace_id=ignored).exists()  # sampled out: not imported
    assert SourcedItem.objects.get(item=item).rule == "thumbs_down"

    # Read again: nothing is stored twice.
    source.refresh_from_db()
    source_update(source=source, values={"reset_watermark": True}, actor=None)
    pull_now(source)
    assert Feedback.objects.filter(project=project).count() == 2


def test_the_page_and_the_api_show_the_suite_budget_and_runs(project, curator, engineer, mlflow_store) -> None:  # noqa: F811
    for n in range(2):
        log_trace({"question": f"q{n}"}, {"response": "good"})
    suite = suite_of(project, WITH_JUDGE, name="online checks")
    client = bearer(engineer, "ingest")
    created = client.post(
        "/api/v1/projects/support/sources/",
        {
            "name": "prod",
            "kind": "mlflow_traces",
            "settings": {"experiment": "support-bot-traces"},
            "suite": suite,
            "judge_calls_per_hour": 1,
        },
        content_type="application/json",
    )
    assert created.status_code == 201, created.json()
    source = Source.objects.get(pk=created.json()["id"])
    pull = pull_now(source)
    run = SourceRun.objects.get(source=source).run

    body = client.get(f"/api/v1/projects/support/sources/{source.pk}/").json()
    assert (body["suite"], body["judge_calls_per_hour"]) == (suite, 1)
    assert body["online"]["suite_name"] == "online checks" and body["online"]["suite_version"] == 1
    assert body["online"]["judge_calls_used_last_hour"] == 1
    assert [(r["run_id"], r["status"], r["items"], r["judges_skipped"]) for r in body["online"]["runs"]] == [
        (run.pk, "queued", 2, 1)
    ]
    pulls = client.get(f"/api/v1/projects/support/sources/{source.pk}/pulls/").json()["results"]
    assert [r["run_id"] for r in pulls[0]["runs"]] == [run.pk] and pulls[0]["id"] == pull.pk
    detail = f"/api/v1/projects/support/sources/{source.pk}/"
    bad = client.patch(detail, {"judge_calls_per_hour": "lots"}, content_type="application/json")
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "judge_calls_per_hour"

    score(run)
    page = session(curator).get("/projects/support/sources/").content.decode()
    assert f'data-online-run="{run.pk}" data-status="succeeded"' in page
    assert "judge calls this hour: 1 of 1" in page
    assert f'data-pull-run="{run.pk}"' in page

    edited = session(curator).post(
        f"/projects/support/sources/{source.pk}/edit/",
        {
            "name": "prod",
            "setting_experiment": "support-bot-traces",
            "interval_seconds": "300",
            "suite": "",
            "judge_calls_per_hour": "50",
        },
    )
    assert edited.status_code == 302, edited.content.decode()[:2000]
    source.refresh_from_db()
    assert (source.suite_id, source.judge_calls_per_hour) == (None, 50)
