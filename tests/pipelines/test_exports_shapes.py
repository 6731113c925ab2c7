"""Export shapes and formats: exact rows per shape, and JSONL / CSV / Parquet / gzip round trips."""

from __future__ import annotations

import csv
import gzip
import io
import json
from typing import Any

import pyarrow.parquet as pq
import pytest

from pipelines.datasets.exports import (
    PARQUET_ROW_GROUP,
    columns,
    export_stream,
    preference_pairs,
    shape_row,
    version_export_rows,
    version_rows,
)
from pipelines.datasets.versions import dataset_create, dataset_version_create
from reviewapp.models import Item, Review
from tests.pipelines.datasets_helpers import EXPECTED_0, EXPECTED_2, add_preference, build_curated

pytestmark = pytest.mark.django_db


@pytest.fixture
def version(project, reviewer, reviewer2, curator):  # type: ignore[no-untyped-def]
    build_curated(project, reviewer, reviewer2, curator)
    dataset = dataset_create(project=project, user=curator, name="all")
    return dataset_version_create(dataset=dataset, user=curator)


def rows_by_ext(version: Any) -> dict[str, dict[str, Any]]:
    return {r["external_id"]: r for r in version_rows(version=version)}


def test_mlflow_shape(version):
    row = rows_by_ext(version)["ext-0"]
    item = Item.objects.get(external_id="ext-0")
    shaped = shape_row("mlflow", row)
    assert list(shaped) == ["inputs", "outputs", "expectations", "feedback", "source", "tags", "provenance"]
    assert shaped["inputs"] == {"request": "How do I reset my password? (0)"}
    assert shaped["outputs"] == "Open **Settings** and choose *Reset password*. (0)"
    assert shaped["expectations"] == {"expected_response": EXPECTED_0, "guidelines": ["Mention Security."]}
    assert shaped["feedback"] == {"correct": False, "helpfulness": 2, "issue": "incomplete", "answer": EXPECTED_0}
    assert shaped["source"] == {"trace": {"trace_id": "tr-0"}}
    assert shaped["tags"] == {
        "row_id": f"item-{item.pk}",
        "item_id": str(item.pk),
        "model_version": "1",
        "source": "test",
        "method": "consensus",
    }
    prov = shaped["provenance"]
    assert prov["item_id"] == item.pk and prov["trace_id"] == "tr-0" and prov["model_version"] == "1"
    assert prov["review_ids"] == sorted(Review.objects.filter(item=item).values_list("id", flat=True))
    assert prov["method"] == "consensus" and prov["agreement"]["agreed"] is True


def test_mlflow_shape_of_a_chat_without_a_trace_names_the_human():
    row = {
        "row_id": "item-1",
        "item_id": 1,
        "request": [{"role": "user", "content": "Hi"}],
        "response": "Hello",
        "trace_id": "",
        "provenance": {"decided_by": None, "reviewers": ["rita", "rob"], "method": "consensus"},
    }
    shaped = shape_row("mlflow", row)
    assert shaped["inputs"] == {"messages": [{"role": "user", "content": "Hi"}]}
    assert shaped["source"] == {"human": {"user_name": "rita"}}
    assert shaped["expectations"] == {}


def test_agent_eval_shape(version):
    row = rows_by_ext(version)["ext-2"]
    shaped = shape_row("agent-eval", row)
    assert list(shaped) == [
        "request_id",
        "request",
        "response",
        "retrieved_context",
        "expected_response",
        "expected_facts",
        "guidelines",
        "feedback",
        "provenance",
    ]
    assert shaped["request_id"] == "ext-2"
    assert shaped["request"] == "How do I reset my password? (2)"
    assert shaped["retrieved_context"][0] == {
        "content": "Passwords are reset from Settings.",
        "doc_uri": "docs/account.md",
    }
    assert shaped["expected_response"] == EXPECTED_2
    assert shaped["expected_facts"] == ["emailed", "first of the month"]
    assert shaped["guidelines"] == []
    assert shaped["feedback"] == {"correct": True, "helpfulness": 4, "answer": EXPECTED_2}
    assert shaped["provenance"]["method"] == "adjudicated" and shaped["provenance"]["decided_by"] == "cora"


def test_sft_shape_keeps_only_rows_with_an_expected_response(version):
    rows = rows_by_ext(version)
    assert shape_row("sft", rows["ext-1"]) is None
    shaped = shape_row("sft", rows["ext-0"])
    assert shaped["messages"] == [
        {"role": "user", "content": "How do I reset my password? (0)"},
        {"role": "assistant", "content": EXPECTED_0},
    ]
    assert shaped["provenance"]["external_id"] == "ext-0"
    chat = {**rows["ext-0"], "request": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]}
    assert shape_row("sft", chat)["messages"][0] == {"role": "system", "content": "Be brief."}
    assert len(shape_row("sft", chat)["messages"]) == 3


def test_preference_shape_from_corrections_and_pairwise(version, project, reviewer):
    rows = rows_by_ext(version)
    correction = shape_row("preference", rows["ext-0"])
    assert correction == {
        "prompt": "How do I reset my password? (0)",
        "chosen": EXPECTED_0,
        "rejected": "Open **Settings** and choose *Reset password*. (0)",
        "kind": "correction",
        "chosen_model_version": "",
        "rejected_model_version": "1",
        "provenance": correction["provenance"],
    }
    assert shape_row("preference", rows["ext-1"]) is None  # no correction
    # A pairwise judgement made after the version was taken is not part of it.
    preference = add_preference(project, reviewer)
    assert list(preference_pairs(project=project, version=version)) == []
    (pair,) = preference_pairs(project=project)
    v1, v2 = Item.objects.get(external_id="ext-0"), Item.objects.get(external_id="ext-3")
    assert pair["prompt"] == v1.request and pair["chosen"] == v2.response and pair["rejected"] == v1.response
    assert (pair["chosen_model_version"], pair["rejected_model_version"]) == ("2", "1")
    assert pair["provenance"]["preference_id"] == preference.pk
    assert pair["provenance"]["item_ids"] == [v2.pk, v1.pk] and pair["provenance"]["reviewers"] == ["rita"]


def test_a_version_taken_after_a_preference_includes_it(project, reviewer, reviewer2, curator):
    build_curated(project, reviewer, reviewer2, curator)
    add_preference(project, reviewer)
    dataset = dataset_create(project=project, user=curator, name="all")
    version = dataset_version_create(dataset=dataset, user=curator)
    rows = list(version_export_rows(version=version, shape="preference"))
    assert [r["kind"] for r in rows] == ["correction", "correction", "pairwise"]  # ext-0, ext-2, the pair


def test_unknown_shape():
    with pytest.raises(ValueError, match="unknown shape"):
        shape_row("alpaca", {})


# --- formats ---------------------------------------------------------------------------------------


def export_bytes(version: Any, shape: str, fmt: str, compression: str = "") -> bytes:
    rows = version_export_rows(version=version, shape=shape)
    return b"".join(
        export_stream(rows, fmt=fmt, shape=shape, question_keys=version.question_keys, compression=compression)
    )


@pytest.mark.parametrize("shape", ["mlflow", "agent-eval", "sft", "preference"])
def test_jsonl_round_trip(version, shape):
    expected = [r for r in (shape_row(shape, row) for row in version_rows(version=version)) if r is not None]
    lines = export_bytes(version, shape, "jsonl").decode().splitlines()
    assert [json.loads(line) for line in lines] == expected


def test_gzip_round_trip(version):
    plain = export_bytes(version, "agent-eval", "jsonl")
    packed = export_bytes(version, "agent-eval", "jsonl", compression="gzip")
    assert packed[:2] == b"\x1f\x8b" and gzip.decompress(packed) == plain
    assert export_bytes(version, "agent-eval", "jsonl", compression="gzip") == packed  # deterministic bytes


def test_csv_round_trip_has_fixed_then_feedback_columns(version):
    text = export_bytes(version, "agent-eval", "csv").decode()
    reader = csv.DictReader(io.StringIO(text))
    assert reader.fieldnames == [
        "request_id",
        "request",
        "response",
        "retrieved_context",
        "expected_response",
        "expected_facts",
        "guidelines",
        "feedback.correct",
        "feedback.helpfulness",
        "feedback.issue",
        "feedback.answer",
        "provenance",
    ]
    rows = list(reader)
    assert [r["request_id"] for r in rows] == ["ext-0", "ext-1", "ext-2", "ext-3"]
    first = rows[0]
    assert first["feedback.correct"] == "false" and first["feedback.helpfulness"] == "2"
    assert first["feedback.issue"] == "incomplete" and first["feedback.answer"] == EXPECTED_0
    assert json.loads(rows[2]["expected_facts"]) == ["emailed", "first of the month"]
    assert rows[1]["feedback.issue"] == ""  # not answered
    assert json.loads(first["retrieved_context"])[0]["doc_uri"] == "docs/account.md"
    assert json.loads(first["provenance"])["external_id"] == "ext-0"


def test_parquet_round_trip(version):
    table = pq.read_table(io.BytesIO(export_bytes(version, "agent-eval", "parquet")))
    assert table.column_names == [name for name, _ in columns("agent-eval", version.question_keys)]
    data = table.to_pylist()
    assert [r["request_id"] for r in data] == ["ext-0", "ext-1", "ext-2", "ext-3"]
    assert data[2]["expected_facts"] == ["emailed", "first of the month"]  # a real list column
    assert json.loads(data[0]["feedback.helpfulness"]) == 2 and data[0]["feedback.issue"] == "incomplete"
    assert str(table.schema.field("expected_facts").type).startswith("list<")


def test_parquet_streams_in_row_groups():
    rows = ({"messages": [{"role": "user", "content": f"q{i}"}], "provenance": {"i": i}} for i in range(25_000))
    chunks = list(export_stream(rows, fmt="parquet", shape="sft", question_keys=[]))
    assert len(chunks) >= 3  # a chunk per row group, not one blob at the end
    parquet = pq.ParquetFile(io.BytesIO(b"".join(chunks)))
    assert parquet.metadata.num_rows == 25_000
    assert parquet.metadata.num_row_groups == 3 and parquet.metadata.row_group(0).num_rows == PARQUET_ROW_GROUP
    assert json.loads(parquet.read().column("messages")[24_999].as_py()) == [{"role": "user", "content": "q24999"}]
