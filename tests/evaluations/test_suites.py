"""Suites and versions: validation at save time, explicit stored definitions, immutability."""

from __future__ import annotations

from typing import Any

import pytest

from evaluations.models import Suite, SuiteVersion
from evaluations.services.suites import suite_create, suite_version_create
from reviewapp.errors import ValidationFailed
from reviewapp.models import AuditEvent


def errors_of(project: Any, scorers: Any, config: Any = None, name: str = "s") -> dict[str, str]:
    with pytest.raises(ValidationFailed) as caught:
        suite_create(project=project, name=name, scorers=scorers, config=config, actor=None)
    return {e["field"]: e["message"] for e in caught.value.errors}


def test_a_suite_is_saved_fully_explicit(rag_questions, engineer) -> None:
    suite = suite_create(
        project=rag_questions,
        name="Correctness",
        description="core metrics",
        scorers=["exact_match", {"scorer": "token_f1", "threshold": 0.6}, {"scorer": "retrieval_precision"}],
        actor=engineer,
    )
    version = suite.versions.get()
    assert version.number == 1 and version.created_by == engineer
    assert version.scorers == [
        {"name": "exact_match", "scorer": "exact_match", "threshold": None, "params": {}, "human_question": "correct"},
        {"name": "token_f1", "scorer": "token_f1", "threshold": 0.6, "params": {}, "human_question": "correct"},
        {
            "name": "retrieval_precision",
            "scorer": "retrieval_precision",
            "threshold": 0.5,
            # the project's context_relevance question is filled in
            "params": {"human_question": "chunks", "relevant_min": 1, "k": None},
            "human_question": "correct",
        },
    ]
    assert version.config == {"human_question": "correct", "max_error_rate": 0.2, "chunk_size": 100}
    assert AuditEvent.objects.filter(action="evaluation.suite_create", target_id=str(suite.pk)).exists()


def test_unknown_scorers_are_named_by_index(project) -> None:
    errors = errors_of(project, ["exact_match", "token_f1", "bleu"])
    assert list(errors) == ["scorers[2].scorer"]
    assert "Unknown scorer “bleu”" in errors["scorers[2].scorer"] and "token_f1" in errors["scorers[2].scorer"]
    assert not Suite.objects.exists()


@pytest.mark.parametrize(
    ("entry", "field", "message"),
    [
        ({"scorer": "token_f1", "threshold": "high"}, "scorers[0].threshold", "Give a number"),
        ({"scorer": "token_f1", "threshold": True}, "scorers[0].threshold", "Give a number"),
        ({"scorer": "token_f1", "threshold": 1.5}, "scorers[0].threshold", "between|from 0 to 1"),
        ({"scorer": "response_length", "threshold": -3}, "scorers[0].threshold", "never negative"),
        ({"scorer": "exact_match", "threshold": 0.5}, "scorers[0].threshold", "takes no threshold"),
        ({"scorer": "token_f1", "params": {"n": 2}}, "scorers[0].params.n", "has no parameter"),
        (
            {"scorer": "lexical_groundedness", "params": {"support_threshold": 2}},
            "scorers[0].params.support_threshold",
            "between 0 and 1",
        ),
        (
            {"scorer": "lexical_groundedness", "params": {"min_words": "3"}},
            "scorers[0].params.min_words",
            "Expected int",
        ),
        (
            {"scorer": "unsafe_content", "params": {"extra_patterns": ["(unclosed"]}},
            "scorers[0].params.extra_patterns",
            "not a valid regular expression",
        ),
        ({"scorer": "pii", "params": {"kinds": ["email", "ssn"]}}, "scorers[0].params.kinds", "Unknown kinds: ssn"),
        ({"scorer": "retrieval_recall", "params": {"k": 0}}, "scorers[0].params.k", "at least 1"),
        ({"scorer": "token_f1", "params": "x"}, "scorers[0].params", "object"),
        (
            {"scorer": "token_f1", "human_question": "helpfulness"},
            "scorers[0].human_question",
            "not a pass/fail question",
        ),
        ({"scorer": "token_f1", "weight": 2}, "scorers[0].weight", "Unknown field"),
        (42, "scorers[0]", "Give a scorer name"),
    ],
)
def test_bad_entries_are_refused_with_the_field_that_is_wrong(project, entry: Any, field: str, message: str) -> None:
    errors = errors_of(project, [entry])
    assert field in errors, errors
    import re

    assert re.search(message, errors[field]), errors[field]


def test_retrieval_scorers_need_a_context_relevance_question(project) -> None:
    errors = errors_of(project, ["retrieval_recall"])  # the standard questions have none
    assert "context_relevance question" in errors["scorers[0].params.human_question"]


def test_bad_config_and_empty_lists(project) -> None:
    assert "non-empty list" in errors_of(project, [])["scorers"]
    assert "non-empty list" in errors_of(project, "token_f1")["scorers"]
    errors = errors_of(project, ["token_f1"], {"max_error_rate": 3, "chunk_size": 0, "human_question": "nope", "x": 1})
    assert set(errors) == {"config.max_error_rate", "config.chunk_size", "config.human_question", "config.x"}


def test_the_same_scorer_twice_needs_its_own_name(project) -> None:
    errors = errors_of(project, ["pii", "pii"])
    assert "already used by scorers[0]" in errors["scorers[1].name"]
    suite = suite_create(
        project=project,
        name="two",
        scorers=["pii", {"scorer": "pii", "name": "pii_email", "params": {"kinds": ["email"]}}],
        actor=None,
    )
    assert suite.versions.get().scorer_names == ["pii", "pii_email"]


def test_names_are_unique_per_project(project) -> None:
    suite_create(project=project, name="Core", scorers=["pii"], actor=None)
    assert "already has a suite" in errors_of(project, ["pii"], name="Core")["name"]
    assert "name" in errors_of(project, ["pii"], name="  ")


def test_new_versions_number_up_and_leave_old_ones_alone(project, engineer) -> None:
    suite = suite_create(project=project, name="Core", scorers=["pii"], actor=engineer)
    v2 = suite_version_create(suite=suite, scorers=["pii", "token_f1"], config={"human_question": ""}, actor=engineer)
    assert v2.number == 2 and v2.config["human_question"] == "" and v2.scorers[1]["human_question"] == ""
    assert SuiteVersion.objects.get(suite=suite, number=1).scorer_names == ["pii"]
    with pytest.raises(ValidationFailed) as caught:
        suite_version_create(suite=suite, scorers=["nope"], actor=engineer)
    assert caught.value.errors[0]["field"] == "scorers[0].scorer"
    assert suite.versions.count() == 2


def test_a_version_cannot_be_edited_in_place(project) -> None:
    version = suite_create(project=project, name="Core", scorers=["pii"], actor=None).versions.get()
    version.scorers = []
    with pytest.raises(ValueError, match="immutable"):
        version.save()


def test_custom_scorer_modules_are_usable_in_suites(project) -> None:
    # tests/evaluations/scorers_for_tests.py is loaded like a team's module
    version = suite_create(
        project=project, name="Custom", scorers=[{"scorer": "test_slow", "params": {"seconds": 0.1}}], actor=None
    ).versions.get()
    assert version.scorers[0]["params"] == {"seconds": 0.1}
