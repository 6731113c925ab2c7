"""The review UI in a real Chromium: keyboard-only reviewing, inert hostile content, CSRF, page weight."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from reviewapp.models import Assignment, Project, Review
from reviewapp.services.projects import question_create
from reviewapp.services.queue import queue_next
from tests.factories import make_items

pytestmark = pytest.mark.browser

XSS = '<script>window.__xss=1</script> <img src=x onerror="window.__xss=1"> [click](javascript:window.__xss=1)'
HOSTILE_RESPONSE = f"""Intro with {XSS}

<div onclick="window.__xss=1">raw html block</div>

<a href="javascript:window.__xss=1">raw link</a>

| column | value |
|--------|-------|
| a      | `<script>window.__xss=1</script>` |

```html
<script>window.__xss=1</script>
```
"""

RICH_RESPONSE = """To reset your password:

1. Open **Settings → Account**.
2. Choose *Reset password* and follow the link we email you.

| Plan | Reset link valid for |
|------|----------------------|
| Free | 1 hour |
| Team | 24 hours |

Admins can force a reset with `reviewdesk users reset <email>`.
"""
RICH_CONTEXT = [
    {
        "doc_uri": "docs/account/passwords.md",
        "content": "Passwords are reset from Settings → Account. The reset link is valid for one hour on the Free "
        "plan and for 24 hours on Team plans.",
    },
    {"doc_uri": "docs/billing/invoices.md", "content": "Invoices are sent on the first day of each month."},
]


def active_key(page: Page) -> str:
    return page.locator("[data-review-form] .is-active").first.get_attribute("data-key") or ""


def wait_for_item(page: Page, n: int) -> None:
    """Wait until item ``n`` is shown and the keyboard handler has picked its first question."""
    expect(page.locator("[data-review-form] .question")).to_contain_text(f"({n})")
    expect(page.locator('[data-review-form] fieldset[data-key="correct"]')).to_have_class(re.compile("is-active"))


def press(page: Page, *keys: str) -> None:
    for key in keys:
        page.keyboard.press(key)


def test_review_three_items_with_the_keyboard_only(page: Page, live_server, login, reviewer, project, artifacts):
    question_create(project=project, key="ideal", title="Expected response", kind="expected_response", required=False)
    question_create(
        project=project,
        key="ctx",
        title="Is each retrieved chunk relevant?",
        kind="context_relevance",
        options={"min": 0, "max": 2, "min_label": "off topic", "max_label": "relevant"},
    )
    make_items(project, 3, response=RICH_RESPONSE, retrieved_context=RICH_CONTEXT)
    login("rita")
    page.goto(f"{live_server.url}/projects/{project.slug}/review/")
    wait_for_item(page, 0)

    # The shortcut sheet and the guidelines are one key away.
    press(page, "?")
    expect(page.locator("#shortcuts-dialog")).to_be_visible()
    press(page, "Escape")
    expect(page.locator("#shortcuts-dialog")).to_be_hidden()
    press(page, "g")
    expect(page.locator("#guidelines-dialog")).to_contain_text("Rate correctness first.")
    press(page, "Escape")

    # Item 0: digits answer the highlighted question and move on, chunk by chunk; Enter submits.
    press(page, "y", "4")
    assert active_key(page) == "issue"
    page.screenshot(path=str(artifacts / "review-page.png"), full_page=True)
    press(page, "1", "j", "2", "0")
    assert active_key(page) == ""  # the comment
    page.evaluate(
        """() => {
        const t = (window.__timing = {});
        document.addEventListener("htmx:beforeRequest", () => { t.start = performance.now(); }, {once: true});
        document.addEventListener("htmx:afterSwap", () => { t.end = performance.now(); }, {once: true});
    }"""
    )
    press(page, "Enter")
    wait_for_item(page, 1)
    round_trip_ms = page.evaluate("window.__timing.end - window.__timing.start")
    expect(page.locator("[data-notice]")).to_contain_text("Saved your review")

    # Item 1: e edits the expected response, Esc leaves it, c comments, Ctrl+Enter submits from a text field.
    press(page, "n", "2", "2", "e", "Control+a")
    page.keyboard.type("Use the Reset link.")
    press(page, "Escape")
    assert active_key(page) == "ideal"
    press(page, "j", "1", "1", "c")
    page.keyboard.type("too vague, yes no 1 2 s")  # shortcuts do not fire while typing
    press(page, "Control+Enter")
    wait_for_item(page, 2)

    # Item 2: j/k move between questions; Enter too early shows the errors in place, answers kept.
    press(page, "j", "5", "k", "k", "y", "Enter")
    expect(page.locator('[data-stop-group="rel"] .err')).to_contain_text("Rate every retrieved chunk.")
    expect(page.locator('input[name="answers.helpfulness"][value="5"]')).to_be_checked()
    expect(page.locator(".chunk").first).to_have_class(re.compile("is-active"))  # the first error is highlighted
    press(page, "2", "2", "Enter")
    expect(page.locator(".all-done")).to_contain_text("All done")

    reviews = {r.item.external_id: r for r in Review.objects.filter(reviewer=reviewer).select_related("item")}
    assert len(reviews) == 3
    assert reviews["ext-0"].answers == {
        "correct": True,
        "helpfulness": 4,
        "issue": "none",
        "ctx": [2, 0],  # the expected response was left untouched, so none was stored
    }
    assert reviews["ext-1"].answers == {
        "correct": False,
        "helpfulness": 2,
        "issue": "wrong",
        "ideal": "Use the Reset link.",
        "ctx": [1, 1],
    }
    assert reviews["ext-1"].comment == "too vague, yes no 1 2 s"
    assert reviews["ext-2"].answers == {"correct": True, "helpfulness": 5, "ctx": [2, 2]}
    assert all(r.time_on_task_ms and r.time_on_task_ms > 0 for r in reviews.values())
    print(f"\nsubmit -> next item swapped in: {round_trip_ms:.0f} ms (one request)")
    assert round_trip_ms < 1000


def test_hostile_content_is_inert(page: Page, live_server, login, reviewer, project):
    context = [{"doc_uri": "javascript:window.__xss=1", "content": XSS}, {"doc_uri": "<b>x</b>", "content": "ok"}]
    make_items(project, 2, request=f"Question {XSS}", response=HOSTILE_RESPONSE, retrieved_context=context)
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    login("rita")
    page.goto(f"{live_server.url}/projects/{project.slug}/review/")

    def assert_inert() -> None:
        assert page.evaluate("typeof window.__xss") == "undefined"
        response = page.locator("[data-response]")
        expect(response).to_contain_text("<script>window.__xss=1</script>")  # shown as text
        expect(response).to_contain_text("raw html block")
        assert response.locator("script, img, iframe, [onerror], [onclick]").count() == 0
        assert page.locator("[onerror], [onclick], [href^='javascript' i]").count() == 0
        assert page.evaluate("document.querySelectorAll('script:not([src])').length") == 0
        expect(response.locator("table")).to_have_count(1)
        expect(response.locator("pre code")).to_contain_text("<script>window.__xss=1</script>")
        expect(page.locator(".chunk-text").first).to_have_text(XSS)

    assert_inert()
    page.locator("[data-response]").get_by_text("click").first.click()
    page.locator("[data-response]").get_by_text("raw link").click()
    page.locator("[data-response]").get_by_text("raw html block").click()
    assert_inert()
    # The next item arrives through an htmx swap, which must not run scripts either.
    press(page, "y", "3", "Enter")
    expect(page.locator("[data-notice]")).to_contain_text("Saved your review")
    assert_inert()
    assert dialogs == []


def test_htmx_post_with_a_wrong_csrf_token_is_refused(page: Page, live_server, login, reviewer, project):
    make_items(project, 2)
    login("rita")
    page.goto(f"{live_server.url}/projects/{project.slug}/review/")
    wait_for_item(page, 0)
    # A forged request: both places Django looks for the token carry a well-formed wrong one.
    page.evaluate(
        """() => {
        const wrong = "a".repeat(64);
        document.body.setAttribute("hx-headers", JSON.stringify({"x-csrftoken": wrong}));
        for (const input of document.querySelectorAll("[name=csrfmiddlewaretoken]")) input.value = wrong;
    }"""
    )
    press(page, "y", "4")
    with page.expect_response(re.compile(r"/submit/$")) as refused:
        press(page, "Enter")
    assert refused.value.status == 403
    expect(page.locator("#toast")).to_contain_text("refused")
    expect(page.locator("[data-review-form] .question")).to_contain_text("(0)")  # nothing swapped
    assert not Review.objects.exists()

    page.reload()  # the real token again
    wait_for_item(page, 0)
    press(page, "y", "4")
    with page.expect_response(re.compile(r"/submit/$")) as accepted:
        press(page, "Enter")
    assert accepted.value.status == 200
    wait_for_item(page, 1)
    assert Review.objects.filter(reviewer=reviewer).count() == 1


def test_review_page_weighs_at_most_150_kb(page: Page, live_server, login, reviewer, project):
    make_items(project, 1, response="A typical answer. " * 40)
    login("rita")
    responses = []
    page.on("response", lambda r: responses.append(r))
    page.goto(f"{live_server.url}/projects/{project.slug}/review/")
    page.wait_for_load_state("networkidle")
    sizes = {r.url: len(r.body()) for r in responses}
    total = sum(sizes.values())
    print(f"\nreview page transfer: {total / 1024:.1f} KB in {len(sizes)} responses: {sizes}")
    assert {urlsplit(url).netloc for url in sizes} == {urlsplit(live_server.url).netloc}  # no third-party assets
    assert any(url.endswith(".css") for url in sizes) and any("htmx" in url for url in sizes)
    assert total <= 150 * 1024


def test_heartbeat_reports_a_lost_lease(page: Page, live_server, login, reviewer, reviewer2, project):
    Project.objects.filter(pk=project.pk).update(lease_seconds=30)  # heartbeat every 10 s
    make_items(project, 2)
    login("rita")
    page.goto(f"{live_server.url}/projects/{project.slug}/review/")
    wait_for_item(page, 0)
    Assignment.objects.filter(reviewer=reviewer).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert queue_next(project=project, user=reviewer2).item.external_id == "ext-0"
    with page.expect_response(re.compile(r"/renew/$"), timeout=15_000) as renew:
        pass
    assert renew.value.status == 286  # htmx stops polling
    expect(page.locator("#lease-status")).to_contain_text("another reviewer has this item now")
