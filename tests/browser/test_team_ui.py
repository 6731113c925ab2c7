"""Skip with a reason and flag an item, with the keyboard, in a real Chromium."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from reviewapp.models import Assignment, Flag, Skip
from tests.factories import make_items

pytestmark = pytest.mark.browser


def wait_for_item(page: Page, n: int) -> None:
    expect(page.locator("[data-review-form] .question")).to_contain_text(f"({n})")
    expect(page.locator('[data-review-form] fieldset[data-key="correct"]')).to_have_class(re.compile("is-active"))


def test_flag_keeps_the_answers_and_skip_asks_for_a_reason(page: Page, live_server, login, reviewer, project):
    make_items(project, 2)
    login("rita")
    page.goto(f"{live_server.url}/projects/{project.slug}/review/")
    wait_for_item(page, 0)
    page.keyboard.press("y")  # answer a question before flagging: the answer must survive

    page.keyboard.press("f")
    dialog = page.locator("#flag-dialog")
    expect(dialog).to_be_visible()
    page.keyboard.press("ArrowDown")  # the first kind has focus; arrows move between radio buttons
    page.keyboard.press("Tab")
    page.keyboard.type("needs a lawyer")
    dialog.get_by_role("button", name="Flag").click()
    expect(page.locator("#flag-status")).to_contain_text("Flagged")
    expect(dialog).to_be_hidden()
    expect(page.locator('input[name="answers.correct"][value="true"]')).to_be_checked()
    flag = Flag.objects.get()
    assert (flag.kind, flag.note, flag.created_by) == ("needs_expert", "needs a lawyer", reviewer)

    page.keyboard.press("s")
    skip = page.locator("#skip-dialog")
    expect(skip).to_be_visible()
    page.keyboard.type("Outside my expertise")
    page.keyboard.press("Enter")
    wait_for_item(page, 1)
    assert Skip.objects.get(reviewer=reviewer).reason == "Outside my expertise"
    assert Assignment.objects.get(reviewer=reviewer, submitted_at__isnull=True).item.external_id == "ext-1"
