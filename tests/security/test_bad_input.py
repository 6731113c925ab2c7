"""Bad input gets a 4xx naming the field, never a 500 (issue 11 §2).

NUL characters (PostgreSQL cannot store them), bodies that are not UTF-8, JSON nested 100,000
levels deep, integers past an integer column, and booleans where a number belongs. The explicit
cases pin the 400's field path; the fuzz test sends each payload to every write operation of the
generated OpenAPI schema and asserts that none answers 5xx.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from drf_spectacular.generators import SchemaGenerator

from reviewapp.jsoninput import MAX_DEPTH
from reviewapp.models import Item, Review
from reviewapp.services.queue import queue_next
from tests.factories import item_row
from tests.security.seed import Seeded, seed_project

pytestmark = pytest.mark.django_db
ITEMS = "/api/v1/projects/support/items/"
NUL = "a\u0000b"
DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.fixture
def seeded(db: Any) -> Seeded:
    return seed_project()


def api(seeded: Seeded) -> Client:
    return Client(headers={"authorization": f"Bearer {seeded.token}"})


def signed_in(seeded: Seeded) -> Client:
    """The admin in a browser session: environments and tokens take no API token (the `manage` capability)."""
    client = Client()
    client.force_login(seeded.admin)
    return client


def post_json(client: Client, url: str, body: Any, method: str = "post") -> Any:
    data = body if isinstance(body, bytes) else json.dumps(body)
    return getattr(client, method)(url, data, content_type="application/json")


def first_error(response: Any) -> dict[str, Any]:
    assert response.status_code == 400, (response.status_code, response.content[:300])
    body = response.json()
    assert body["detail"] and body["errors"], body
    return body["errors"][0]


# --- ingest: the 400 names the row and the field; nothing is written ---------------------------

INGEST_NUL_CASES = [
    ({"request": NUL}, "request"),
    ({"response": NUL}, "response"),
    ({"external_id": NUL}, "external_id"),
    ({"metadata": {"team": NUL}}, "metadata.team"),
    ({"metadata": {NUL: "x"}}, "metadata.a\\u0000b"),
    ({"retrieved_context": [{"doc_uri": "d", "content": NUL}]}, "retrieved_context[0].content"),
    ({"request": {"messages": [{"role": "user", "content": NUL}]}}, "request.messages[0].content"),
]


@pytest.mark.parametrize(("override", "field"), INGEST_NUL_CASES)
def test_ingest_refuses_nul_naming_row_and_field(seeded, override, field):
    before = Item.objects.count()
    response = post_json(api(seeded), ITEMS, [item_row(10), item_row(11, **override)])
    error = first_error(response)
    assert (error["index"], error["field"]) == (1, field) and "NUL" in error["message"]
    assert Item.objects.count() == before


def test_ingest_ndjson_nul_names_the_line(seeded):
    lines = f"{json.dumps(item_row(10))}\n\n{json.dumps(item_row(11, response=NUL))}\n"
    response = api(seeded).post(ITEMS, lines, content_type="application/x-ndjson")
    error = first_error(response)
    assert (error["index"], error["field"]) == (2, "response")


def test_ingest_refuses_invalid_utf8(seeded):
    body = json.dumps(item_row(10)).encode().replace(b"How", b"H\xffw")
    error = first_error(post_json(api(seeded), ITEMS, body))
    assert "not valid UTF-8" in error["message"]


def test_ingest_refuses_deep_nesting(seeded):
    error = first_error(post_json(api(seeded), ITEMS, DEEP))
    assert f"Nested more than {MAX_DEPTH} levels" in error["message"]
    nested: Any = "x"
    for _ in range(MAX_DEPTH + 1):
        nested = {"k": nested}
    error = first_error(post_json(api(seeded), ITEMS, item_row(10, metadata=nested)))
    assert error["field"].startswith("metadata.k.k")  # the body as a whole is too deep: no row index


@pytest.mark.parametrize("priority", [2**31, -(2**31) - 1, 10**40])
def test_ingest_priority_outside_an_integer_column(seeded, priority):
    error = first_error(post_json(api(seeded), ITEMS, item_row(10, priority=priority)))
    assert (error["index"], error["field"]) == (0, "priority")
    assert post_json(api(seeded), ITEMS, item_row(10, priority=2**31 - 1)).status_code == 201


# --- every other JSON endpoint: the parser names the JSON path ----------------------------------


def test_review_free_text_with_nul(seeded):
    lease = queue_next(project=seeded.project, user=seeded.admin)
    assert lease is not None
    body = {"assignment": lease.pk, "answers": {"correct": True, "helpfulness": 4, "issue": NUL}, "comment": "ok"}
    error = first_error(post_json(api(seeded), "/api/v1/projects/support/reviews/", body))
    assert error["field"] == "answers.issue"
    assert not Review.objects.exists()


def test_gold_answers_with_nul(seeded):
    body = {"item": seeded.ids["items"], "answers": {"correct": True, "note": NUL}}
    assert first_error(post_json(api(seeded), "/api/v1/projects/support/gold/", body))["field"] == "answers.note"


def test_dataset_filter_with_nul(seeded):
    body = {"name": "x", "filter": {"model_version": NUL}}
    error = first_error(post_json(api(seeded), "/api/v1/projects/support/datasets/", body))
    assert error["field"] == "filter.model_version"


def test_run_dataset_metadata_with_nul(seeded):
    body = {"project": "support", "suite": 1, "dataset": {"metadata": {"channel": NUL}}}
    assert first_error(post_json(api(seeded), "/api/v1/runs/", body))["field"] == "dataset.metadata.channel"


def test_malformed_json_and_bad_utf8_carry_the_errors_list(seeded):
    url = f"/api/v1/projects/support/groups/{seeded.ids['groups']}/"
    assert "Invalid JSON" in first_error(post_json(api(seeded), url, b'{"name": ', method="patch"))["message"]
    assert "UTF-8" in first_error(post_json(api(seeded), url, b'{"name": "\xff"}', method="patch"))["message"]
    assert "Nested" in first_error(post_json(api(seeded), url, DEEP, method="patch"))["message"]


def test_body_size_limit_still_holds_for_parsed_bodies(seeded, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    url = f"/api/v1/projects/support/groups/{seeded.ids['groups']}/"
    response = post_json(api(seeded), url, {"name": "x" * 4096}, method="patch")
    assert response.status_code in (400, 413)


def test_bulk_priority_outside_an_integer_column(seeded):
    response = post_json(api(seeded), "/api/v1/projects/support/assignments/", {"priority": 2**31})
    first_error(response)
    assert "priority" in [e["field"] for e in response.json()["errors"]]


def test_queue_settings_refuse_a_boolean_rate(seeded):
    url = "/api/v1/projects/support/queue-settings/"
    assert first_error(post_json(api(seeded), url, {"gold_rate": False}, method="patch"))["field"] == "gold_rate"
    assert post_json(api(seeded), url, {"gold_rate": 0.1}, method="patch").status_code == 200


def test_api_takes_json_only(seeded):
    response = api(seeded).post("/api/v1/projects/support/delivery-targets/", {"kind": "delta", "target": "x"})
    assert response.status_code == 415  # the test client sends multipart here


def test_query_string_with_nul(seeded):
    response = api(seeded).get(ITEMS, {"source": NUL})
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "source"


# --- HTML forms ----------------------------------------------------------------------------------


def test_review_page_form_with_nul(seeded):
    client = Client()
    client.force_login(seeded.admin)
    client.get(reverse("review-page", args=["support"]))
    lease = queue_next(project=seeded.project, user=seeded.admin)
    assert lease is not None
    url = reverse("review-submit", args=["support", lease.pk])
    response = client.post(url, {"answers.correct": "true", "answers.helpfulness": "4", "comment": NUL})
    assert response.status_code == 400 and b"comment" in response.content
    assert not Review.objects.exists()
    assert client.get(reverse("review-page", args=["support"]), {"q": NUL}).status_code == 400


# --- the fuzz: every write operation of the schema ----------------------------------------------


def write_operations() -> list[tuple[str, str, dict[str, Any]]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    ops = []
    for path, methods in schema["paths"].items():
        for method, op in methods.items():
            if method in ("post", "put", "patch"):
                ops.append((path, method, op))
    return ops


def _properties(op: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    content = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
    ref = content.get("$ref")
    if ref:
        content = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return content.get("properties", {})


def payloads(props: dict[str, Any]) -> list[tuple[str, bytes]]:
    """Each bad body: NUL in every property, a NUL key, not UTF-8, too deep, malformed, huge integers."""
    names = list(props) or ["name"]
    huge = {n: 2**31 for n, p in props.items() if p.get("type") in ("integer", "number")}
    return [
        ("nul-values", json.dumps(dict.fromkeys(names, NUL)).encode()),
        ("nul-key", json.dumps({NUL: "x"}).encode()),
        ("not-utf8", b'{"name": "\xff\xfe"}'),
        ("deep", DEEP),
        ("malformed", b'{"name": '),
        ("int32-overflow", json.dumps(huge or {"x": 2**31}).encode()),
        ("huge-int", json.dumps(dict.fromkeys(huge or ["x"], 10**40)).encode()),
    ]


@pytest.mark.slow  # every write operation of the schema, seven bodies each
def test_no_write_endpoint_answers_5xx_to_bad_input(seeded):
    schema = SchemaGenerator().get_schema(request=None, public=True)
    client = api(seeded)
    session = signed_in(seeded)
    ops = write_operations()
    assert len(ops) >= 40, "the schema lost its write operations"
    failures: list[str] = []
    refused = 0
    for path, method, op in ops:
        url = seeded.fill(path)
        for name, body in payloads(_properties(op, schema)):
            response = getattr(client, method)(url, body, content_type="application/json")
            if response.status_code == 403:  # no token scope grants it (tokens/, environments): sign in
                response = getattr(session, method)(url, body, content_type="application/json")
            if response.status_code >= 500:
                failures.append(f"{method.upper()} {url} [{name}] -> {response.status_code}")
            elif response.status_code == 400 and name != "int32-overflow":
                refused += 1
                if "errors" not in response.json():
                    failures.append(f"{method.upper()} {url} [{name}] -> 400 without errors")
    assert not failures, "\n".join(failures)
    assert refused >= len(ops) * 3, "too few bodies were read at all: are the path params right?"


# --- the schema tells the truth ------------------------------------------------------------------


def test_schema_documents_what_the_api_does(db):
    schema = SchemaGenerator().get_schema(request=None, public=True)
    paths = schema["paths"]

    def ok(path: str, method: str = "get") -> dict[str, Any]:
        return paths[path][method]["responses"]["200"]["content"]

    for path in ("/api/v1/projects/{slug}/environments/", "/api/v1/projects/{slug}/promotions/"):
        ref = ok(path)["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
        assert schema["components"]["schemas"][ref]["properties"]["results"]["type"] == "array"
    download = ok("/api/v1/exports/{id}/download/")
    assert {"application/x-ndjson", "text/csv", "application/vnd.apache.parquet", "application/gzip"} <= set(download)
    for path, methods in paths.items():
        for method, op in methods.items():
            bad = op["responses"]["400"]["content"]["application/json"]["schema"]["$ref"]
            assert bad.endswith("/ValidationError"), (method, path)
            media = set(op.get("requestBody", {}).get("content", {}))
            allowed = {"application/json"}
            if path.endswith("/items/"):
                allowed.add("application/x-ndjson")
            if path.endswith("/schema/"):  # schemas as code: JSON or YAML
                allowed.add("application/yaml")
            assert media <= allowed, (method, path, media)


@pytest.mark.parametrize(
    "body",
    [
        {"required_approvals": 40_000},
        {"required_approvals": 2**31},
        {"ready_timeout_seconds": 2**31},
        {"health_check_queries": 2**31},
        {"canary_stages": [10, 2**31]},
        {"local_port": 2**31},
    ],
)
def test_environment_integers_outside_their_columns(seeded, body):
    response = post_json(signed_in(seeded), "/api/v1/projects/support/environments/staging/", body, method="patch")
    assert first_error(response)["field"].startswith(next(iter(body)))
