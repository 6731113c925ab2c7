"""The pairwise page in a real Chromium: a reviewer judges pairs with the keyboard only, blind."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from reviewapp.models import PairwiseTask, Preference
from reviewapp.services.ingest import items_ingest
from reviewapp.services.pairwise import pairwise_next, pairwise_submit, pairwise_tasks_create

pytestmark = pytest.mark.browser

CHAMPION = "champion-7"
CANDIDATE = "candidate-8"
CONTEXT = [
    {"doc_uri": "docs/account/passwords.md", "content": "Passwords are reset from Settings → Account."},
    {"doc_uri": "docs/billing/invoices.md", "content": "Invoices can be exported as PDF or CSV from Billing."},
]
# (request, champion's response, candidate's response); each response's first words are unique.
PAIRS = [
    (
        "How do I reset my password?",
        "Go to Settings → Account and choose **Reset password**. We email you a link.",
        "You can reset it yourself:\n\n1. Open **Settings → Account**.\n2. Choose *Reset password*.\n"
        "3. Follow the emailed link (valid for 1 hour on Free, 24 hours on Team).",
    ),
    (
        "Can I export my invoices as CSV?",
        "Yes. Invoices can be downloaded as PDF from **Billing → Invoices**.",
        "Yes, from **Billing → Invoices**: pick the months and choose *Export → CSV*. "
        "Admins can also call `GET /v1/invoices?format=csv`.",
    ),
    (
        "How do I add a teammate to my workspace?",
        "Invite them from **Members → Invite** with their email address. They join as *Member*.",
        "Teammates are added by an admin.",
    ),
    (
        "Why was my card declined?",
        "Card payments can be declined by your bank.",
        "Common reasons:\n\n| Reason | What to do |\n|---|---|\n| Expired card | Update it in **Billing** |\n"
        "| 3-D Secure failed | Retry and approve it in your bank app |",
    ),
]
SIGNATURES = {
    text.replace("**", "").replace("*", "")[:12]: version
    for _, champion, candidate in PAIRS
    for version, text in ((CHAMPION, champion), (CANDIDATE, candidate))
}


def make_pairs(project, preferences_per_task: int = 1) -> None:  # type: ignore[no-untyped-def]
    rows = []
    for n, (request, champion, candidate) in enumerate(PAIRS):
        for version, response in ((CHAMPION, champion), (CANDIDATE, candidate)):
            rows.append(
                {
                    "external_id": f"{version}-{n}",
                    "request": request,
                    "response": response,
                    "retrieved_context": CONTEXT,
                    "model_name": "support-bot",
                    "model_version": version,
                }
            )
    items_ingest(project=project, rows=rows)
    created = pairwise_tasks_create(
        project=project, version_a=CHAMPION, version_b=CANDIDATE, preferences_per_task=preferences_per_task
    )
    assert created.created == len(PAIRS)


def shown_versions(page: Page) -> tuple[str, str]:
    """Which version's response is on the left and on the right, read from the page itself."""
    found = []
    for side in ("left", "right"):
        text = page.locator(f'[data-side="{side}"] [data-response]').inner_text().strip()
        found.append(SIGNATURES[text[:12]])
    assert set(found) == {CHAMPION, CANDIDATE}
    return found[0], found[1]


def wait_for_pair(page: Page, n: int) -> tuple[str, str]:
    """Wait until pair ``n`` is shown and htmx has bound its form (a key pressed sooner submits natively)."""
    expect(page.locator("[data-request]")).to_have_text(PAIRS[n][0])
    expect(page.locator("[data-pairwise-form]")).to_have_attribute("data-ready", "true")
    return shown_versions(page)


def press(page: Page, *keys: str) -> None:
    for key in keys:
        page.keyboard.press(key)


def submit_with(page: Page, key: str, url: str = r"/submit/$") -> int:
    """Press ``key`` and wait for the request it sends (the box this runs on may be busy)."""
    with page.expect_response(re.compile(url)) as response:
        page.keyboard.press(key)
    return response.value.status


def test_a_reviewer_judges_pairs_with_the_keyboard_only(page: Page, live_server, login, reviewer, project, artifacts):
    make_pairs(project)
    login("rita")
    expect(page.locator("[data-pairwise-link]")).to_have_text("Compare pairs")
    page.goto(f"{live_server.url}/projects/{project.slug}/pairwise/")
    sides: dict[int, tuple[str, str]] = {0: wait_for_pair(page, 0)}
    html = page.content()
    assert CHAMPION not in html and CANDIDATE not in html and "support-bot" not in html  # blind

    # The shortcut sheet is one key away.
    press(page, "?")
    expect(page.locator("#shortcuts-dialog")).to_be_visible()
    expect(page.locator("#shortcuts-dialog")).to_contain_text("Both are bad")
    press(page, "Escape")
    expect(page.locator("#shortcuts-dialog")).to_be_hidden()

    # Pair 0: Enter too early shows the error in place; a picks the left; r writes a reason; Enter submits.
    assert submit_with(page, "Enter") == 422
    expect(page.locator(".pair-choices .err")).to_have_text("Pick A, B, tie or both bad.")
    assert wait_for_pair(page, 0) == sides[0]  # the same sides after the re-render
    press(page, "c")
    expect(page.locator("[data-context]").first).to_have_attribute("open", "")
    press(page, "c", "a")
    expect(page.locator('input[name="choice"][value="a"]')).to_be_checked()
    expect(page.locator(".pair-choices .err")).to_have_count(0)  # answered
    press(page, "r")
    page.keyboard.type("Left is complete, b x t 2 s are typed")  # no shortcut fires while typing
    expect(page.locator('input[name="choice"][value="a"]')).to_be_checked()
    page.screenshot(path=str(artifacts / "pairwise.png"))
    assert submit_with(page, "Enter") == 200
    sides[1] = wait_for_pair(page, 1)
    expect(page.locator("[data-notice]")).to_have_text("Saved your choice.")
    expect(page.locator("[data-done]")).to_have_text("1")

    # Pair 1: 2 picks the right.
    press(page, "2")
    assert submit_with(page, "Enter") == 200
    sides[2] = wait_for_pair(page, 2)

    # Pair 2: skipped.
    assert submit_with(page, "s", url=r"/skip/$") == 200
    expect(page.locator("[data-notice]")).to_have_text("Skipped that pair.")
    sides[3] = wait_for_pair(page, 3)

    # Pair 3: t, then a change of mind: x (both bad).
    press(page, "t", "x")
    expect(page.locator('input[name="choice"][value="both_bad"]')).to_be_checked()
    assert submit_with(page, "Enter") == 200
    expect(page.locator("[data-all-done]")).to_contain_text("All done")

    preferences = {
        int(p.task.item_a.external_id.rsplit("-", 1)[1]): p
        for p in Preference.objects.filter(reviewer=reviewer).select_related("task__item_a", "winner_item")
    }
    assert sorted(preferences) == [0, 1, 3]
    for n, p in preferences.items():
        # The versions recorded are the ones this browser showed on each side.
        assert (p.left_model_version, p.right_model_version) == sides[n], n
        assert p.left_item.model_version == sides[n][0] and p.right_item.model_version == sides[n][1]
        assert p.time_on_task_ms and p.time_on_task_ms > 0
    assert (preferences[0].choice, preferences[0].winner_model_version) == ("a", sides[0][0])
    assert preferences[0].loser_model_version == sides[0][1]
    assert preferences[0].reason == "Left is complete, b x t 2 s are typed"
    assert (preferences[1].choice, preferences[1].winner_model_version) == ("b", sides[1][1])
    assert (preferences[3].choice, preferences[3].outcome, preferences[3].winner_item) == ("both_bad", "both_bad", None)
    assert PairwiseTask.objects.get(item_a__external_id=f"{CHAMPION}-2").skips.get().reviewer == reviewer


def test_a_curator_reads_the_results(page: Page, live_server, login, reviewer, reviewer2, curator, project, artifacts):
    make_pairs(project, preferences_per_task=2)
    # rita prefers the candidate throughout; rob prefers it on the first pair only and calls the rest ties.
    for user, decide in (
        (reviewer, lambda n, left: "a" if left == CANDIDATE else "b"),
        (reviewer2, lambda n, left: ("a" if left == CANDIDATE else "b") if n == 0 else "tie"),
    ):
        n = 0
        while (lease := pairwise_next(project=project, user=user)) is not None:
            left = lease.left_item.model_version
            pairwise_submit(slot_id=lease.pk, user=user, lease_token=lease.lease_token, choice=decide(n, left))
            n += 1
    login("cora")
    expect(page.locator("[data-pairwise-link]")).to_be_visible()
    page.locator(".project").first.screenshot(path=str(artifacts / "pairwise-card.png"))
    page.goto(f"{live_server.url}/projects/{project.slug}/pairwise/results/")
    row = page.locator("[data-results] tbody tr")
    expect(row).to_have_count(1)
    expect(row.locator("[data-wins]")).to_have_text("0")
    expect(row.locator("[data-losses]")).to_have_text("5")
    expect(row.locator("[data-ties]")).to_have_text("3")
    expect(row.locator("[data-n]")).to_have_text("4")  # pairs with a decisive judgement, each counted once
    expect(row.locator("[data-win-rate]")).to_contain_text("0%")
    page.screenshot(path=str(artifacts / "pairwise-results.png"))
