"""Judge-human alignment, sending disagreements to review, and comparing two runs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from django.test import Client
from django.urls import reverse

from evaluations.models import Run, RunChunk, RunResult
from evaluations.services.alignment import alignment_compute, disagreements_list, disagreements_send_to_review
from evaluations.services.chunks import run_chunk_execute
from evaluations.services.compare import paired_bootstrap, runs_compare
from evaluations.services.runs import run_start
from evaluations.services.suites import suite_create
from reviewapp.agreement import cohen_kappa
from reviewapp.models import Assignment, Flag, Item
from tests.evaluations.conftest import curate, ingest, rag_row
from tests.fakes.openai_chat import FakeChatServer

EXPECTED = "Open Settings, then Security, and choose Reset password."


def execute(project: Any, scorers: list[Any], name: str = "s", **start: Any) -> Run:
    suite = suite_create(project=project, name=name, scorers=scorers, actor=None)
    run = run_start(project=project, suite_version=suite.versions.get(), actor=None, **start)
    for chunk_id in RunChunk.objects.filter(run=run).values_list("pk", flat=True):
        run_chunk_execute(chunk_id=chunk_id)
    run.refresh_from_db()
    return run


@pytest.fixture
def judged(project, rag_questions, reviewer) -> tuple[Run, list[Item]]:
    """6 items; the judge (test_judge, answering metadata.verdict) vs the curated "correct" answer.

    item:    0     1     2     3     4      5
    judge:   pass  pass  fail  fail  pass   fail
    human:   pass  fail  fail  pass  pass   (no label)
    """
    verdicts = [True, True, False, False, True, False]
    items = ingest(project, [rag_row(n, metadata={"verdict": v}) for n, v in enumerate(verdicts)])
    for item, human in zip(items[:5], [True, False, False, True, True], strict=True):
        curate(item, reviewer, {"correct": human})
    return execute(project, ["test_judge", "pii"]), items


def test_alignment_against_curated_labels(judged) -> None:
    run, _ = judged
    alignment = alignment_compute(run=run)
    a = alignment["test_judge"]
    assert (a.question, a.n, a.agree, a.unlabelled) == ("correct", 5, 3, 1)
    assert a.confusion == {
        "judge_pass_human_pass": 2,
        "judge_pass_human_fail": 1,
        "judge_fail_human_pass": 1,
        "judge_fail_human_fail": 1,
    }
    assert a.accuracy == pytest.approx(0.6)
    assert 0.0 < a.accuracy_low < 0.6 < a.accuracy_high < 1.0  # Wilson interval around 3/5
    expected = cohen_kappa([(True, True), (True, False), (False, False), (False, True), (True, True)])
    assert a.kappa == pytest.approx(expected.value) and a.kappa == pytest.approx(1 / 6)
    # pii always passes: accuracy is the share of human passes, and kappa says it is no better than chance
    assert alignment["pii"].accuracy == pytest.approx(3 / 5) and alignment["pii"].kappa == 0.0


def test_alignment_can_be_switched_off_per_scorer(project, rag_questions, reviewer) -> None:
    items = ingest(project, [rag_row(0, metadata={"verdict": True})])
    curate(items[0], reviewer, {"correct": False})
    run = execute(project, ["test_judge", {"scorer": "pii", "human_question": ""}])
    assert set(alignment_compute(run=run)) == {"test_judge"}


def test_disagreements_with_humans_and_between_judges(project, rag_questions, reviewer) -> None:
    items = ingest(
        project,
        [
            rag_row(0, metadata={"verdict": True}, response="ok"),  # judge pass, human fail
            rag_row(1, metadata={"verdict": True}, response="ok"),  # agree
            rag_row(2, metadata={"verdict": False}, response="Mail jane@example.com"),  # the judges split
        ],
    )
    curate(items[0], reviewer, {"correct": False})
    curate(items[1], reviewer, {"correct": True})
    run = execute(project, ["test_judge", {"scorer": "test_judge", "name": "second_judge"}, "pii"])
    # the second judge answered otherwise on item 2 (the fake judge answers from the data, so set its verdict)
    RunResult.objects.filter(run=run, item=items[2], scorer="second_judge").update(value=True, number=1.0, passed=True)
    found = {d.item_id: d for d in disagreements_list(run=run)}
    assert set(found) == {items[0].pk, items[2].pk}
    assert found[items[0].pk].with_humans == ["test_judge", "second_judge", "pii"]
    assert found[items[0].pk].between_judges == []
    # pii (a code scorer) fails item 2 while the second judge passes it: only LLM judges count as splitting
    assert found[items[2].pk].between_judges == ["second_judge", "test_judge"] and found[items[2].pk].with_humans == []
    assert [d.item_id for d in disagreements_list(run=run, scorers=["test_judge"])] == [items[0].pk]


def test_sending_disagreements_to_review_raises_priority_and_flags_curated_items(judged, engineer) -> None:
    run, items = judged
    result = disagreements_send_to_review(run=run, actor=engineer, scorers=["test_judge"])
    # the judge differs from the curated label on items 1 and 3
    assert (result.items, result.prioritised, result.flagged) == (2, 2, 2)
    raised = set(Item.objects.filter(priority=10).values_list("pk", flat=True))
    assert raised == {items[1].pk, items[3].pk}
    flags = Flag.objects.filter(kind=Flag.Kind.NEEDS_EXPERT, created_by=engineer)
    assert set(flags.values_list("item_id", flat=True)) == {items[1].pk, items[3].pk}
    assert f"Evaluation run {run.pk}" in flags.first().note and "test_judge" in flags.first().note
    # sending again changes nothing and never lowers a higher priority
    Item.objects.filter(pk=items[1].pk).update(priority=50)
    again = disagreements_send_to_review(run=run, actor=engineer, scorers=["test_judge"])
    assert (again.prioritised, Item.objects.get(pk=items[1].pk).priority, Flag.objects.count()) == (0, 50, 2)
    # every scorer with alignment: pii (always pass) also differs from the humans' fail on item 2
    assert disagreements_send_to_review(run=run, actor=engineer).items == 3


def test_uncurated_disagreements_move_up_the_review_queue(project, engineer) -> None:
    items = ingest(project, [rag_row(0, metadata={"verdict": True}), rag_row(1, metadata={"verdict": True})])
    run = execute(project, ["test_judge", {"scorer": "test_judge", "name": "second_judge"}])
    RunResult.objects.filter(run=run, item=items[0], scorer="second_judge").update(
        value=False, number=0.0, passed=False
    )
    result = disagreements_send_to_review(run=run, actor=engineer)
    assert (result.items, result.prioritised, result.flagged) == (1, 1, 0)
    slot = Assignment.objects.get(item=items[0])
    assert slot.priority == 10  # the open review slot follows, so the queue serves it first


# --- alignment needs the answers the humans reviewed -------------------------------------------


@pytest.fixture
def candidate(settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeChatServer]:
    with FakeChatServer(model="candidate-llm").running() as fake:
        monkeypatch.setenv("REVIEWDESK_SECRET_TEST_CANDIDATE_KEY", fake.token)
        fake.answer = lambda messages: "A freshly generated answer."
        settings.EVALUATION_ENDPOINTS = [
            {
                "name": "candidate",
                "kind": "openai_compatible",
                "url": fake.base_url,
                "model": fake.model,
                "credential_env": "REVIEWDESK_SECRET_TEST_CANDIDATE_KEY",
                "timeout_seconds": 2,
                "max_retries": 0,
                "max_concurrency": 4,
                "backoff_seconds": 0.01,
            }
        ]
        yield fake


def test_alignment_is_not_applicable_on_regenerated_answers(project, rag_questions, reviewer, engineer, candidate):
    verdicts = [True, True, False, False]
    items = ingest(project, [rag_row(n, metadata={"verdict": v}) for n, v in enumerate(verdicts)])
    for item, human in zip(items, [True, False, False, True], strict=True):
        curate(item, reviewer, {"correct": human})
    run = execute(project, ["test_judge"], target={"kind": "endpoint", "endpoint": "candidate"})
    assert run.status == Run.Status.SUCCEEDED

    a = alignment_compute(run=run)["test_judge"]

    # The judge's verdicts are about answers nobody reviewed: no figure against the labels.
    assert not a.applicable and a.reason == "not applicable: humans reviewed different answers"
    assert (a.n, a.accuracy, a.kappa, a.different_response) == (0, None, None, 4)
    assert disagreements_list(run=run) == []
    client = Client()
    client.force_login(engineer)
    page = client.get(reverse("evaluations-run", args=[run.pk])).content.decode()
    assert "not applicable: humans reviewed different answers" in page and "data-alignment-na" in page
    body = client.get(f"/api/v1/runs/{run.pk}/").json()
    judge = next(m for m in body["metrics"] if m["scorer"] == "test_judge")["alignment"]
    assert (judge["applicable"], judge["accuracy"], judge["different_response"]) == (False, None, 4)


def test_alignment_counts_regenerated_rows_only_when_the_answer_is_the_reviewed_one(
    project, rag_questions, reviewer, candidate
) -> None:
    items = ingest(project, [rag_row(n, metadata={"verdict": True}) for n in range(4)])
    for item in items:
        curate(item, reviewer, {"correct": True})
    # The endpoint gives back the stored answer for the first two requests, a new one for the others.
    candidate.answer = lambda messages: EXPECTED if "(0)" in str(messages) or "(1)" in str(messages) else "New."
    run = execute(project, ["test_judge"], target={"kind": "endpoint", "endpoint": "candidate"})

    a = alignment_compute(run=run)["test_judge"]

    assert a.applicable and (a.n, a.agree, a.different_response) == (2, 2, 2)


# --- comparison -------------------------------------------------------------------------------


def test_paired_bootstrap_interval() -> None:
    assert paired_bootstrap(np.array([0.5])) is None
    low, high = paired_bootstrap(np.array([0.1, 0.2, 0.3, 0.2, 0.1, 0.25] * 20))
    assert 0.15 < low < 0.19 < high < 0.22
    low, high = paired_bootstrap(np.array([1.0, -1.0] * 50))
    assert low < 0 < high


def test_comparing_two_runs_over_the_same_items(project, rag_questions, reviewer) -> None:
    items = ingest(project, [rag_row(n, metadata={"verdict": n < 3}) for n in range(6)])
    for item in items:
        curate(item, reviewer, {"correct": True, "expected": EXPECTED})
    a = execute(project, ["test_judge", "exact_match"], name="a")
    for n, item in enumerate(items):  # the candidate judge flips two verdicts
        Item.objects.filter(pk=item.pk).update(metadata={"verdict": n in (0, 1, 3, 4)})
    b = execute(project, ["test_judge", "exact_match"], name="b")
    comparison = runs_compare(a=a, b=b)
    assert (comparison.paired_by, comparison.n_pairs) == ("item", 6)
    judge = next(s for s in comparison.scorers if s.scorer == "test_judge")
    assert (judge.pass_rate_a, judge.pass_rate_b, judge.pass_rate_diff) == (
        0.5,
        pytest.approx(4 / 6),
        pytest.approx(1 / 6),
    )
    assert (judge.fixed, judge.regressed) == (2, 1)
    assert {(c.item_b, c.direction) for c in judge.changes} == {
        (items[2].pk, "regressed"),
        (items[3].pk, "fixed"),
        (items[4].pk, "fixed"),
    }
    assert judge.pass_rate_ci is not None and judge.pass_rate_ci[0] <= judge.pass_rate_diff <= judge.pass_rate_ci[1]
    same = next(s for s in comparison.scorers if s.scorer == "exact_match")
    assert (same.mean_diff, same.mean_ci, same.fixed, same.regressed) == (0.0, (0.0, 0.0), 0, 0)


def test_runs_over_two_model_versions_pair_by_request(project) -> None:
    ingest(
        project,
        [
            rag_row(n, external_id=f"v1-{n}", model_version="1", response="Contact me at jane@example.com")
            for n in range(4)
        ]
        + [rag_row(n, external_id=f"v2-{n}", model_version="2", response="Open Settings.") for n in range(4)]
        + [rag_row(9, external_id="v2-extra", model_version="2", request="unpaired question")],
    )
    a = execute(project, ["pii", "response_length"], name="a", dataset={"model_version": "1"})
    b = execute(project, ["pii", "response_length"], name="b", dataset={"model_version": "2"})
    comparison = runs_compare(a=a, b=b)
    assert (comparison.paired_by, comparison.n_pairs) == ("request", 4)
    pii = next(s for s in comparison.scorers if s.scorer == "pii")
    assert (pii.pass_rate_a, pii.pass_rate_b, pii.fixed, pii.regressed) == (0.0, 1.0, 4, 0)
    assert pii.mean_diff == -1.0 and pii.mean_ci == (-1.0, -1.0)
    length = next(s for s in comparison.scorers if s.scorer == "response_length")
    assert length.mean_diff == pytest.approx(2 - 6) and length.n_b == 5 and length.n_paired == 4
    # The means beside the difference are over the same 4 shared requests: B's unpaired row stays out.
    assert (length.mean_a, length.mean_b) == (6, 2)
    assert (comparison.only_a, comparison.only_b) == (0, 1)
    assert comparison.summary == "compared on 4 shared items; 1 only in B"


def test_runs_over_different_item_sets_compare_only_the_shared_items(project, rag_questions) -> None:
    items = ingest(project, [rag_row(n, response="word " * (n + 1)) for n in range(8)])
    ids = [i.pk for i in items]
    a = execute(project, ["response_length"], name="a", dataset={"ids": ids[:6]})  # items 0-5
    b = execute(project, ["response_length"], name="b", dataset={"ids": ids[3:]})  # items 3-7
    comparison = runs_compare(a=a, b=b)
    assert (comparison.paired_by, comparison.n_pairs, comparison.only_a, comparison.only_b) == ("item", 3, 3, 2)
    assert comparison.summary == "compared on 3 shared items; 3 only in A, 2 only in B"
    length = comparison.scorers[0]
    # Shared items 3, 4, 5 have lengths 4, 5, 6 in both runs: equal means, no difference.
    assert (length.mean_a, length.mean_b, length.mean_diff, length.n_paired) == (5, 5, 0, 3)
    assert (length.n_a, length.n_b) == (6, 5)


def test_the_paired_bootstrap_is_seeded(project, rag_questions) -> None:
    items = ingest(project, [rag_row(n, response="word " * (n % 4 + 1)) for n in range(12)])
    a = execute(project, ["response_length"], name="a")
    for item in items[::3]:
        Item.objects.filter(pk=item.pk).update(response="a much longer answer than before")
    b = execute(project, ["response_length"], name="b")
    first, second = runs_compare(a=a, b=b), runs_compare(a=a, b=b)
    assert first.scorers[0].mean_ci == second.scorers[0].mean_ci
    assert first.scorers[0].mean_ci[0] < first.scorers[0].mean_diff < first.scorers[0].mean_ci[1]
    assert runs_compare(a=a, b=b, seed=1).scorers[0].mean_ci != first.scorers[0].mean_ci  # the seed is what fixes it
