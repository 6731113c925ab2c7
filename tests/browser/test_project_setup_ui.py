"""A team sets a project up in the browser: create it (with the guidelines' live preview), change
reviews per item and watch the background sync finish, and a 403 page that says why."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from reviewapp.models import Assignment, AuditEvent, Item, Membership, Project
from tests.factories import UserFactory, make_items, member

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_instance_admin_creates_a_project_through_the_page(page: Page, live_server: Any, login: Any) -> None:
    UserFactory(username="root", is_superuser=True, is_staff=True)
    login("root")
    page.click("[data-nav-new-project]")
    expect(page.locator("h1")).to_have_text("New project")
    page.fill("input[name=name]", "Billing bot")
    page.fill("input[name=slug]", "billing")
    page.fill("textarea[name=description]", "Answers about invoices.")
    page.locator("textarea[name=guidelines]").press_sequentially("Check **amounts** first.")
    # The preview is rendered by the server's sanitising renderer, as reviewers will read it.
    expect(page.locator("[data-guidelines-preview] strong")).to_have_text("amounts")
    page.fill("input[name=reviews_per_item]", "2")
    page.check("input[name=queue_mode][value=assigned]")
    page.fill("input[name=lease_seconds]", "900")
    page.fill("input[name=gold_rate]", "0.1")
    page.check("input[name=self_adjudication]")
    page.click("[data-project-form] button[type=submit]")
    expect(page).to_have_url(re.compile(r"/projects/billing/settings/$"))
    expect(page.locator(".messages")).to_contain_text("Billing bot is ready.")

    project = Project.objects.get(slug="billing")
    assert (project.reviews_per_item, project.queue_mode, project.lease_seconds, project.gold_rate) == (
        2,
        "assigned",
        900,
        0.1,
    )
    assert project.self_adjudication and not project.show_model_to_reviewers
    assert project.guidelines == "Check **amounts** first."
    assert Membership.objects.get(project=project, user__username="root").role == "admin"
    assert AuditEvent.objects.filter(project=project, action="project.create").count() == 1


def test_a_bad_slug_is_refused_with_its_reason(page: Page, live_server: Any, login: Any, project: Project) -> None:
    UserFactory(username="root", is_superuser=True, is_staff=True)
    login("root")
    page.goto(f"{live_server.url}/projects/new/")
    page.fill("input[name=name]", "Another support bot")
    page.fill("input[name=slug]", "support")
    page.click("[data-project-form] button[type=submit]")
    expect(page.locator("[data-error=slug]")).to_have_text("A project with this slug exists; choose another.")


@pytest.mark.redis
@pytest.mark.postgres
def test_an_admin_changes_reviews_per_item_and_watches_the_sync_finish(
    page: Page, live_server: Any, login: Any, project: Project, cluster: Any
) -> None:
    cluster.start_worker("sync")
    make_items(project, 30)
    member(project, "admin", username="ada")
    login("ada")
    page.click("[data-settings-link]")
    expect(page.locator("h1")).to_contain_text("Support assistant")
    page.fill("input[name=reviews_per_item]", "3")
    page.click("[data-project-form] button[type=submit]")
    expect(page.locator(".messages")).to_contain_text("Bringing 30 items in line with 3 reviews each.")
    # The progress bar polls until the worker is done.
    expect(page.locator("[data-sync]")).to_have_attribute("data-sync-status", "done", timeout=60_000)
    expect(page.locator("[data-sync-done]")).to_have_text("30 of 30 items")
    expect(page.locator("[data-sync] [role=progressbar]")).to_have_attribute("aria-valuenow", "100")
    assert {Assignment.objects.filter(item=item).count() for item in Item.objects.filter(project=project)} == {3}


def test_a_403_page_says_why_and_the_navigation_shows_what_the_role_opens(
    page: Page, live_server: Any, login: Any, project: Project, reviewer: Any
) -> None:
    login(reviewer.username)
    expect(page.locator("nav[aria-label=Main]")).to_contain_text("My reviews")
    expect(page.locator("[data-nav-evaluations]")).to_have_count(0)
    response = page.goto(f"{live_server.url}/projects/support/adjudicate/")
    assert response is not None and response.status == 403
    expect(page.locator("[data-reason]")).to_have_text(
        "Your role on Support assistant is reviewer; curating needs curator or admin."
    )
    expect(page.locator("nav[aria-label=Main]")).to_be_visible()
