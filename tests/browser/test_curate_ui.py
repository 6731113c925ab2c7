"""Curator actions in a real Chromium: create pairs after reading the live count of pairs, mark an
item gold with its known answers, send an item back with a reason."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from reviewapp.models import AuditEvent, GoldAnswer, Item, PairwiseTask, Review
from reviewapp.services.ingest import items_ingest
from reviewapp.services.queue import queue_next
from reviewapp.services.reviews import review_submit
from tests.factories import item_row

pytestmark = pytest.mark.browser

CHAMPION = "champion-7"
CANDIDATE = "candidate-8"


def test_a_curator_creates_pairs_marks_gold_and_sends_an_item_back(
    page: Page, live_server, login, curator, reviewer, project, artifacts
):
    rows = [
        item_row(n, external_id=f"{v}-{n}", model_version=v, trace_id=f"tr-{v}-{n}")
        for n in range(4)
        for v in (CHAMPION, CANDIDATE)
    ]
    items_ingest(project=project, rows=rows)
    login("cora")

    # Pairs: the count follows the form (server-side, through htmx) before anything is created.
    page.locator("[data-create-pairs-link]").first.click()
    expect(page.locator("[data-preview-count]")).to_have_text("4")
    page.select_option("[data-version-a]", CHAMPION)
    page.select_option("[data-version-b]", CANDIDATE)
    page.fill("[data-limit]", "3")
    expect(page.locator("[data-preview-count]")).to_have_text("3")
    assert not PairwiseTask.objects.exists()
    page.screenshot(path=str(artifacts / "curate-pairs.png"), full_page=True)
    page.click("[data-create-pairs]")
    expect(page.locator(".messages")).to_contain_text("Created 3 pairs")
    expect(page.locator("[data-preview-count]")).to_have_text("1")  # the one left out by the cap
    assert PairwiseTask.objects.filter(project=project).count() == 3

    # Gold: open an item by id, give its known answers.
    item = Item.objects.get(external_id=f"{CHAMPION}-0")
    page.goto(f"{live_server.url}/projects/{project.slug}/curate/")
    page.fill("[data-item-lookup] input[name=item]", str(item.pk))
    page.click("[data-item-lookup] button")
    gold_form = page.locator("[data-gold-form]")
    gold_form.locator("[data-key=correct] label.opt").first.click()
    gold_form.locator("[data-key=helpfulness] label.opt").last.click()
    gold_form.locator("button[type=submit]").click()
    expect(page.locator("[data-gold-badge]")).to_be_visible()
    assert GoldAnswer.objects.get(item=item).answers["helpfulness"] == 5

    # Send back: a review of another item, refused without a reason, then sent back with one.
    lease = queue_next(project=project, user=reviewer)
    assert lease is not None
    review = review_submit(assignment_id=lease.pk, user=reviewer, answers={"correct": False, "helpfulness": 2})
    page.goto(f"{live_server.url}/projects/{project.slug}/curate/items/{review.item_id}/")
    form = page.locator("[data-send-back-form]")
    form.locator("textarea[name=reason]").fill("The reviewer missed the second question.")
    form.locator("button[type=submit]").click()
    expect(page.locator(".messages")).to_contain_text("Sent back 1 review")
    page.screenshot(path=str(artifacts / "curate-item.png"), full_page=True)
    assert Review.objects.get(pk=review.pk).returned_at is not None
    assert AuditEvent.objects.filter(action="item.send_back", actor=curator).exists()
