"""The schema editor in a real Chromium, under the CSP: add a question, reorder, watch the preview
follow, save after reviews exist and see the new version and its diff."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from reviewapp.models import Question
from reviewapp.services.queue import queue_next
from reviewapp.services.reviews import review_submit
from tests.factories import make_items

pytestmark = pytest.mark.browser


def test_a_curator_adds_and_reorders_questions_with_a_live_preview_and_saves_a_new_version(
    page: Page, live_server, login, project, curator, reviewer, artifacts
):
    make_items(project, 1)
    lease = queue_next(project=project, user=reviewer)
    assert lease is not None
    review_submit(assignment_id=lease.pk, user=reviewer, answers={"correct": True, "helpfulness": 4})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    login("cora")
    page.goto(f"{live_server.url}/")
    page.click("[data-schema-link]")
    expect(page.locator("h1")).to_contain_text("Label schema")
    expect(page.locator("[data-version-note]")).to_contain_text("Version 1 has reviews")
    preview = page.locator("#schema-preview")
    expect(preview.locator("fieldset[data-key]")).to_have_count(3)

    # Add a multiple-choice question with the keyboard: pick the kind, then the Add button.
    page.select_option("[data-add-kind]", "multi_choice")
    page.focus("[data-add]")
    page.keyboard.press("Enter")
    new_title = page.locator('input[name="q-3-title"]')
    expect(new_title).to_be_focused()  # the keyboard goes to the new question's title
    expect(preview.locator('fieldset[data-key="multi_choice"] input[type=checkbox]')).to_have_count(3)
    new_title.fill("Which sources are missing?")
    page.locator('textarea[name="q-3-choices"]').fill("pricing\nrefunds")
    expect(preview.locator('fieldset[data-key="multi_choice"] .q-title')).to_have_text("Which sources are missing?")
    expect(preview.locator('fieldset[data-key="multi_choice"] input[type=checkbox]')).to_have_count(2)
    expect(preview.locator('fieldset[data-key="multi_choice"] kbd')).to_have_text(["1", "2"])  # its key hints

    # Move it up twice: the preview's order follows, and the keyboard stays on the moved question.
    page.locator('li[data-q="multi_choice"] [data-up]').click()
    expect(page.locator('li[data-q="multi_choice"] [data-up]')).to_be_focused()
    expect(preview.locator("fieldset[data-key] .q-title").nth(2)).to_have_text("Which sources are missing?")
    page.keyboard.press("Enter")
    expect(preview.locator("fieldset[data-key] .q-title")).to_have_text(
        ["Is the answer correct?", "Which sources are missing?", "How helpful?", "Main problem"]
    )
    expect(page.locator("li[data-q]")).to_have_count(4)  # the editor swapped itself, not into the preview
    expect(page.locator("#schema-page")).to_have_count(1)
    expect(page.locator("li[data-q]").nth(1)).to_have_attribute("data-q", "multi_choice")
    # A change of kind refits the question in the editor (the rules that fit) and the preview.
    page.select_option('select[name="q-3-kind"]', "multi_choice")
    expect(page.locator('select[name="q-3-kind"]')).to_be_focused()
    expect(preview.locator('fieldset[data-key="issue"] input[type=checkbox]')).to_have_count(4)
    expect(page.locator('select[name="q-3-consensus_rule"] option')).to_have_text(
        ["Default (majority)", re.compile("^majority: "), re.compile("^unanimous: ")]
    )
    # The preview answers the review page's keys while the keyboard is in it.
    preview.locator('fieldset[data-key="correct"]').focus()
    page.keyboard.press("y")
    expect(preview.locator('fieldset[data-key="correct"] input[value="true"]')).to_be_checked()
    page.screenshot(path=str(artifacts / "schema-editor.png"), full_page=True)

    page.click("[data-save]")
    expect(page.locator("[data-notice]")).to_contain_text("Saved as schema version 2")
    expect(page.locator("[data-current-version]")).to_have_text("version 2")
    expect(page.locator('[data-versions] tr[data-version="2"]')).to_contain_text("current")
    expect(page.locator('[data-versions] tr[data-version="1"] td').nth(2)).to_have_text("1")  # its review
    expect(page.locator("[data-diff-added]")).to_contain_text("Which sources are missing?")
    expect(page.locator("[data-diff-moved]")).to_have_count(0)
    expect(page.locator('[data-diff-changed] tr[data-field="kind"]')).to_contain_text(
        "multi_choice"
    )  # the others kept their relative order
    assert list(Question.objects.filter(project=project).values_list("key", flat=True)) == [
        "correct",
        "multi_choice",
        "helpfulness",
        "issue",
    ]
    assert Question.objects.get(key="multi_choice").options == {"choices": ["pricing", "refunds"]}
    page.screenshot(path=str(artifacts / "schema-saved.png"), full_page=True)
    assert not problems, problems
