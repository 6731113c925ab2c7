"""Dataset pages without a browser: access, the create form, versions, the diff fragment, export jobs."""

from __future__ import annotations

import pytest
from django.test import Client

from pipelines.datasets.versions import dataset_create, dataset_version_create
from pipelines.models import Dataset, ExportJob
from reviewapp.models import Review
from reviewapp.services.reviews import review_edit
from tests.pipelines.datasets_helpers import build_curated, session

pytestmark = pytest.mark.django_db


@pytest.fixture
def curated(project, reviewer, reviewer2, curator):  # type: ignore[no-untyped-def]
    return build_curated(project, reviewer, reviewer2, curator)


def test_who_sees_the_datasets_page(curated, curator, engineer, reviewer, outsider):
    assert session(curator).get("/projects/support/datasets/").status_code == 200
    page = session(engineer).get("/projects/support/datasets/")
    assert page.status_code == 200 and b"data-create-dataset" not in page.content  # exports, does not curate
    assert session(reviewer).get("/projects/support/datasets/").status_code == 403
    assert session(outsider).get("/projects/support/datasets/").status_code == 404
    assert Client().get("/projects/support/datasets/").status_code == 302
    assert session(engineer).post("/projects/support/datasets/", {"name": "x"}).status_code == 403


def test_a_curator_creates_a_dataset_from_the_form(curated, curator):
    client = session(curator)
    response = client.post(
        "/projects/support/datasets/", {"name": "billing", "tags": "billing", "answers": '{"correct": "pass"}'}
    )
    dataset = Dataset.objects.get(name="billing")
    assert response.status_code == 302 and response["Location"] == f"/datasets/{dataset.pk}/"
    assert dataset.filter == {"curated_only": True, "tags": ["billing"], "answers": {"correct": [True]}}
    bad = client.post("/projects/support/datasets/", {"name": "x", "answers": "{nope", "created_from": ""})
    assert bad.status_code == 400 and b"Answers: give JSON" in bad.content
    bad = client.post("/projects/support/datasets/", {"name": "x", "answers": '{"nope": 1}'})
    assert bad.status_code == 400 and b"filter.answers.nope" in bad.content


def test_versions_diff_and_export_job_on_the_dataset_page(
    curated, curator, reviewer, django_capture_on_commit_callbacks
):
    dataset = dataset_create(project=curated, user=curator, name="all")
    client = session(curator)
    created = client.post(f"/datasets/{dataset.pk}/versions/new/", {"note": "first"}, follow=True)
    assert b"Version 1 taken: 4 rows." in created.content
    again = client.post(f"/datasets/{dataset.pk}/versions/new/", follow=True)
    assert b"No changes since v1" in again.content
    review_edit(
        review=Review.objects.get(item__external_id="ext-1", reviewer=reviewer),
        user=reviewer,
        answers={"correct": True, "helpfulness": 4},
    )
    client.post(f"/datasets/{dataset.pk}/versions/new/")
    page = client.get(f"/datasets/{dataset.pk}/")
    assert page.content.count(b"data-version=") == 2 and b"Compare versions" in page.content
    fragment = client.get(f"/datasets/{dataset.pk}/?old=1&new=2", headers={"hx-request": "true"})
    assert fragment.content.lstrip().startswith(b'<div id="dataset-diff"')
    assert b"data-changed>1<" in fragment.content
    with django_capture_on_commit_callbacks() as callbacks:
        started = client.post(
            f"/datasets/{dataset.pk}/exports/",
            {"version": "2", "format": "jsonl", "shape": "mlflow"},
            headers={"hx-request": "true"},
        )
    assert len(callbacks) == 1  # the task is enqueued once the row is committed
    job = ExportJob.objects.get()
    assert b'hx-trigger="every 1s"' in started.content and job.version.number == 2
    ExportJob.objects.filter(pk=job.pk).update(status="done", rows_done=4, rows_total=4)
    status = client.get(f"/exports/{job.pk}/status/", headers={"hx-request": "true"})
    assert status.status_code == 286 and b"data-download" in status.content  # htmx stops polling


def test_reviewers_cannot_poll_or_start_exports(curated, curator, reviewer):
    dataset = dataset_create(project=curated, user=curator, name="all")
    dataset_version_create(dataset=dataset, user=curator)
    assert session(reviewer).get(f"/datasets/{dataset.pk}/").status_code == 403
    assert session(reviewer).post(f"/datasets/{dataset.pk}/exports/", {"version": "1"}).status_code == 403
    assert session(reviewer).post(f"/datasets/{dataset.pk}/versions/new/").status_code == 403
