"""The sources REST API: CRUD, pull (202, one active per source), pulls list, 400 errors, permissions, audit, schema."""

from __future__ import annotations

import pytest

from pipelines.models import Source, SourcePull
from reviewapp.models import AuditEvent, Membership
from tests.factories import ProjectFactory
from tests.pipelines.datasets_helpers import bearer, session

pytestmark = pytest.mark.django_db

URL = "/api/v1/projects/support/sources/"
TRACES = {"name": "prod", "kind": "mlflow_traces", "settings": {"experiment": "support-bot"}}


def fields(response) -> list[str]:  # type: ignore[no-untyped-def]
    return [e["field"] for e in response.json()["errors"]]


def test_a_curator_creates_reads_changes_and_deletes_a_source(project, curator) -> None:
    client = session(curator)
    created = client.post(
        URL,
        {
            **TRACES,
            "rules": [{"kind": "thumbs_down", "max_per_day": 100}, {"kind": "percent", "percent": 5}],
            "interval_seconds": 60,
        },
        content_type="application/json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["rules"] == [
        {"kind": "thumbs_down", "max_per_day": 100, "label": "thumbs_down"},
        {"kind": "percent", "percent": 5.0, "label": "percent:5"},
    ]
    assert (body["kind"], body["interval_seconds"], body["enabled"], body["watermark"]) == (
        "mlflow_traces",
        60,
        True,
        {},
    )
    assert body["settings"] == {"experiment": "support-bot", "filter": "", "since": None}
    assert body["volume"] == {"total": 0, "last_hour": 0, "last_day": 0}
    detail = f"{URL}{body['id']}/"

    assert [s["name"] for s in client.get(URL).json()] == ["prod"]
    assert client.get(detail).json()["id"] == body["id"]

    changed = client.patch(detail, {"enabled": False, "rules": []}, content_type="application/json")
    assert changed.status_code == 200 and (changed.json()["enabled"], changed.json()["rules"]) == (False, [])

    assert client.delete(detail).status_code == 204
    assert not Source.objects.exists()
    actions = list(AuditEvent.objects.filter(target_type="source").order_by("id").values_list("action", flat=True))
    assert actions == ["source.create", "source.update", "source.delete"]


def test_bad_input_is_a_400_naming_every_field(project, curator) -> None:
    client = session(curator)
    bad = client.post(
        URL,
        {
            "name": "",
            "kind": "mlflow_traces",
            "settings": {"experiment": "", "colour": "red"},
            "rules": [{"kind": "percent", "percent": 500}, {"kind": "sometimes"}],
            "interval_seconds": 1,
        },
        content_type="application/json",
    )
    assert bad.status_code == 400
    assert set(fields(bad)) == {
        "name",
        "settings.experiment",
        "settings.colour",
        "rules[0].percent",
        "rules[1].kind",
        "interval_seconds",
    }
    assert client.post(URL, {"name": "x", "kind": "ftp"}, content_type="application/json").status_code == 400
    assert fields(client.post(URL, {**TRACES, "owner": "me"}, content_type="application/json")) == ["owner"]
    table = client.post(
        URL,
        {"name": "t", "kind": "delta_table", "settings": {"uri": "/data/t"}, "column_mapping": {"request": "q"}},
        content_type="application/json",
    )
    assert fields(table) == ["column_mapping.response"]
    assert fields(
        client.post(URL, {**TRACES, "column_mapping": {"request": "q"}}, content_type="application/json")
    ) == ["column_mapping"]
    client.post(URL, TRACES, content_type="application/json")
    assert fields(client.post(URL, TRACES, content_type="application/json")) == ["name"]  # one name per project
    source = Source.objects.get()
    assert fields(client.patch(f"{URL}{source.pk}/", {"kind": "rest"}, content_type="application/json")) == ["kind"]
    assert not AuditEvent.objects.filter(action="source.update").exists()


def test_pull_is_accepted_once_per_source_and_listed(project, engineer) -> None:
    client = bearer(engineer, "ingest")
    source_id = client.post(URL, TRACES, content_type="application/json").json()["id"]
    first = client.post(f"{URL}{source_id}/pull/")
    assert first.status_code == 202 and first.json()["status"] == "queued" and first.json()["trigger"] == "manual"
    again = client.post(f"{URL}{source_id}/pull/")
    assert again.status_code == 202 and again.json()["id"] == first.json()["id"]
    assert SourcePull.objects.count() == 1
    pulls = client.get(f"{URL}{source_id}/pulls/").json()
    assert [p["id"] for p in pulls["results"]] == [first.json()["id"]]
    assert AuditEvent.objects.filter(action="source.pull").count() == 1

    rest = client.post(URL, {"name": "web", "kind": "rest"}, content_type="application/json").json()
    refused = client.post(f"{URL}{rest['id']}/pull/")
    assert refused.status_code == 400 and "nothing to pull" in refused.json()["errors"][0]["message"]


def test_reviewers_outsiders_and_tokens_without_the_ingest_scope_are_refused(
    project, curator, reviewer, outsider
) -> None:
    source_id = session(curator).post(URL, TRACES, content_type="application/json").json()["id"]
    detail = f"{URL}{source_id}/"
    for client, expected in ((session(reviewer), 403), (session(outsider), 404), (bearer(curator, "export"), 403)):
        assert client.get(URL).status_code == expected
        assert client.get(detail).status_code == expected
        assert client.post(URL, {**TRACES, "name": "other"}, content_type="application/json").status_code == expected
        assert client.patch(detail, {"enabled": False}, content_type="application/json").status_code == expected
        assert client.post(f"{detail}pull/").status_code == expected
        assert client.delete(detail).status_code == expected
    assert not SourcePull.objects.exists() and Source.objects.get().enabled

    # A source of another project is not reachable through this project's path.
    other = ProjectFactory(slug="other")
    Membership.objects.create(project=other, user=curator, role="curator")
    assert session(curator).get(f"/api/v1/projects/other/sources/{source_id}/").status_code == 404


def test_the_schema_lists_the_sources_operations(project, curator) -> None:
    schema = session(curator).get("/api/schema/?format=json")
    assert schema.status_code == 200
    operations = {op["operationId"] for methods in schema.json()["paths"].values() for op in methods.values()}
    assert {
        "sources_list",
        "sources_create",
        "sources_retrieve",
        "sources_update",
        "sources_destroy",
        "sources_pull",
        "source_pulls_list",
    } <= operations
