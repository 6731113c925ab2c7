"""Issue 10 §1 in datasets and exports: frozen rows whose expected response repeats the answer their
label fails are found by ``migrate`` (the versions say "needs a new version", rows untouched), and
the ``sft`` / ``preference`` exports never use a failed response as the assistant turn or chosen."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.management import call_command

from pipelines.datasets.versions import dataset_create, dataset_version_create
from pipelines.models import DatasetRow
from reviewapp.models import AuditEvent, CuratedLabel, Item, Review
from reviewapp.services.curation import curation_item_update
from reviewapp.services.pairwise import pairwise_next, pairwise_submit, pairwise_tasks_create
from tests.pipelines.datasets_helpers import bearer, build_curated, session

pytestmark = pytest.mark.django_db


def lines(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 200, getattr(response, "content", b"")
    body = b"".join(response.streaming_content).decode()
    return [json.loads(line) for line in body.splitlines() if line.strip()]


@pytest.fixture
def stale(project, reviewer, reviewer2, curator):  # type: ignore[no-untyped-def]
    """ext-0's reviewers failed it while "expecting" the model's own answer (as the prefilled page
    stored it); the consensus label copied it and version 1 froze it."""
    build_curated(project, reviewer, reviewer2, curator)
    ext0 = Item.objects.get(external_id="ext-0")
    for review in Review.objects.filter(item=ext0):
        review.answers = {**review.answers, "answer": ext0.response}
        review.save(update_fields=["answers"])
    curation_item_update(item=ext0)
    assert CuratedLabel.objects.get(item=ext0).expected_response == ext0.response
    dataset = dataset_create(project=project, user=curator, name="all")
    dataset_version_create(dataset=dataset, user=curator)
    return dataset


@pytest.mark.slow
def test_migrate_repairs_labels_and_says_which_versions_need_a_new_one(stale, curator):
    ext0 = Item.objects.get(external_id="ext-0")
    frozen = DatasetRow.objects.get(version__number=1, item_id=ext0.pk)
    frozen_data, frozen_hash = frozen.data, frozen.content_hash
    assert frozen_data["expected_response"] == ext0.response

    call_command("migrate", verbosity=0)

    label = CuratedLabel.objects.get(item=ext0)
    assert label.expected_response == "" and "answer" not in label.answers
    assert all("answer" not in r.answers for r in Review.objects.filter(item=ext0))
    assert AuditEvent.objects.filter(action="review.expectation_cleared").count() == 2
    # The frozen row is as it was; the version says it needs a new one.
    frozen.refresh_from_db()
    assert frozen.data == frozen_data and frozen.content_hash == frozen_hash
    event = AuditEvent.objects.get(action="dataset.version_expectations_checked")
    assert event.data["failed_expectation_rows"] == 1 and event.data["row_ids"] == [f"item-{ext0.pk}"]
    client = session(curator)
    html = client.get(f"/datasets/{stale.pk}/").content.decode()
    assert "needs a new version" in html and 'data-stale-rows="1"' in html
    (v1,) = client.get(f"/api/v1/datasets/{stale.pk}/versions/").json()
    assert v1["failed_expectation_rows"] == 1 and v1["needs_new_version"] is True
    # A new version from the corrected labels is clean; running the check again records nothing new.
    dataset_version_create(dataset=stale, user=curator)
    call_command("expectations_repair")
    versions = {v["number"]: v for v in client.get(f"/api/v1/datasets/{stale.pk}/versions/").json()}
    assert versions[1]["needs_new_version"] and not versions[2]["needs_new_version"]
    assert versions[2]["failed_expectation_rows"] == 0
    assert AuditEvent.objects.filter(action="dataset.version_expectations_checked").count() == 1
    new_row = DatasetRow.objects.get(version__number=2, item_id=ext0.pk)
    assert new_row.data["expected_response"] == ""
    assert "needs a new version" in client.get(f"/datasets/{stale.pk}/").content.decode()  # v1 still does


def test_sft_and_preference_exports_skip_a_frozen_failed_answer(stale, curator):
    ext0 = Item.objects.get(external_id="ext-0")
    client = bearer(curator, "export")
    url = f"/api/v1/datasets/{stale.pk}/versions/1/export/"
    sft = lines(client.get(url, {"shape": "sft", "format": "jsonl", "compression": "none"}))
    assert ext0.pk not in [row["provenance"]["item_id"] for row in sft]
    assert all(row["messages"][-1]["content"] != ext0.response for row in sft)
    assert len(sft) == 1  # ext-2, the curator's own correction
    preference = lines(client.get(url, {"shape": "preference", "format": "jsonl", "compression": "none"}))
    assert all(row["chosen"] != ext0.response for row in preference)
    assert [row["provenance"]["item_id"] for row in preference] == [Item.objects.get(external_id="ext-2").pk]


def test_a_pairwise_win_of_a_failed_answer_is_never_chosen(project, reviewer, reviewer2, curator):
    build_curated(project, reviewer, reviewer2, curator)
    pairwise_tasks_create(project=project, version_a="1", version_b="2")
    slot = pairwise_next(project=project, user=reviewer)
    assert slot is not None
    failed = Item.objects.get(external_id="ext-0")  # its curated label fails it
    assert CuratedLabel.objects.get(item=failed).answers["correct"] is False
    choice = "a" if slot.left_item_id == failed.pk else "b"
    pairwise_submit(slot_id=slot.pk, user=reviewer, lease_token=slot.lease_token, choice=choice, reason="less bad")
    client = bearer(curator, "export")
    live = lines(
        client.get(
            "/api/v1/projects/support/curated/export/",
            {"shape": "preference", "format": "jsonl", "compression": "none"},
        )
    )
    assert [row["kind"] for row in live] == ["correction", "correction"]  # the pair is left out
    assert all(row["chosen"] != failed.response for row in live)
    # A win of a passed answer is still exported.
    CuratedLabel.objects.filter(item=failed).update(answers={"correct": True, "helpfulness": 4})
    live = lines(
        client.get(
            "/api/v1/projects/support/curated/export/",
            {"shape": "preference", "format": "jsonl", "compression": "none"},
        )
    )
    assert "pairwise" in [row["kind"] for row in live]
