"""Evaluation runs over a curated dataset version: snapshot ids and expectations, API, form, command.

The version is taken with the real pipelines service; the labels then change through the real
review path (a reviewer edits the review, the consensus label gets a new version). A run over the
version must score against what the version snapshotted; a run over a filter sees today's labels.
"""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from evaluations.models import Run, RunChunk, RunResult, Suite
from evaluations.services.alignment import alignment_compute
from evaluations.services.chunks import run_chunk_execute
from evaluations.services.runs import run_start
from evaluations.services.suites import suite_create
from pipelines.datasets.versions import dataset_create, dataset_version_create
from pipelines.models import DatasetRow, DatasetVersion
from pipelines.selectors.assessments import dataset_version_for_run
from reviewapp.errors import ValidationFailed
from reviewapp.models import Item, Review
from reviewapp.services.reviews import review_edit
from reviewapp.services.tokens import api_token_create
from tests.evaluations.conftest import curate, ingest, rag_row
from tests.factories import ProjectFactory, member, standard_questions

ANSWER = "Open Settings, then Security, and choose Reset password."
RUNS = "/api/v1/runs/"


def execute(run: Run) -> Run:
    for chunk_id in RunChunk.objects.filter(run=run).order_by("index").values_list("pk", flat=True):
        run_chunk_execute(chunk_id=chunk_id)
    run.refresh_from_db()
    return run


def session(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def edit(item: Item, answers: dict[str, Any]) -> None:
    review = Review.objects.get(item=item)
    review_edit(review=review, user=review.reviewer, answers={**review.answers, **answers})


def values(run: Run, scorer: str) -> dict[int, Any]:
    return dict(RunResult.objects.filter(run=run, scorer=scorer).values_list("item_id", "value"))


@pytest.fixture
def items(project, rag_questions, reviewer) -> list[Item]:
    """Three curated items: item 0 and 2 expect the stored answer, item 1 expects something else."""
    made = ingest(project, [rag_row(n, metadata={"verdict": True}) for n in range(3)])
    curate(made[0], reviewer, {"correct": True, "expected": ANSWER})
    curate(made[1], reviewer, {"correct": True, "expected": "Call support."})
    curate(made[2], reviewer, {"correct": True, "expected": ANSWER})
    return made


@pytest.fixture
def version(project, items, engineer) -> DatasetVersion:
    dataset = dataset_create(project=project, user=engineer, name="Gold", filter={"curated_only": True})
    return dataset_version_create(dataset=dataset, user=engineer)


@pytest.fixture
def suite(project) -> Suite:
    return suite_create(
        project=project,
        name="Core",
        scorers=["exact_match", {"scorer": "test_judge", "human_question": "correct"}],
        actor=None,
    )


def test_a_run_over_a_version_scores_against_its_snapshot_not_todays_labels(
    project, items: list[Item], version: DatasetVersion, suite: Suite
) -> None:
    # After the snapshot, the labels change: item 0 now expects something else and fails "correct",
    # item 1 now expects the stored answer.
    edit(items[0], {"expected": "Reinstall the app.", "correct": False})
    edit(items[1], {"expected": ANSWER})
    assert items[0].curated_label.__class__.objects.get(item=items[0]).version == 2
    late = ingest(project, [rag_row(9)])[0]  # a later item is not in the version

    snapshot = dataset_version_for_run(project=project, pk=version.pk)
    run = execute(run_start(project=project, suite_version=suite.versions.get(), dataset_version=snapshot, actor=None))

    assert run.status == Run.Status.SUCCEEDED and run.items_total == 3
    rows = list(DatasetRow.objects.filter(version=version).order_by("position").values_list("item_id", flat=True))
    assert [i for c in run.chunks.order_by("index") for i in c.item_ids] == rows and late.pk not in rows
    assert run.dataset_version == {
        "id": version.pk,
        "dataset_id": version.dataset_id,
        "name": "Gold",
        "number": 1,
        "content_hash": version.content_hash,
        "row_count": 3,
    }
    assert run.dataset_version_label == f"Gold v1 ({version.content_hash[:8]})"
    # The snapshot's expected responses: items 0 and 2 match, item 1 does not.
    assert values(run, "exact_match") == {items[0].pk: True, items[1].pk: False, items[2].pk: True}
    # Judge-human alignment against the snapshot's answers: "correct" was True for all three then.
    alignment = alignment_compute(run=run)["test_judge"]
    assert (alignment.n, alignment.agree, alignment.pass_fail) == (3, 3, 0)

    # The same items over a filter see today's labels: the opposite verdicts, and one disagreement.
    live = execute(
        run_start(
            project=project,
            suite_version=suite.versions.get(),
            dataset={"ids": [i.pk for i in items]},
            actor=None,
        )
    )
    assert values(live, "exact_match") == {items[0].pk: False, items[1].pk: True, items[2].pk: True}
    assert live.dataset_version == {} and live.dataset_version_label == ""
    live_alignment = alignment_compute(run=live)["test_judge"]
    assert (live_alignment.n, live_alignment.agree, live_alignment.pass_fail) == (3, 2, 1)


def test_a_filter_narrows_the_version_and_a_deleted_item_drops_out(
    project, items: list[Item], version: DatasetVersion, suite: Suite
) -> None:
    Item.objects.filter(pk=items[2].pk).delete()
    snapshot = dataset_version_for_run(project=project, pk=version.pk)
    run = run_start(
        project=project,
        suite_version=suite.versions.get(),
        dataset={"ids": [items[1].pk, items[2].pk]},
        dataset_version=snapshot,
        actor=None,
    )
    assert run.items_total == 1 and run.chunks.get().item_ids == [items[1].pk]
    assert set(run.chunks.get().expectations) == {str(items[1].pk)}
    assert run.chunks.get().expectations[str(items[1].pk)]["expected_response"] == "Call support."
    with pytest.raises(ValidationFailed) as caught:
        run_start(
            project=project,
            suite_version=suite.versions.get(),
            dataset={"ids": [items[2].pk]},
            dataset_version=snapshot,
            actor=None,
        )
    assert caught.value.errors[0]["field"] == "dataset"


def test_a_version_of_another_project_is_refused_naming_the_field(
    project, items: list[Item], version: DatasetVersion, suite: Suite
) -> None:
    other = ProjectFactory(slug="other", name="Other")
    standard_questions(other)
    with pytest.raises(ValidationFailed) as caught:
        dataset_version_for_run(project=other, pk=version.pk)
    assert caught.value.errors[0]["field"] == "dataset_version"
    snapshot = dataset_version_for_run(project=project, pk=version.pk)
    other_suite = suite_create(project=other, name="Core", scorers=["pii"], actor=None)
    with pytest.raises(ValidationFailed) as caught:
        run_start(project=other, suite_version=other_suite.versions.get(), dataset_version=snapshot, actor=None)
    assert caught.value.errors[0]["field"] == "dataset_version"


# --- REST API ----------------------------------------------------------------------------------


def test_api_starts_a_run_over_a_version_and_shows_it(
    project, engineer, items: list[Item], version: DatasetVersion, suite: Suite
) -> None:
    api = session(engineer)
    response = api.post(
        RUNS,
        {"project": "support", "suite": suite.pk, "dataset_version": version.pk},
        content_type="application/json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    label = f"Gold v1 ({version.content_hash[:8]})"
    assert body["dataset_version"] == {
        "id": version.pk,
        "dataset_id": version.dataset_id,
        "name": "Gold",
        "number": 1,
        "content_hash": version.content_hash,
        "row_count": 3,
        "label": label,
    }
    assert body["progress"]["items_total"] == 3 and body["dataset"] == {}
    run = execute(Run.objects.get(pk=body["id"]))
    detail = api.get(f"{RUNS}{run.pk}/").json()
    assert detail["dataset_version"]["label"] == label and detail["status"] == "succeeded"
    page = api.get(reverse("evaluations-run", args=[run.pk])).content.decode()
    assert f"Dataset: {label}" in page
    assert api.get(f"{RUNS}?project=support").json()["results"][0]["dataset_version"]["id"] == version.pk


def test_api_refuses_foreign_and_unknown_versions_with_400_naming_the_field(
    project, engineer, items: list[Item], version: DatasetVersion, suite: Suite
) -> None:
    other = ProjectFactory(slug="other", name="Other")
    standard_questions(other)
    member(other, "engineer")
    other_dataset = dataset_create(project=other, user=None, name="Theirs", filter={})
    foreign = DatasetVersion.objects.create(dataset=other_dataset, number=1, content_hash="0" * 64)
    api = session(engineer)
    for bad in (foreign.pk, 999_999):
        response = api.post(
            RUNS, {"project": "support", "suite": suite.pk, "dataset_version": bad}, content_type="application/json"
        )
        assert response.status_code == 400, response.json()
        assert response.json()["errors"][0]["field"] == "dataset_version"
    wrong_type = api.post(
        RUNS, {"project": "support", "suite": suite.pk, "dataset_version": "v1"}, content_type="application/json"
    )
    assert wrong_type.status_code == 400 and wrong_type.json()["errors"][0]["field"] == "dataset_version"
    assert Run.objects.count() == 0


def test_only_evaluators_may_start_a_run_over_a_version(
    project, reviewer, curator, outsider, engineer, items: list[Item], version: DatasetVersion, suite: Suite
) -> None:
    payload = {"project": "support", "suite": suite.pk, "dataset_version": version.pk}
    for user in (reviewer, curator, outsider):
        response = session(user).post(RUNS, payload, content_type="application/json")
        assert response.status_code in (403, 404), (user, response.status_code)
    _, raw = api_token_create(user=engineer, name="export-only", scopes=["export"], project=project)
    token = Client(headers={"authorization": f"Bearer {raw}"})
    assert token.post(RUNS, payload, content_type="application/json").status_code == 403
    assert Run.objects.count() == 0


# --- the form and the command ------------------------------------------------------------------


def test_the_run_form_offers_the_projects_versions_and_starts_over_one(
    project, engineer, items: list[Item], version: DatasetVersion, suite: Suite
) -> None:
    client = session(engineer)
    page = client.get(reverse("evaluations-project", args=["support"])).content.decode()
    assert f'<option value="{version.pk}">Gold v1 ({version.content_hash[:8]}, 3 rows)</option>' in page
    response = client.post(
        reverse("evaluations-run-start", args=["support"]),
        {"suite_version": suite.versions.get().pk, "dataset_version": str(version.pk), "target_kind": "stored"},
    )
    run = Run.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("evaluations-run", args=[run.pk])
    assert run.dataset_version["id"] == version.pk and run.items_total == 3
    bad = client.post(
        reverse("evaluations-run-start", args=["support"]),
        {"suite_version": suite.versions.get().pk, "dataset_version": "999999"},
    )
    assert bad.status_code == 302 and Run.objects.count() == 1
    assert "dataset_version: No dataset version 999999 in this project." in client.get(bad["Location"]).content.decode()


def test_run_suite_command_takes_a_dataset_version(
    project, items: list[Item], version: DatasetVersion, suite: Suite
) -> None:
    edit(items[1], {"expected": ANSWER})  # after the snapshot: the run must not see it
    out = StringIO()
    call_command(
        "run_suite", "Core", "--project", "support", "--dataset-version", str(version.pk), "--inline", stdout=out
    )
    run = Run.objects.get()
    text = out.getvalue()
    assert f"over 3 items of dataset Gold v1 ({version.content_hash[:8]})" in text and "succeeded" in text
    assert values(run, "exact_match")[items[1].pk] is False
    with pytest.raises(CommandError, match="dataset_version: No dataset version 999999"):
        call_command("run_suite", "Core", "--project", "support", "--dataset-version", "999999", stdout=StringIO())
