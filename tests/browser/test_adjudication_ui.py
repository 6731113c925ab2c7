"""A curator adjudicates disagreements in a real Chromium, with the keyboard, and the curated labels land."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from reviewapp.models import Adjudication, CuratedLabel, Item
from reviewapp.services.projects import project_set_reviews_per_item, question_create
from reviewapp.services.queue import queue_next
from reviewapp.services.reviews import review_submit
from tests.factories import make_items

pytestmark = pytest.mark.browser

RESPONSE = """To reset your password, open **Settings → Account** and choose *Reset password*.

The reset link is valid for **24 hours** on every plan.
"""
CONTEXT = [
    {
        "doc_uri": "docs/account/passwords.md",
        "content": "The reset link is valid for one hour on the Free plan and for 24 hours on Team plans.",
    },
    {"doc_uri": "docs/billing/invoices.md", "content": "Invoices are sent on the first day of each month."},
]
ANSWERS = {
    "rita": {
        "ext-0": {"correct": True, "helpfulness": 4, "issue": "none", "ideal": RESPONSE.strip(), "ctx": [2, 0]},
        "ext-1": {"correct": True, "helpfulness": 5, "ideal": "Open Settings.", "ctx": [2, 0]},
    },
    "rob": {
        "ext-0": {
            "correct": False,
            "helpfulness": 2,
            "issue": "wrong",
            "ideal": "Open Settings → Account, choose Reset password. The link lasts 1 hour (Free) or 24 hours (Team).",
            "ctx": [2, 1],
        },
        "ext-1": {"correct": True, "helpfulness": 2, "ideal": "Open Settings.", "ctx": [1, 0]},
    },
}
COMMENTS = {"rita": "Reads well.", "rob": "Free-plan links last one hour, not 24."}


def review_everything(project: Any, *users: Any) -> None:
    for user in users:
        while (lease := queue_next(project=project, user=user)) is not None:
            review_submit(
                assignment_id=lease.pk,
                user=user,
                answers=ANSWERS[user.username][lease.item.external_id],
                comment=COMMENTS[user.username],
                time_on_task_ms=95_000 if user.username == "rita" else 48_000,
            )


def active_key(page: Page) -> str:
    return page.locator("[data-review-form] .is-active").first.get_attribute("data-key") or ""


def test_a_curator_adjudicates_a_disagreement_with_the_keyboard(
    page: Page, live_server, login, project, reviewer, reviewer2, curator, artifacts
):
    project = project_set_reviews_per_item(project=project, reviews_per_item=2, wait=True)
    question_create(project=project, key="ideal", title="Expected response", kind="expected_response", required=False)
    question_create(
        project=project,
        key="ctx",
        title="Is each retrieved chunk relevant?",
        kind="context_relevance",
        options={"min": 0, "max": 2, "min_label": "off topic", "max_label": "relevant"},
    )
    make_items(project, 2, response=RESPONSE, retrieved_context=CONTEXT)
    review_everything(project, reviewer, reviewer2)
    assert Adjudication.objects.filter(status="open").count() == 2

    login("cora")
    page.get_by_role("link", name="Adjudicate").click()
    expect(page.locator(".adjudication-queue tbody tr")).to_have_count(2)
    expect(page.locator(".adjudication-queue")).to_contain_text("Is the answer correct?")
    page.keyboard.press("Enter")  # "Start with the oldest" has the focus

    # The disagreement, side by side: who said what, how long they took, and why it is disputed.
    compare = page.locator("[data-compare]")
    expect(compare).to_contain_text("rita")
    expect(compare).to_contain_text("1 min 35 s on task")
    expect(compare).to_contain_text("Free-plan links last one hour, not 24.")
    expect(page.locator('tr[data-row="correct"]')).to_have_class(re.compile("is-disagree"))
    expect(page.locator('tr[data-row="correct"]')).to_contain_text("tie: 1 x pass, 1 x fail")
    expect(page.locator('fieldset[data-key="correct"]')).to_have_class(re.compile("is-active"))
    # Prefilled with the median where one exists (lower middle of 2 and 4).
    expect(page.locator('input[name="answers.helpfulness"][value="2"]')).to_be_checked()
    expect(page.locator('input[name="answers.ctx[1]"][value="0"]')).to_be_checked()
    page.set_viewport_size({"width": 1440, "height": 1500})  # the sticky decision column, whole
    page.screenshot(path=str(artifacts / "adjudication.png"), full_page=True)
    page.set_viewport_size({"width": 1440, "height": 1000})

    # Fail, keep the rating at 2 (digits answer and move on), issue "wrong", take rob's expected response.
    page.keyboard.press("n")
    assert active_key(page) == "helpfulness"
    page.keyboard.press("2")
    page.keyboard.press("2")
    assert active_key(page) == "ideal"
    page.locator('fieldset[data-key="ideal"] [data-fill]', has_text="rob").click()
    page.keyboard.press("Escape")
    page.keyboard.press("c")
    page.keyboard.type("Rob checked the Free plan: links last one hour.")
    with page.expect_response(re.compile(r"/adjudicate/\d+/$")) as saved:
        page.keyboard.press("Control+Enter")
    assert saved.value.status == 200

    # The next disagreement is swapped in, and the address follows it.
    expect(page.locator("[data-notice]")).to_contain_text("Saved your decision")
    next_item = Item.objects.get(external_id="ext-1")
    expect(page).to_have_url(re.compile(rf"/adjudicate/{next_item.pk}/$"))
    expect(page.locator('tr[data-row="helpfulness"]')).to_contain_text("spread 3 > 1")

    label = CuratedLabel.objects.select_related("decided_by").get(item__external_id="ext-0")
    assert label.method == "adjudicated" and label.decided_by == curator
    assert label.answers == {
        "correct": False,
        "helpfulness": 2,
        "issue": "wrong",
        "ideal": ANSWERS["rob"]["ext-0"]["ideal"],
        "ctx": [2, 0],
    }
    assert label.expected_response == ANSWERS["rob"]["ext-0"]["ideal"]
    assert label.rationale == "Rob checked the Free plan: links last one hour."
    assert set(label.reviews.values_list("reviewer__username", flat=True)) == {"rita", "rob"}
    assert Adjudication.objects.get(item__external_id="ext-0").status == "decided"

    # The second one: accept the prefilled median with Enter; the queue is then empty.
    expect(page.locator('input[name="answers.helpfulness"][value="2"]')).to_be_checked()
    page.keyboard.press("y")
    page.keyboard.press("Enter")
    expect(page.locator(".all-done")).to_contain_text("No disagreements left")
    second = CuratedLabel.objects.get(item__external_id="ext-1")
    assert second.answers == {"correct": True, "helpfulness": 2, "ideal": "Open Settings.", "ctx": [1, 0]}
    assert second.decided_by == curator
