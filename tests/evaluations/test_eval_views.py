"""Evaluation pages through the test client: access, forms, the live run page, comparison."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from evaluations.models import Run, RunChunk, Suite, SuiteVersion
from evaluations.services.chunks import run_chunk_execute
from evaluations.services.runs import run_start
from evaluations.services.suites import suite_create
from reviewapp.models import Item
from tests.evaluations.conftest import curate, ingest, rag_row

HX = {"HX-Request": "true"}


def session(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def execute(run: Run) -> Run:
    for chunk_id in RunChunk.objects.filter(run=run).values_list("pk", flat=True):
        run_chunk_execute(chunk_id=chunk_id)
    run.refresh_from_db()
    return run


@pytest.fixture
def suite(project) -> Suite:
    return suite_create(project=project, name="Core", scorers=["test_judge", "pii", "token_f1"], actor=None)


@pytest.fixture
def run(project, suite: Suite) -> Run:
    ingest(project, [rag_row(n, metadata={"verdict": n != 2}) for n in range(4)])
    return run_start(project=project, suite_version=suite.versions.get(), actor=None)


def test_who_sees_evaluations(project, engineer, reviewer, outsider) -> None:
    page = session(engineer).get(reverse("evaluations-home"))
    assert page.status_code == 200 and b"Support assistant" in page.content
    assert b'href="/evaluations/"' in page.content and b'aria-current="page">Evaluations' in page.content
    assert b"No project to evaluate" in session(reviewer).get(reverse("evaluations-home")).content
    url = reverse("evaluations-project", args=["support"])
    assert session(engineer).get(url).status_code == 200
    assert session(reviewer).get(url).status_code == 403
    assert session(outsider).get(url).status_code == 404
    assert Client().get(url).status_code == 302  # to the login page
    cards = session(engineer).get(reverse("project-list")).content
    assert (
        b"data-evaluations-link" in cards
        and b"data-evaluations-link" not in session(reviewer).get(reverse("project-list")).content
    )


def test_create_a_suite_from_the_scorer_table(project, engineer) -> None:
    client = session(engineer)
    form = client.get(reverse("evaluations-project", args=["support"])).content.decode()
    assert 'name="scorer" value="token_f1"' in form and 'name="threshold:token_f1" value="0.5"' in form
    response = client.post(
        reverse("evaluations-suite-create", args=["support"]),
        {
            "name": "Core",
            "scorer": ["token_f1", "pii"],
            "threshold:token_f1": "0.7",
            "params:pii": '{"kinds": ["email"]}',
            "human_question": "correct",
            "max_error_rate": "10",
            "chunk_size": "50",
        },
    )
    suite = Suite.objects.get(name="Core")
    assert response.status_code == 302 and response["Location"] == reverse(
        "evaluations-suite", args=["support", suite.pk]
    )
    version = suite.versions.get()
    assert [(e["scorer"], e["threshold"]) for e in version.scorers] == [("token_f1", 0.7), ("pii", 0.0)]
    assert version.scorers[1]["params"] == {"kinds": ["email"]}
    assert version.config == {"human_question": "correct", "max_error_rate": 0.1, "chunk_size": 50}


def test_a_bad_suite_form_shows_readable_errors_and_saves_nothing(project, engineer) -> None:
    response = session(engineer).post(
        reverse("evaluations-suite-create", args=["support"]),
        {"name": "Core", "scorer": ["pii", "token_f1"], "threshold:token_f1": "2", "params:pii": "{oops"},
    )
    assert response.status_code == 422 and b"data-errors" in response.content
    assert "pii · params" in response.content.decode() and not Suite.objects.exists()
    response = session(engineer).post(
        reverse("evaluations-suite-create", args=["support"]),
        {"name": "Core", "scorer": ["token_f1"], "threshold:token_f1": "2"},
    )
    assert response.status_code == 422 and "token_f1 · threshold" in response.content.decode()


def test_a_new_version_from_the_suite_page(project, engineer, suite: Suite) -> None:
    client = session(engineer)
    page = client.get(reverse("evaluations-suite", args=["support", suite.pk])).content.decode()
    assert 'value="test_judge" id="use-test_judge" checked' in page and "Save as v2" in page
    response = client.post(
        reverse("evaluations-suite-version-create", args=["support", suite.pk]),
        {"scorer": ["pii"], "human_question": "", "max_error_rate": "20", "chunk_size": "100"},
    )
    assert response.status_code == 302
    assert SuiteVersion.objects.get(suite=suite, number=2).scorer_names == ["pii"]
    assert client.get(reverse("evaluations-suite", args=["other", suite.pk])).status_code == 404


def test_start_a_run_from_the_form(project, engineer, suite: Suite) -> None:
    ingest(project, [rag_row(n, model_version=str(1 + n % 2)) for n in range(4)])
    client = session(engineer)
    response = client.post(
        reverse("evaluations-run-start", args=["support"]),
        {"suite_version": suite.versions.get().pk, "model_version": "2", "target_kind": "stored", "limit": "1"},
    )
    run = Run.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("evaluations-run", args=[run.pk])
    assert run.dataset == {"model_version": "2", "limit": 1} and run.items_total == 1 and run.created_by == engineer
    bad = client.post(
        reverse("evaluations-run-start", args=["support"]),
        {"suite_version": suite.versions.get().pk, "source": "nowhere"},
    )
    assert bad.status_code == 302 and Run.objects.count() == 1
    assert "No item of this project matches" in client.get(bad["Location"]).content.decode()
    elsewhere = client.post(
        reverse("evaluations-run-start", args=["support"]), {"suite_version": "x", "back": "//evil.example/"}
    )
    assert elsewhere["Location"] == reverse("evaluations-project", args=["support"])  # no open redirect


def test_the_run_page_polls_until_the_run_finishes(engineer, run: Run) -> None:
    client = session(engineer)
    page = client.get(reverse("evaluations-run", args=[run.pk])).content.decode()
    status_url = reverse("evaluations-run-status", args=[run.pk])
    assert f'hx-get="{status_url}" hx-trigger="every 2s"' in page and 'data-run-status="queued"' in page
    assert "data-cancel" in page
    polling = client.get(status_url, headers=HX)
    assert polling.status_code == 200 and b'hx-trigger="every 2s"' in polling.content
    execute(run)
    done = client.get(status_url, headers=HX)
    assert done.status_code == 286  # htmx stops polling
    assert json.loads(done["HX-Trigger"]) == {"run-finished": {}}
    assert b'data-run-status="succeeded"' in done.content and b"every 2s" not in done.content
    assert b"data-cancel" not in done.content
    metrics = client.get(reverse("evaluations-run-metrics", args=[run.pk]), headers=HX).content.decode()
    assert 'id="run-metrics"' in metrics and 'data-scorer="test_judge"' in metrics


def test_the_run_page_shows_metrics_with_alignment_and_paginated_rows(
    project, rag_questions, reviewer, engineer, run: Run
) -> None:
    items = list(Item.objects.order_by("id"))
    curate(items[0], reviewer, {"correct": True})
    curate(items[2], reviewer, {"correct": True})
    execute(run)
    page = session(engineer).get(reverse("evaluations-run", args=[run.pk])).content.decode()
    assert "data-accuracy>50%" in page and "n=2" in page  # the judge fails item 2, humans pass it
    assert 'data-send-scorer="test_judge">Send 1 to review' in page and 'data-send-scorer="pii"' not in page
    assert page.count('<tr data-item="') == 4
    assert 'class="ans-fail" title="judged False"' in page
    errored = session(engineer).get(
        reverse("evaluations-run", args=[run.pk]), {"scorer": "token_f1", "verdict": "failed"}
    )
    assert errored.content.decode().count('<tr data-item="') == 0  # token_f1 is n/a: no expected responses


def test_the_run_page_costs_the_same_queries_for_any_page_of_rows(
    project, engineer, suite: Suite, django_assert_max_num_queries
) -> None:
    ingest(project, [rag_row(n, metadata={"verdict": True}) for n in range(30)])
    run = execute(run_start(project=project, suite_version=suite.versions.get(), actor=None))
    client = session(engineer)
    client.get(reverse("evaluations-run", args=[run.pk]))  # warm the session and the scorer registry
    with django_assert_max_num_queries(25):
        page = client.get(reverse("evaluations-run", args=[run.pk]))
    assert page.content.decode().count('<tr data-item="') == 25


def test_cancel_from_the_run_page(engineer, run: Run) -> None:
    client = session(engineer)
    response = client.post(reverse("evaluations-run-cancel", args=[run.pk]), headers=HX)
    assert response.status_code == 286 and b'data-run-status="cancelled"' in response.content
    assert b"Run cancelled" in response.content
    again = client.post(reverse("evaluations-run-cancel", args=[run.pk]))
    assert again.status_code == 302
    assert "only queued or running" in client.get(again["Location"]).content.decode()


def test_send_disagreements_to_review_with_one_click(project, rag_questions, reviewer, engineer, run: Run) -> None:
    curate(Item.objects.order_by("id")[2], reviewer, {"correct": True})
    execute(run)
    response = session(engineer).post(
        reverse("evaluations-run-disagreements", args=[run.pk]), {"scorer": "test_judge"}, headers=HX
    )
    assert response.status_code == 200 and b"1 item with disagreements" in response.content
    assert Item.objects.order_by("id")[2].priority == 10


def test_the_comparison_page(project, engineer, suite: Suite) -> None:
    ingest(project, [rag_row(n, metadata={"verdict": True}) for n in range(3)])
    a = execute(run_start(project=project, suite_version=suite.versions.get(), actor=None))
    Item.objects.filter(external_id="q-1").update(metadata={"verdict": False})
    b = execute(run_start(project=project, suite_version=suite.versions.get(), actor=None))
    client = session(engineer)
    page = client.get(reverse("evaluations-run", args=[b.pk])).content.decode()
    assert f'<option value="{a.pk}">' in page and "data-compare-form" in page
    compare = client.get(reverse("evaluations-compare"), {"a": a.pk, "b": b.pk}).content.decode()
    assert "paired by item" in compare and 'data-changes="test_judge"' in compare and "regressed" in compare
    assert "Compared on 3 shared items" in compare and "Mean A <span" in compare
    assert client.get(reverse("evaluations-compare"), {"a": a.pk}).status_code == 404

    # B over fewer items: the page says so and compares the shared ones only.
    first_two = list(Item.objects.order_by("id").values_list("pk", flat=True)[:2])
    c = execute(run_start(project=project, suite_version=suite.versions.get(), actor=None, dataset={"ids": first_two}))
    compare = client.get(reverse("evaluations-compare"), {"a": a.pk, "b": c.pk}).content.decode()
    assert "Compared on 2 shared items; 1 only in A" in compare and "left out of every figure" in compare
