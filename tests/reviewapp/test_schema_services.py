"""Label schemas as a whole (services/schema.py): export, declarative apply, versions, diff."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from reviewapp.errors import ValidationFailed
from reviewapp.models import AuditEvent, Question, Review, SchemaVersion
from reviewapp.services.queue import queue_next
from reviewapp.services.reviews import review_submit
from reviewapp.services.schema import schema_apply, schema_diff, schema_export
from tests.factories import make_items

pytestmark = pytest.mark.django_db


def submit(project: Any, user: Any) -> Review:
    lease = queue_next(project=project, user=user)
    assert lease is not None
    return review_submit(assignment_id=lease.pk, user=user, answers={"correct": True, "helpfulness": 4})


def doc(project: Any) -> dict[str, Any]:
    return copy.deepcopy(schema_export(project=project))


def test_export_lists_the_questions_in_order_with_every_field(project):
    exported = schema_export(project=project)
    assert exported["project"] == "support"
    assert exported["schema_version"] == 1
    assert [q["key"] for q in exported["questions"]] == ["correct", "helpfulness", "issue"]
    assert exported["questions"][0] == {
        "key": "correct",
        "title": "Is the answer correct?",
        "kind": "pass_fail",
        "instructions": "",
        "assessment_type": "feedback",
        "required": True,
        "options": {},
        "consensus_rule": "majority",
        "max_spread": 1,
    }


def test_applying_the_export_or_the_same_file_twice_changes_nothing(project, curator):
    events = AuditEvent.objects.count()
    result = schema_apply(project=project, raw=doc(project), actor=curator)
    assert result.unchanged and not result.new_version
    assert AuditEvent.objects.count() == events

    changed = doc(project)
    changed["questions"].append({"key": "notes", "title": "Notes", "kind": "text", "required": False})
    first = schema_apply(project=project, raw=copy.deepcopy(changed), actor=curator)
    assert first.added == ["notes"]
    events = AuditEvent.objects.count()
    updated = {q.pk: q.order for q in Question.objects.filter(project=project)}
    second = schema_apply(project=project, raw=copy.deepcopy(changed), actor=curator)
    assert second.unchanged
    assert AuditEvent.objects.count() == events
    assert {q.pk: q.order for q in Question.objects.filter(project=project)} == updated


def test_an_edit_after_reviews_starts_one_new_version_through_the_services(project, reviewer, curator):
    make_items(project, 2)
    old = submit(project, reviewer)
    wanted = doc(project)
    wanted["questions"][1]["title"] = "How helpful is it?"
    wanted["questions"][1]["options"]["max"] = 4
    wanted["questions"].insert(0, {"key": "safe", "title": "Safe?", "kind": "pass_fail"})
    del wanted["questions"][-1]  # remove "issue"

    result = schema_apply(project=project, raw=wanted, actor=curator)

    assert (result.added, result.removed, result.changed) == (["safe"], ["issue"], ["helpfulness"])
    assert result.reordered and result.new_version
    project.refresh_from_db()
    assert project.schema_version == 2  # one new version for the whole document
    old.refresh_from_db()
    assert old.schema_version == 1
    assert [q["key"] for q in SchemaVersion.objects.get(project=project, version=1).questions] == [
        "correct",
        "helpfulness",
        "issue",
    ]
    assert [q["key"] for q in SchemaVersion.objects.get(project=project, version=2).questions] == [
        "safe",
        "correct",
        "helpfulness",
    ]
    assert AuditEvent.objects.filter(action="schema.version").count() == 1
    applied = AuditEvent.objects.get(action="schema.apply")
    assert applied.data["added"] == ["safe"] and applied.data["schema_version"] == 2
    assert applied.actor == curator
    # Without reviews of version 2, a further edit changes it in place.
    wanted["questions"][0]["title"] = "Is it safe?"
    schema_apply(project=project, raw=wanted, actor=curator)
    project.refresh_from_db()
    assert project.schema_version == 2


def test_reordering_alone_keeps_the_version(project, reviewer):
    make_items(project, 1)
    submit(project, reviewer)
    wanted = doc(project)
    wanted["questions"].reverse()
    result = schema_apply(project=project, raw=wanted)
    assert result.reordered and not result.changed and not result.new_version
    assert list(Question.objects.filter(project=project).values_list("key", flat=True)) == [
        "issue",
        "helpfulness",
        "correct",
    ]


def test_a_bad_document_names_every_problem_and_writes_nothing(project):
    before = doc(project)
    events = AuditEvent.objects.count()
    wanted = doc(project)
    wanted["questions"][0]["kind"] = "stars"
    wanted["questions"][1]["options"] = {"min": 5, "max": 1}
    wanted["questions"][2]["options"] = {"choices": ["only"]}
    wanted["questions"].append({"key": "correct", "title": "Again", "kind": "pass_fail", "colour": "red"})
    wanted["questions"].append({"key": "facts", "title": "Facts", "kind": "expected_facts", "consensus_rule": "median"})
    with pytest.raises(ValidationFailed) as failed:
        schema_apply(project=project, raw=wanted)
    errors = {(e["index"], e["field"]) for e in failed.value.errors}
    assert errors == {
        (0, "kind"),
        (1, "options"),
        (2, "options.choices"),
        (3, "colour"),
        (4, "consensus_rule"),
    }
    assert doc(project) == before
    assert AuditEvent.objects.count() == events


def test_duplicate_keys_and_a_foreign_project_are_refused(project):
    wanted = doc(project)
    wanted["project"] = "other"
    wanted["questions"].append(dict(wanted["questions"][0]))
    with pytest.raises(ValidationFailed) as failed:
        schema_apply(project=project, raw=wanted)
    assert {(e["index"], e["field"]) for e in failed.value.errors} == {(None, "project"), (3, "key")}
    with pytest.raises(ValidationFailed) as failed:
        schema_apply(project=project, raw=["not", "an", "object"])
    assert failed.value.errors[0]["field"] == ""
    with pytest.raises(ValidationFailed) as failed:
        schema_apply(project=project, raw={"questions": []})
    assert failed.value.errors[0]["field"] == "questions"


def test_the_diff_names_added_removed_changed_and_moved_questions():
    old = [
        {"key": "a", "title": "A", "kind": "pass_fail", "required": True, "options": {}},
        {"key": "b", "title": "B", "kind": "rating", "options": {"min": 1, "max": 5}},
        {"key": "c", "title": "C", "kind": "text", "required": False},
    ]
    new = [
        {"key": "b", "title": "B", "kind": "rating", "options": {"min": 1, "max": 4}},
        {"key": "a", "title": "A!", "kind": "pass_fail", "required": False, "options": {}},
        {"key": "d", "title": "D", "kind": "expected_facts"},
    ]
    diff = schema_diff(old, new)
    assert [q["key"] for q in diff.added] == ["d"]
    assert [q["key"] for q in diff.removed] == ["c"]
    assert {c.key: [(f.field, f.old, f.new) for f in c.changes] for c in diff.changed} == {
        "b": [("options", {"min": 1, "max": 5}, {"min": 1, "max": 4})],
        "a": [("title", "A", "A!"), ("required", True, False)],
    }
    assert diff.moved == ["b", "a"]
    assert schema_diff(old, old).empty


def test_a_question_inserted_in_the_middle_keeps_its_place(project):
    wanted = doc(project)
    wanted["questions"].insert(1, {"key": "grounded", "title": "Grounded?", "kind": "pass_fail"})
    schema_apply(project=project, raw=wanted)
    assert list(Question.objects.filter(project=project).values_list("key", flat=True)) == [
        "correct",
        "grounded",
        "helpfulness",
        "issue",
    ]
