"""A project with curated labels reached the real way (reviews, consensus, a curator's decision),
shared by the dataset and export tests."""

from __future__ import annotations

from typing import Any

from django.test import Client

from reviewapp.models import Adjudication, Item, Project
from reviewapp.services.curation import adjudication_decide
from reviewapp.services.ingest import items_ingest
from reviewapp.services.pairwise import pairwise_next, pairwise_submit, pairwise_tasks_create
from reviewapp.services.projects import project_set_reviews_per_item, question_create
from reviewapp.services.queue import queue_next
from reviewapp.services.reviews import review_submit
from reviewapp.services.tokens import api_token_create
from tests.factories import item_row

EXPECTED_0 = "Open Settings > Security and choose Reset password."
EXPECTED_2 = "Invoices are emailed on the first of the month."

# What each reviewer answers, by item external id (the queue picks the order).
PLAN: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "ext-0": (
        {"correct": False, "helpfulness": 2, "issue": "incomplete", "answer": EXPECTED_0},
        {"correct": False, "helpfulness": 3, "issue": "incomplete", "answer": EXPECTED_0},
    ),
    "ext-1": ({"correct": True, "helpfulness": 5}, {"correct": True, "helpfulness": 5}),
    "ext-2": ({"correct": True, "helpfulness": 4}, {"correct": False, "helpfulness": 4}),  # adjudicated
    "ext-3": ({"correct": True, "helpfulness": 5}, {"correct": True, "helpfulness": 4}),
}


def build_curated(project: Project, reviewer: Any, reviewer2: Any, curator: Any) -> Project:
    """Four curated items: ext-0 corrected (expected response), ext-1 and ext-3 agreed, ext-2 decided by
    the curator with an expected response and facts. ext-3 answers ext-0's request with model version 2
    (a pairwise pair), and ext-1 is a gold item tagged "billing"."""
    project = project_set_reviews_per_item(project=project, reviews_per_item=2, wait=True)
    question_create(project=project, key="answer", title="Expected answer", kind="expected_response", required=False)
    rows = [
        item_row(0, metadata={"n": 0, "tags": ["account"], "guidelines": ["Mention Security."]}),
        item_row(1, metadata={"n": 1, "tags": ["billing", "faq"]}, source="web"),
        item_row(2, metadata={"n": 2, "tags": ["billing"]}),
        item_row(3, request=item_row(0)["request"], model_version="2", response="Settings > Security > Reset."),
    ]
    items_ingest(project=project, rows=rows)
    for who, user in enumerate([reviewer, reviewer2]):
        for _ in PLAN:
            lease = queue_next(project=project, user=user)
            assert lease is not None
            review_submit(assignment_id=lease.pk, user=user, answers=PLAN[lease.item.external_id][who])
    adjudication = Adjudication.objects.get(item__external_id="ext-2")
    adjudication_decide(
        item=adjudication.item,
        user=curator,
        expected_version=adjudication.version,
        answers={"correct": True, "helpfulness": 4, "answer": EXPECTED_2},
        expected_facts=["emailed", "first of the month"],
        rationale="The invoice part is right.",
    )
    return project


def add_preference(project: Project, reviewer: Any) -> Any:
    """The reviewer prefers model version 2's answer (ext-3) over version 1's (ext-0)."""
    pairwise_tasks_create(project=project, version_a="1", version_b="2")
    slot = pairwise_next(project=project, user=reviewer)
    assert slot is not None
    v2 = Item.objects.get(project=project, external_id="ext-3")
    choice = "a" if slot.left_item_id == v2.pk else "b"
    return pairwise_submit(slot_id=slot.pk, user=reviewer, lease_token=slot.lease_token, choice=choice, reason="v2")


def session(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def bearer(user: Any, *scopes: str, project: Project | None = None) -> Client:
    _, raw = api_token_create(user=user, name="test", scopes=list(scopes), project=project)
    return Client(headers={"authorization": f"Bearer {raw}"})
