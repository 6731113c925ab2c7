"""Fixtures for the evaluation tests: a RAG-shaped project, curated labels, suites."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

import tests.evaluations.scorers_for_tests  # noqa: F401 - registers the test scorers in this process
from reviewapp.models import Assignment, CuratedLabel, Item, Project
from reviewapp.services.ingest import items_ingest
from reviewapp.services.projects import question_create
from reviewapp.services.reviews import review_submit

CONTEXT = [
    {"doc_uri": "kb/account.md", "content": "Passwords are reset from Settings, under Security."},
    {"doc_uri": "kb/billing.md", "content": "Invoices are emailed on the first day of each month."},
]


def rag_row(n: int, **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "external_id": f"q-{n}",
        "request": f"How do I reset my password? ({n})",
        "response": "Open Settings, then Security, and choose Reset password.",
        "retrieved_context": CONTEXT,
        "model_name": "support-bot",
        "model_version": "1",
        "source": "test",
        "metadata": {"n": n, "latency_ms": 800},
    }
    row.update(overrides)
    return row


def ingest(project: Project, rows: list[dict[str, Any]]) -> list[Item]:
    items_ingest(project=project, rows=rows)
    return list(Item.objects.filter(project=project, external_id__in=[r["external_id"] for r in rows]).order_by("id"))


def curate(item: Item, reviewer: Any, answers: dict[str, Any]) -> CuratedLabel:
    """A curated label the real way: a review of the item submitted through the service (a consensus of one).

    The slot is leased to ``reviewer`` directly, as a reviewer's queue would (queue order is not the point here).
    """
    now = timezone.now()
    slot = Assignment.objects.filter(item=item, submitted_at__isnull=True, reviewer__isnull=True).order_by("slot")[0]
    Assignment.objects.filter(pk=slot.pk).update(reviewer=reviewer, leased_at=now, expires_at=now + timedelta(hours=1))
    review_submit(assignment_id=slot.pk, user=reviewer, answers={"helpfulness": 3, **answers})
    return CuratedLabel.objects.get(item=item)


@pytest.fixture
def rag_questions(project: Project) -> Project:
    """The standard questions plus expectations and per-chunk relevance (0-2)."""
    question_create(
        project=project, key="expected", title="Expected response", kind="expected_response", required=False
    )
    question_create(project=project, key="facts", title="Expected facts", kind="expected_facts", required=False)
    question_create(
        project=project,
        key="chunks",
        title="Relevance of each chunk",
        kind="context_relevance",
        required=False,
        options={"min": 0, "max": 2},
    )
    return project
