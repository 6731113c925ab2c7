"""The expected response in a real Chromium: failing an answer with the keyboard stores no expectation,
``m`` starts the field from the model's answer, and repeating a failed answer is refused in place."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from reviewapp.models import Item, Review
from reviewapp.services.projects import question_create
from tests.factories import make_items

pytestmark = pytest.mark.browser

MESSAGE = "the expected response repeats the answer you failed: correct it or leave it empty"


def wait_for_item(page: Page, n: int) -> None:
    expect(page.locator("[data-review-form] .question")).to_contain_text(f"({n})")
    expect(page.locator('[data-review-form] fieldset[data-key="correct"]')).to_have_class(re.compile("is-active"))


def press(page: Page, *keys: str) -> None:
    for key in keys:
        page.keyboard.press(key)


def test_failing_with_the_keyboard_stores_no_expectation_and_m_starts_from_the_answer(
    page: Page, live_server, login, reviewer, project, artifacts
):
    question_create(project=project, key="ideal", title="Expected response", kind="expected_response", required=False)
    make_items(project, 2)
    responses = {i.external_id: i.response for i in Item.objects.filter(project=project)}
    login("rita")
    page.goto(f"{live_server.url}/projects/{project.slug}/review/")
    wait_for_item(page, 0)
    ideal = page.locator('textarea[name="answers.ideal"]')
    expect(ideal).to_have_value("")  # not prefilled with the model's answer

    # Item 0: fail it, answer the rest, Enter; the untouched expected response is not an answer.
    press(page, "n", "2", "Enter")
    wait_for_item(page, 1)
    review = Review.objects.get(reviewer=reviewer, item__external_id="ext-0")
    assert review.answers == {"correct": False, "helpfulness": 2}
    page.goto(f"{live_server.url}/reviews/")
    expect(page.locator("body")).not_to_contain_text(responses["ext-0"])

    # Item 1: the shortcut sheet lists m; m starts the field from the model's answer.
    page.goto(f"{live_server.url}/projects/{project.slug}/review/")
    wait_for_item(page, 1)
    press(page, "?")
    expect(page.locator("#shortcuts-dialog")).to_contain_text("Start the expected response from the model's answer")
    press(page, "Escape")
    press(page, "m")
    expect(ideal).to_have_value(responses["ext-1"])
    expect(ideal).to_be_focused()
    # Failing the answer while keeping it as the expectation is refused on the field, nothing stored.
    press(page, "Escape", "n", "k", "k", "2", "Enter")
    expect(page.locator('fieldset[data-key="ideal"] .err')).to_have_text(MESSAGE)
    page.screenshot(path=str(artifacts / "expectation-refused.png"), full_page=True)
    assert not Review.objects.filter(item__external_id="ext-1").exists()
    # Correcting it is accepted.
    press(page, "e")
    page.keyboard.type(" Then check your spam folder.")
    press(page, "Control+Enter")
    expect(page.locator(".all-done")).to_contain_text("All done")
    review = Review.objects.get(reviewer=reviewer, item__external_id="ext-1")
    assert review.answers == {
        "correct": False,
        "helpfulness": 2,
        "ideal": f"{responses['ext-1']} Then check your spam folder.",
    }
