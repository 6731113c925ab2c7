"""A curator sees what end users said about an answer on the adjudication page, in a real Chromium:
the block loads itself (htmx) beside the response, shows counts and the latest comments as text, and
loads again for the next item swapped in after a decision."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from pipelines.sources.feedback import feedback_ingest
from reviewapp.models import Item
from reviewapp.services.projects import project_set_reviews_per_item
from reviewapp.services.queue import queue_next
from reviewapp.services.reviews import review_submit
from tests.factories import make_items

pytestmark = pytest.mark.browser


def test_the_adjudication_page_shows_the_end_users_feedback(
    page: Page, live_server, login, project, reviewer, reviewer2, curator, artifacts
):
    project = project_set_reviews_per_item(project=project, reviews_per_item=2, wait=True)
    make_items(project, 2)
    for user, correct in ((reviewer, True), (reviewer2, False)):
        while (lease := queue_next(project=project, user=user)) is not None:
            review_submit(assignment_id=lease.pk, user=user, answers={"correct": correct, "helpfulness": 3})
    feedback_ingest(
        project=project,
        rows=[
            {
                "client_id": "a",
                "kind": "thumbs",
                "value": "down",
                "trace_id": "tr-0",
                "comment": "<script>x()</script> Wrong plan.",
            },
            {"client_id": "b", "kind": "thumbs", "value": "up", "trace_id": "tr-0"},
            {"client_id": "c", "kind": "rating", "value": 2, "trace_id": "tr-0"},
        ],
    )
    first, second = Item.objects.get(external_id="ext-0"), Item.objects.get(external_id="ext-1")

    login("cora")
    page.goto(f"{live_server.url}/projects/support/adjudicate/{first.pk}/")
    block = page.locator("[data-end-user-feedback]")
    expect(block).to_contain_text("thumbs up 1")
    expect(block).to_contain_text("thumbs down 1")
    # Beside the item and the decision, which it must not replace.
    expect(page.locator("[data-compare]")).to_be_visible()
    expect(page.locator("[data-submit]")).to_be_visible()
    expect(block).to_contain_text("mean rating 2.0 / 5")
    expect(block.locator("[data-feedback-comments]")).to_contain_text("<script>x()</script> Wrong plan.")  # as text
    page.screenshot(path=str(artifacts / "adjudication-feedback.png"), full_page=True)

    page.locator('fieldset[data-key="correct"] input[data-key="y"]').check(force=True)
    with page.expect_response(re.compile(r"/adjudicate/\d+/$")):
        page.locator("[data-submit]").click()
    expect(page).to_have_url(re.compile(rf"/adjudicate/{second.pk}/$"))
    expect(page.locator("[data-end-user-feedback]")).to_contain_text("No feedback from end users")
