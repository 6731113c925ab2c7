"""Blind review in a real Chromium: a reviewer's page names no model, version, trace or external id
until an admin turns ``show_model_to_reviewers`` on from the queue page."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Page, expect

from reviewapp.models import AuditEvent, Project
from reviewapp.services.ingest import items_ingest
from tests.factories import PASSWORD, item_row, member

pytestmark = pytest.mark.browser

SECRETS = ("support-bot-secret", "v-secret-7", "tr-secret", "ext-secret", "src-secret")


def ingest_identified(project: Project) -> None:
    items_ingest(
        project=project,
        rows=[
            item_row(
                n,
                external_id=f"ext-secret-{n}",
                model_name="support-bot-secret",
                model_version="v-secret-7",
                trace_id=f"tr-secret-{n}",
                source="src-secret",
                metadata={"model_endpoint": "ep-secret"},
            )
            for n in range(2)
        ],
    )


def assert_page_is_blind(page: Page) -> None:
    html = page.content()  # markup too: attributes and hidden elements
    for secret in SECRETS:
        assert secret not in html
    expect(page.locator("[data-model]")).to_have_count(0)


def test_a_reviewer_sees_no_model_until_an_admin_shows_it(
    page: Page, browser: Browser, live_server, login, reviewer, project
):
    ingest_identified(project)
    admin = member(project, "admin", username="ada")
    login("rita")
    page.goto(f"{live_server.url}/projects/support/review/")
    expect(page.locator("[data-review-form] .question")).to_contain_text("(0)")
    assert_page_is_blind(page)
    expect(page.locator(".review-title .meta")).to_contain_text("item #")

    # The next item, swapped in by htmx after a keyboard submit, is blind too.
    page.locator('[data-review-form] fieldset[data-key="correct"]').wait_for()
    for key in ("y", "4", "Enter"):
        page.keyboard.press(key)
    expect(page.locator("[data-review-form] .question")).to_contain_text("(1)")
    assert_page_is_blind(page)

    # An admin turns blind review off on the queue page, in their own browser session.
    admin_context = browser.new_context(viewport={"width": 1440, "height": 1000})
    admin_page = admin_context.new_page()
    admin_page.goto(f"{live_server.url}/login/")
    admin_page.fill("input[name=username]", admin.username)
    admin_page.fill("input[name=password]", PASSWORD)
    admin_page.keyboard.press("Enter")
    admin_page.wait_for_url(f"{live_server.url}/")
    admin_page.goto(f"{live_server.url}/projects/support/assignments/")
    settings = admin_page.locator("[data-settings-form]")
    settings.locator("input[name=show_model_to_reviewers]").check()
    settings.locator("button[type=submit]").click()
    expect(admin_page.locator("body")).to_contain_text("Queue settings saved.")
    admin_context.close()
    assert Project.objects.get(pk=project.pk).show_model_to_reviewers is True
    assert AuditEvent.objects.filter(action="project.queue_settings").exists()

    page.reload()
    expect(page.locator("[data-model]")).to_have_text("support-bot-secret · vv-secret-7")
    expect(page.locator(".review-title .meta")).to_contain_text("ext-secret-1")
