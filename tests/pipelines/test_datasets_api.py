"""The datasets REST API: CRUD, versions, diff, rows, streamed exports (ETag, gzip, filters), permissions."""

from __future__ import annotations

import csv
import gzip
import io
import json
from typing import Any

import pyarrow.parquet as pq
import pytest
from django.http import StreamingHttpResponse
from django.test import Client

from pipelines.datasets.versions import dataset_create, dataset_version_create
from pipelines.models import Dataset, DatasetVersion
from reviewapp.models import ApiToken, Membership
from reviewapp.services.tokens import api_token_create, api_token_revoke
from tests.factories import ProjectFactory, member, standard_questions
from tests.pipelines.datasets_helpers import EXPECTED_0, bearer, build_curated, session

pytestmark = pytest.mark.django_db


@pytest.fixture
def curated(project, reviewer, reviewer2, curator):  # type: ignore[no-untyped-def]
    return build_curated(project, reviewer, reviewer2, curator)


@pytest.fixture
def version(curated, curator):  # type: ignore[no-untyped-def]
    dataset = dataset_create(project=curated, user=curator, name="all")
    return dataset_version_create(dataset=dataset, user=curator)


def export_url(version: DatasetVersion, **params: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"/api/v1/datasets/{version.dataset_id}/versions/{version.number}/export/?{query}"


def body(response: Any) -> bytes:
    assert isinstance(response, StreamingHttpResponse), type(response)
    return b"".join(response.streaming_content)


def fields(response: Any) -> list[str]:
    return [e["field"] for e in response.json()["errors"]]


# --- datasets and versions ------------------------------------------------------------------------


def test_a_curator_creates_a_dataset_and_versions_over_the_api(curated, curator):
    client = bearer(curator, "curate", "export")
    created = client.post(
        "/api/v1/projects/support/datasets/",
        {"name": "failing", "filter": {"answers": {"correct": "fail"}}},
        content_type="application/json",
    )
    assert created.status_code == 201, created.json()
    pk = created.json()["id"]
    assert created.json()["filter"] == {"curated_only": True, "answers": {"correct": [False]}}
    v1 = client.post(f"/api/v1/datasets/{pk}/versions/", {"note": "first"}, content_type="application/json")
    assert v1.status_code == 201 and v1.json()["row_count"] == 1 and v1.json()["number"] == 1
    again = client.post(f"/api/v1/datasets/{pk}/versions/", {}, content_type="application/json")
    assert again.status_code == 409 and again.json()["code"] == "unchanged"
    patched = client.patch(
        f"/api/v1/datasets/{pk}/", {"filter": {"model_version": "1"}}, content_type="application/json"
    )
    assert patched.status_code == 200
    v2 = client.post(f"/api/v1/datasets/{pk}/versions/", {}, content_type="application/json")
    assert v2.json()["number"] == 2 and v2.json()["row_count"] == 3
    listing = client.get("/api/v1/projects/support/datasets/").json()
    assert [(d["name"], d["versions"], d["latest_version"]) for d in listing] == [("failing", 2, 2)]
    assert [v["number"] for v in client.get(f"/api/v1/datasets/{pk}/versions/").json()] == [2, 1]
    assert client.get(f"/api/v1/datasets/{pk}/versions/1/").json()["filter"]["answers"] == {"correct": [False]}
    diff = client.get(f"/api/v1/datasets/{pk}/versions/2/diff/?against=1").json()
    assert diff["counts"] == {"added": 2, "removed": 0, "changed": 0}
    assert client.get(f"/api/v1/datasets/{pk}/versions/2/diff/?against=x").json()["errors"][0]["field"] == "against"
    assert client.get(f"/api/v1/datasets/{pk}/versions/2/diff/?against=7").status_code == 404


def test_bad_dataset_input_names_the_field(curated, curator):
    client = session(curator)
    response = client.post(
        "/api/v1/projects/support/datasets/",
        {"name": "x", "filter": {"gold": "maybe", "colour": 1}},
        content_type="application/json",
    )
    assert response.status_code == 400 and set(fields(response)) == {"filter.gold", "filter.colour"}
    assert (
        client.post("/api/v1/projects/support/datasets/", {}, content_type="application/json").json()["errors"][0][
            "field"
        ]
        == "name"
    )


def test_rows_are_listed_by_cursor(version, curator):
    client = bearer(curator, "export")
    url = f"/api/v1/datasets/{version.dataset_id}/versions/1/rows/?page_size=3"
    first = client.get(url).json()
    assert [r["position"] for r in first["results"]] == [0, 1, 2]
    assert first["results"][0]["data"]["external_id"] == "ext-0"
    second = client.get(first["next"]).json()
    assert [r["data"]["external_id"] for r in second["results"]] == ["ext-3"] and second["next"] is None


# --- streamed export --------------------------------------------------------------------------------


def test_a_version_exports_as_streamed_jsonl_with_a_strong_etag(version, engineer):
    client = bearer(engineer, "export")
    response = client.get(export_url(version))
    assert response.status_code == 200 and response["Content-Type"] == "application/x-ndjson"
    assert response["Content-Disposition"] == 'attachment; filename="support-all-v1-mlflow.jsonl"'
    rows = [json.loads(line) for line in body(response).splitlines()]
    assert [r["provenance"]["external_id"] for r in rows] == ["ext-0", "ext-1", "ext-2", "ext-3"]
    assert rows[0]["expectations"]["expected_response"] == EXPECTED_0
    etag = response["ETag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    not_modified = client.get(export_url(version), headers={"if-none-match": etag})
    assert not_modified.status_code == 304 and not_modified["ETag"] == etag
    other = client.get(export_url(version, shape="sft"), headers={"if-none-match": etag})
    assert other.status_code == 200 and other["ETag"] != etag
    first = json.loads(body(other).splitlines()[0])
    assert first["messages"][-1]["content"] == EXPECTED_0


def test_csv_and_parquet_exports(version, engineer):
    client = bearer(engineer, "export")
    text = body(client.get(export_url(version, format="csv", shape="agent-eval"))).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["request_id"] for r in rows] == ["ext-0", "ext-1", "ext-2", "ext-3"]
    response = client.get(export_url(version, format="parquet", shape="mlflow"))
    assert response["Content-Type"] == "application/vnd.apache.parquet"
    table = pq.read_table(io.BytesIO(body(response)))
    assert table.num_rows == 4 and table.column_names[:2] == ["inputs", "outputs"]


def test_gzip_when_asked_or_accepted(version, engineer):
    client = bearer(engineer, "export")
    plain = body(client.get(export_url(version, compression="none"), headers={"accept-encoding": "gzip"}))
    asked = client.get(export_url(version, compression="gzip"))
    assert asked["Content-Encoding"] == "gzip" and gzip.decompress(body(asked)) == plain
    accepted = client.get(export_url(version), headers={"accept-encoding": "gzip, deflate"})
    assert accepted["Content-Encoding"] == "gzip" and gzip.decompress(body(accepted)) == plain
    assert asked["ETag"] == accepted["ETag"] != client.get(export_url(version))["ETag"]


@pytest.mark.parametrize(
    ("params", "field"),
    [({"format": "xlsx"}, "format"), ({"shape": "alpaca"}, "shape"), ({"compression": "br"}, "compression")],
)
def test_bad_export_parameters_are_400_naming_them(version, engineer, params, field):
    response = bearer(engineer, "export").get(export_url(version, **params))
    assert response.status_code == 400 and fields(response) == [field]


def test_live_export_with_filters(curated, engineer):
    client = bearer(engineer, "export")
    url = "/api/v1/projects/support/curated/export/"
    response = client.get(url + "?shape=agent-eval&answers.correct=pass&model_version=1")
    assert response["Cache-Control"] == "no-store" and "ETag" not in response
    assert [json.loads(line)["request_id"] for line in body(response).splitlines()] == ["ext-1", "ext-2"]
    many = client.get(url + "?shape=agent-eval&answers.helpfulness=2&answers.helpfulness=5&tags=billing,faq")
    assert [json.loads(line)["request_id"] for line in body(many).splitlines()] == ["ext-1"]
    gold = client.get(url + "?format=csv&gold=false&metadata.n=2")
    (only,) = csv.DictReader(io.StringIO(body(gold).decode()))
    assert json.loads(only["provenance"])["external_id"] == "ext-2"
    for query, field in [
        ("answers.nope=1", "answers.nope"),
        ("gold=perhaps", "gold"),
        ("created_from=yesterday", "created_from"),
        ("colour=red", "colour"),
        ("format=xml", "format"),
    ]:
        bad = client.get(f"{url}?{query}")
        assert bad.status_code == 400 and fields(bad) == [field], (query, bad.json())


# --- permissions ------------------------------------------------------------------------------------


def test_reviewers_may_not_export_and_outsiders_do_not_see_it(version, reviewer, outsider):
    assert session(reviewer).get(export_url(version)).status_code == 403
    assert session(reviewer).get("/api/v1/projects/support/curated/export/").status_code == 403
    assert session(outsider).get(export_url(version)).status_code == 404
    assert session(outsider).get(f"/api/v1/datasets/{version.dataset_id}/").status_code == 404
    assert Client().get(export_url(version)).status_code in (401, 403)


def test_tokens_need_the_export_scope_and_the_right_project(version, engineer, curator):
    assert bearer(engineer, "review").get(export_url(version)).status_code == 403
    other = ProjectFactory(slug="other")
    standard_questions(other)
    member(other, "engineer", username="eddie")
    pinned_elsewhere = bearer(engineer, "export", project=other)
    assert pinned_elsewhere.get(export_url(version)).status_code == 404
    assert pinned_elsewhere.get("/api/v1/projects/support/curated/export/").status_code == 404
    assert bearer(engineer, "export", project=version.dataset.project).get(export_url(version)).status_code == 200
    token, raw = api_token_create(user=engineer, name="gone", scopes=["export"])
    api_token_revoke(token=ApiToken.objects.get(pk=token.pk), user=engineer)
    revoked = Client(headers={"authorization": f"Bearer {raw}"})
    assert revoked.get(export_url(version)).status_code == 401
    # An engineer may export but not curate, even with a curate token made while an admin.
    Membership.objects.filter(project=version.dataset.project, user=engineer).update(role="admin")
    engineer_client = bearer(engineer, "export", "curate")
    Membership.objects.filter(project=version.dataset.project, user=engineer).update(role="engineer")
    assert engineer_client.post(f"/api/v1/datasets/{version.dataset_id}/versions/", {}).status_code == 403
    assert bearer(curator, "export").post(f"/api/v1/datasets/{version.dataset_id}/versions/", {}).status_code == 403
    assert Dataset.objects.count() == 1 and DatasetVersion.objects.count() == 1


def test_the_schema_lists_the_dataset_endpoints(curated, curator):
    schema = session(curator).get("/api/schema/?format=json")
    assert schema.status_code == 200
    paths = json.loads(schema.content)["paths"]
    assert "/api/v1/datasets/{id}/versions/{number}/export/" in paths
    assert "/api/v1/projects/{slug}/curated/export/" in paths
