"""Dataset services: filters, the canonical row, immutable versions, numbering under concurrency, diffs."""

from __future__ import annotations

import hashlib
import threading
from typing import Any

import pytest
from django.db import connection

from pipelines.datasets.versions import (
    Unchanged,
    curated_rows,
    dataset_create,
    dataset_filter_validate,
    dataset_update,
    dataset_version_create,
    dataset_versions_diff,
    row_hash,
)
from pipelines.models import Dataset, DatasetRow, DatasetVersion
from reviewapp.errors import ValidationFailed
from reviewapp.models import AuditEvent, CuratedLabel, Item, Review
from reviewapp.services.gold import gold_answer_set
from reviewapp.services.reviews import review_edit
from tests.pipelines.datasets_helpers import EXPECTED_0, EXPECTED_2, build_curated

pytestmark = pytest.mark.django_db


@pytest.fixture
def curated(project, reviewer, reviewer2, curator):  # type: ignore[no-untyped-def]
    return build_curated(project, reviewer, reviewer2, curator)


def ext_ids(rows: list[dict[str, Any]]) -> list[str]:
    return [r["external_id"] for r in rows]


def live(project: Any, **flt: Any) -> list[dict[str, Any]]:
    return list(curated_rows(project=project, filter=dataset_filter_validate(project=project, filter=flt)))


# --- filters -----------------------------------------------------------------------------------


def test_every_curated_item_comes_in_item_order(curated):
    assert ext_ids(live(curated)) == ["ext-0", "ext-1", "ext-2", "ext-3"]


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ({"answers": {"correct": "pass"}}, ["ext-1", "ext-2", "ext-3"]),
        ({"answers": {"correct": False}}, ["ext-0"]),
        ({"answers": {"helpfulness": [4, 5]}}, ["ext-1", "ext-2", "ext-3"]),
        ({"model_version": "2"}, ["ext-3"]),
        ({"source": "web"}, ["ext-1"]),
        ({"method": "adjudicated"}, ["ext-2"]),
        ({"method": "consensus", "model_version": "1"}, ["ext-0", "ext-1"]),
        ({"tags": ["billing"]}, ["ext-1", "ext-2"]),
        ({"tags": "faq"}, ["ext-1"]),
        ({"metadata": {"n": 2}}, ["ext-2"]),
        ({"created_from": "2000-01-01", "created_to": "2999-01-01"}, ["ext-0", "ext-1", "ext-2", "ext-3"]),
        ({"created_to": "2000-01-01T00:00:00+00:00"}, []),
    ],
)
def test_filters_narrow_the_rows(curated, flt, expected):
    assert ext_ids(live(curated, **flt)) == expected


def test_gold_filter(curated, curator):
    item = Item.objects.get(external_id="ext-1")
    gold_answer_set(project=curated, item=item, answers={"correct": True, "helpfulness": 5}, actor=curator)
    assert ext_ids(live(curated, gold=True)) == ["ext-1"]
    assert ext_ids(live(curated, gold=False)) == ["ext-0", "ext-2", "ext-3"]


@pytest.mark.parametrize(
    ("flt", "field"),
    [
        ({"colour": "red"}, "filter.colour"),
        ({"curated_only": False}, "filter.curated_only"),
        ({"answers": {"nope": 1}}, "filter.answers.nope"),
        ({"answers": {"correct": "maybe"}}, "filter.answers.correct"),
        ({"answers": []}, "filter.answers"),
        ({"gold": "yes"}, "filter.gold"),
        ({"method": "vote"}, "filter.method"),
        ({"created_from": "last week"}, "filter.created_from"),
        ({"created_from": "2026-02-01", "created_to": "2026-01-01"}, "filter.created_to"),
        ({"tags": [1]}, "filter.tags"),
        ({"metadata": {"a b": 1}}, "filter.metadata.a b"),
        ({"model_version": ""}, "filter.model_version"),
    ],
)
def test_bad_filters_name_the_key(curated, flt, field):
    with pytest.raises(ValidationFailed) as caught:
        dataset_filter_validate(project=curated, filter=flt)
    assert field in [e["field"] for e in caught.value.errors]


def test_the_stored_filter_is_normalised(curated):
    stored = dataset_filter_validate(
        project=curated, filter={"answers": {"correct": "fail"}, "created_from": "2026-01-02"}
    )
    assert stored == {"curated_only": True, "answers": {"correct": [False]}, "created_from": "2026-01-02"}


# --- the canonical row -------------------------------------------------------------------------


def test_the_canonical_row_of_a_consensus_label(curated, reviewer, reviewer2):
    row = live(curated)[0]
    item = Item.objects.get(external_id="ext-0")
    label = CuratedLabel.objects.get(item=item)
    reviews = sorted(Review.objects.filter(item=item).values_list("id", flat=True))
    assert row == {
        "row_id": f"item-{item.pk}",
        "item_id": item.pk,
        "external_id": "ext-0",
        "trace_id": "tr-0",
        "request_id": "ext-0",
        "model_version": "1",
        "source": "test",
        "metadata": {"n": 0, "tags": ["account"], "guidelines": ["Mention Security."]},
        "request": "How do I reset my password? (0)",
        "response": "Open **Settings** and choose *Reset password*. (0)",
        "retrieved_context": [
            {"content": "Passwords are reset from Settings.", "doc_uri": "docs/account.md"},
            {"content": "Invoices are sent monthly.", "doc_uri": "docs/billing.md"},
        ],
        "expected_response": EXPECTED_0,
        "expected_facts": [],
        "guidelines": ["Mention Security."],
        "feedback": {"correct": False, "helpfulness": 2, "issue": "incomplete", "answer": EXPECTED_0},
        "provenance": {
            "method": "consensus",
            "decided_by": None,
            "review_ids": reviews,
            "reviewers": ["rita", "rob"],
            "agreement": {
                "agreed": True,
                "questions": {
                    "correct": {"agreed": True, "pairwise_agreement": 1.0},
                    "helpfulness": {
                        "agreed": True,
                        "pairwise_agreement": label.agreement["questions"]["helpfulness"]["pairwise_agreement"],
                    },
                    "issue": {"agreed": True, "pairwise_agreement": 1.0},
                    "answer": {"agreed": True, "pairwise_agreement": 1.0},
                },
            },
            "schema_version": label.schema_version,
            "label_version": 1,
        },
        "item_created_at": item.created_at.isoformat(),
        "curated_at": label.updated_at.isoformat(),
    }
    assert list(row["feedback"]) == ["correct", "helpfulness", "issue", "answer"]  # question order


def test_an_adjudicated_row_names_the_curator(curated, curator):
    row = live(curated, method="adjudicated")[0]
    assert row["provenance"]["method"] == "adjudicated" and row["provenance"]["decided_by"] == "cora"
    assert row["expected_response"] == EXPECTED_2
    assert row["expected_facts"] == ["emailed", "first of the month"]


def test_a_chat_request_becomes_its_messages(project, reviewer):
    from reviewapp.services.ingest import items_ingest
    from reviewapp.services.queue import queue_next
    from reviewapp.services.reviews import review_submit
    from tests.factories import item_row

    chat = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}]}
    items_ingest(project=project, rows=[item_row(9, request=chat)])
    lease = queue_next(project=project, user=reviewer)
    review_submit(assignment_id=lease.pk, user=reviewer, answers={"correct": True, "helpfulness": 3})
    (row,) = live(project)
    assert row["request"] == chat["messages"]


def test_rows_come_in_batches_without_a_query_per_row(curated, django_assert_max_num_queries):
    with django_assert_max_num_queries(6):  # questions, labels (+ items, curators), reviews + reviewers
        rows = list(curated_rows(project=curated, batch_size=2))
    assert len(rows) == 4


def test_since_selects_labels_updated_after_it(curated, reviewer):
    label = CuratedLabel.objects.get(item__external_id="ext-1")
    cutoff = CuratedLabel.objects.order_by("-updated_at").values_list("updated_at", flat=True).first()
    assert list(curated_rows(project=curated, since=cutoff)) == []
    review = Review.objects.get(item=label.item, reviewer=reviewer)
    review_edit(review=review, user=reviewer, answers={"correct": True, "helpfulness": 4})
    assert ext_ids(list(curated_rows(project=curated, since=cutoff))) == ["ext-1"]


# --- versions ------------------------------------------------------------------------------------


def test_a_version_snapshots_the_rows_with_hashes_and_an_audit_event(curated, curator):
    dataset = dataset_create(project=curated, user=curator, name="failing", filter={"answers": {"correct": False}})
    version = dataset_version_create(dataset=dataset, user=curator, note="first")
    assert (version.number, version.row_count, version.created_by) == (1, 1, curator)
    assert version.question_keys == ["correct", "helpfulness", "issue", "answer"]
    assert version.filter == {"curated_only": True, "answers": {"correct": [False]}}
    (row,) = DatasetRow.objects.filter(version=version)
    assert (
        row.content_hash
        == row_hash(row.data)
        == hashlib.sha256(__import__("msgspec").json.Encoder(order="sorted").encode(row.data)).hexdigest()
    )
    assert version.content_hash == hashlib.sha256(f"{row.row_id}:{row.content_hash}\n".encode()).hexdigest()
    assert AuditEvent.objects.filter(action="dataset.version_create", target_id=str(version.pk), actor=curator).exists()
    assert AuditEvent.objects.filter(action="dataset.create", target_id=str(dataset.pk)).exists()


def test_a_version_does_not_change_when_labels_do(curated, curator, reviewer):
    dataset = dataset_create(project=curated, user=curator, name="all")
    v1 = dataset_version_create(dataset=dataset, user=curator)
    before = list(DatasetRow.objects.filter(version=v1).order_by("position").values_list("data", "content_hash"))
    review = Review.objects.get(item__external_id="ext-1", reviewer=reviewer)
    review_edit(review=review, user=reviewer, answers={"correct": True, "helpfulness": 4})
    v1.refresh_from_db()
    after = list(DatasetRow.objects.filter(version=v1).order_by("position").values_list("data", "content_hash"))
    assert after == before
    v2 = dataset_version_create(dataset=dataset, user=curator)
    assert v2.number == 2 and v2.content_hash != v1.content_hash


def test_an_unchanged_version_is_refused_unless_allowed(curated, curator):
    dataset = dataset_create(project=curated, user=curator, name="all")
    dataset_version_create(dataset=dataset, user=curator)
    with pytest.raises(Unchanged, match="No changes since v1"):
        dataset_version_create(dataset=dataset, user=curator)
    assert DatasetVersion.objects.filter(dataset=dataset).count() == 1
    assert DatasetRow.objects.count() == 4  # the refused snapshot left nothing behind
    again = dataset_version_create(dataset=dataset, user=curator, allow_unchanged=True)
    assert again.number == 2 and again.row_count == 4


def test_versions_keep_the_filter_they_were_taken_with(curated, curator):
    dataset = dataset_create(project=curated, user=curator, name="v2 only", filter={"model_version": "2"})
    v1 = dataset_version_create(dataset=dataset, user=curator)
    dataset_update(dataset=dataset, user=curator, filter={"model_version": "1"}, description="now v1")
    v2 = dataset_version_create(dataset=dataset, user=curator)
    assert v1.filter["model_version"] == "2" and v1.row_count == 1
    assert v2.filter["model_version"] == "1" and v2.row_count == 3
    assert Dataset.objects.get(pk=dataset.pk).description == "now v1"


def test_dataset_names_are_unique_per_project(curated, curator):
    dataset_create(project=curated, user=curator, name="all")
    with pytest.raises(ValidationFailed) as caught:
        dataset_create(project=curated, user=curator, name=" all ")
    assert caught.value.errors[0]["field"] == "name"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_creates_get_consecutive_numbers(curated, curator):
    dataset = dataset_create(project=curated, user=curator, name="all")
    results: list[Any] = []

    def create() -> None:
        try:
            results.append(dataset_version_create(dataset=dataset, user=curator, allow_unchanged=True).number)
        except Exception as exc:  # surfaced below
            results.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=create) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [1, 2]
    assert DatasetRow.objects.filter(version__dataset=dataset).count() == 8


# --- diff ----------------------------------------------------------------------------------------


def test_a_diff_lists_rows_added_removed_and_changed(curated, curator, reviewer):
    dataset = dataset_create(project=curated, user=curator, name="passing", filter={"answers": {"correct": True}})
    v1 = dataset_version_create(dataset=dataset, user=curator)  # ext-1, ext-2, ext-3
    # ext-1 now gets helpfulness 4 (changed); ext-3 drops out; ext-0 unchanged (still failing).
    review_edit(
        review=Review.objects.get(item__external_id="ext-1", reviewer=reviewer),
        user=reviewer,
        answers={"correct": True, "helpfulness": 4},
    )
    review_edit(
        review=Review.objects.get(item__external_id="ext-3", reviewer=reviewer),
        user=reviewer,
        answers={"correct": False, "helpfulness": 5},
    )
    dataset_update(dataset=dataset, user=curator, filter={"answers": {"helpfulness": [4, 5, 2]}})
    v2 = dataset_version_create(dataset=dataset, user=curator)  # ext-0, ext-1, ext-2 (ext-3 went to adjudication)
    ids = dict(Item.objects.values_list("external_id", "id"))
    diff = dataset_versions_diff(old=v1, new=v2)
    assert diff["counts"] == {"added": 1, "removed": 1, "changed": 1}
    assert diff["added"] == [{"row_id": f"item-{ids['ext-0']}", "item_id": ids["ext-0"]}]
    assert diff["removed"] == [{"row_id": f"item-{ids['ext-3']}", "item_id": ids["ext-3"]}]
    (changed,) = diff["changed"]
    assert changed["row_id"] == f"item-{ids['ext-1']}"
    assert "feedback" in changed["fields"] and "provenance" in changed["fields"]
    assert changed["feedback"] == ["helpfulness"]
    assert dataset_versions_diff(old=v1, new=v1)["counts"] == {"added": 0, "removed": 0, "changed": 0}
