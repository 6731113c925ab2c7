"""Schemas as code over REST (GET/PUT /api/v1/projects/{slug}/schema/) and from the command line."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.management import CommandError, call_command
from django.test import Client

from reviewapp.models import AuditEvent, Question, Review
from reviewapp.services.queue import queue_next
from reviewapp.services.reviews import review_submit
from reviewapp.services.tokens import api_token_create
from tests.factories import make_items

pytestmark = pytest.mark.django_db
URL = "/api/v1/projects/support/schema/"


def bearer(user: Any, *scopes: str) -> Client:
    _, raw = api_token_create(user=user, name="ci", scopes=list(scopes))
    return Client(headers={"authorization": f"Bearer {raw}"})


def keys(project: Any) -> list[str]:
    return list(Question.objects.filter(project=project).values_list("key", flat=True))


def test_json_round_trip_and_an_added_question(project, curator):
    client = bearer(curator, "curate")
    got = client.get(URL)
    assert got.status_code == 200 and got["content-type"] == "application/json"
    document = got.json()
    assert document["schema_version"] == 1
    same = client.put(URL, document, content_type="application/json")
    assert same.status_code == 200
    assert same.json()["changes"] == {
        "added": [],
        "removed": [],
        "changed": [],
        "reordered": False,
        "new_version": False,
    }
    document["questions"].append({"key": "notes", "title": "Notes", "kind": "text", "required": False})
    added = client.put(URL, document, content_type="application/json")
    assert added.status_code == 200
    assert added.json()["changes"]["added"] == ["notes"]
    assert keys(project) == ["correct", "helpfulness", "issue", "notes"]


def test_yaml_round_trip_by_accept_header_and_format_parameter(project, curator, reviewer):
    client = bearer(curator, "curate")
    by_accept = client.get(URL, headers={"accept": "application/yaml"})
    by_param = client.get(URL + "?format=yaml")
    assert by_accept["content-type"].startswith("application/yaml")
    assert by_accept.content == by_param.content
    text = by_accept.content.decode()
    assert text.startswith("project: support\n")
    document = yaml.safe_load(text)
    assert [q["key"] for q in document["questions"]] == ["correct", "helpfulness", "issue"]

    make_items(project, 1)
    lease = queue_next(project=project, user=reviewer)
    assert lease is not None
    review_submit(assignment_id=lease.pk, user=reviewer, answers={"correct": True, "helpfulness": 4})
    edited = text.replace("title: How helpful?", "title: How helpful is the answer?")
    put = client.put(URL + "?format=yaml", edited.encode(), content_type="application/yaml")
    assert put.status_code == 200, put.content
    assert put["content-type"].startswith("application/yaml")
    answer = yaml.safe_load(put.content)
    assert answer["schema_version"] == 2
    assert answer["changes"]["changed"] == ["helpfulness"] and answer["changes"]["new_version"]
    events = AuditEvent.objects.count()
    again = client.put(URL, edited.encode(), content_type="application/yaml")
    assert again.json()["changes"]["changed"] == [] and again.json()["schema_version"] == 2
    assert AuditEvent.objects.count() == events
    assert Review.objects.get().schema_version == 1


def test_permissions(project, reviewer, curator, outsider):
    assert bearer(reviewer, "review").get(URL).status_code == 200  # any member reads the schema
    document = bearer(curator, "curate").get(URL).json()
    assert bearer(reviewer, "review").put(URL, document, content_type="application/json").status_code == 403
    assert bearer(curator, "export").put(URL, document, content_type="application/json").status_code == 403
    client = Client()
    client.force_login(outsider)
    assert client.get(URL).status_code == 404
    assert Client().get(URL).status_code in (401, 403)
    session = Client()
    session.force_login(curator)
    assert session.put(URL, document, content_type="application/json").status_code == 200


def test_bad_documents_get_400_with_every_problem_and_write_nothing(project, curator):
    client = bearer(curator, "curate")
    document = client.get(URL).json()
    document["questions"][0]["kind"] = "stars"
    document["questions"].append({"key": "x y", "title": " ", "kind": "choice", "options": {"choices": ["a"]}})
    bad = client.put(URL, document, content_type="application/json")
    assert bad.status_code == 400
    assert {(e["index"], e["field"]) for e in bad.json()["errors"]} == {(0, "kind"), (3, "key"), (3, "title")}
    # YAML asked for, errors still in the documented JSON shape.
    broken = client.put(URL + "?format=yaml", b"questions: [\n  - key: a\n", content_type="application/yaml")
    assert broken.status_code == 400 and broken["content-type"] == "application/json"
    assert "Invalid YAML" in broken.json()["errors"][0]["message"]
    aliases = client.put(URL, b"a: &x [1]\nquestions: *x\n", content_type="application/yaml")
    assert aliases.status_code == 400 and "aliases" in aliases.json()["detail"]
    assert keys(project) == ["correct", "helpfulness", "issue"]
    assert not AuditEvent.objects.filter(action__startswith="question.").exclude(actor=None).exists()


def test_the_endpoint_is_in_the_openapi_schema(project, curator):
    client = Client()
    client.force_login(curator)
    schema = yaml.safe_load(client.get("/api/schema/").content)
    operation = schema["paths"]["/api/v1/projects/{slug}/schema/"]
    assert set(operation["put"]["requestBody"]["content"]) == {"application/json", "application/yaml"}
    assert set(operation["get"]["responses"]["200"]["content"]) == {"application/json", "application/yaml"}
    assert "400" in operation["put"]["responses"]


def run(*args: Any) -> str:
    out = StringIO()
    call_command("schema", *args, stdout=out)
    return out.getvalue()


def test_the_command_exports_and_applies_idempotently(project, tmp_path: Path):
    path = tmp_path / "schema.yaml"
    assert "Wrote 3 questions" in run("export", "--project", "support", str(path))
    document = yaml.safe_load(path.read_text())
    document["questions"].insert(1, {"key": "grounded", "title": "Grounded?", "kind": "pass_fail"})
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    assert "added grounded" in run("apply", "--project", "support", str(path))
    assert keys(project) == ["correct", "grounded", "helpfulness", "issue"]
    events = AuditEvent.objects.count()
    assert "nothing changed" in run("apply", "--project", "support", str(path))
    assert AuditEvent.objects.count() == events
    as_json = tmp_path / "schema.json"
    run("export", "--project", "support", str(as_json))
    assert [q["key"] for q in json.loads(as_json.read_text())["questions"]] == keys(project)
    assert "nothing changed" in run("apply", "--project", "support", str(as_json))


def test_the_command_refuses_a_bad_file_with_a_non_zero_exit_and_writes_nothing(project, tmp_path: Path):
    path = tmp_path / "schema.yaml"
    path.write_text("questions:\n  - key: correct\n    title: Correct?\n    kind: stars\n")
    with pytest.raises(CommandError) as failed:
        run("apply", "--project", "support", str(path))
    assert "question 0, kind: Unknown kind" in str(failed.value)
    assert keys(project) == ["correct", "helpfulness", "issue"]
    with pytest.raises(CommandError, match="No project"):
        run("apply", "--project", "nope", str(path))
