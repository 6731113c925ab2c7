"""People in a real Chromium: an admin invites, copies the link, a new person accepts it in a fresh
browser (no account yet) and reaches the review queue; the admin changes a role; the instance page."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Page, expect

from reviewapp.models import Membership
from tests.factories import make_items, member

pytestmark = pytest.mark.browser

STRONG = "correct horse battery staple 42"


def test_invite_copy_accept_as_new_user_and_change_a_role(
    page: Page, browser: Browser, live_server, login, project, reviewer
):
    member(project, "admin", username="ada")
    make_items(project, 2)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    login("ada")
    page.locator("[data-members-link]").click()
    expect(page.locator("h1")).to_contain_text("Members")

    form = page.locator("[data-invite-form]")
    form.locator("select[name=role]").select_option("reviewer")
    form.get_by_role("button", name="Create invitation link").click()
    created = page.locator("[data-invitation-created]")
    expect(created).to_be_visible()
    created.get_by_role("button", name="Copy").click()
    expect(created.get_by_role("button", name="Copied")).to_be_visible()
    link = page.evaluate("navigator.clipboard.readText()")
    assert link.startswith(f"{live_server.url}/invite/inv_")
    assert link == page.locator("#invitation-link").input_value()

    # A new person, in a browser that has never signed in.
    fresh = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        guest = fresh.new_page()
        guest.goto(link)
        expect(guest.locator("h1")).to_contain_text("Join Support assistant")
        guest.fill("input[name=username]", "nina")
        guest.fill("input[name=password]", "nina")
        guest.get_by_role("button", name="Create account and join").click()
        expect(guest.locator(".err").first).to_be_visible()  # Django's validators refuse a weak password
        guest.fill("input[name=password]", STRONG)
        guest.get_by_role("button", name="Create account and join").click()
        expect(guest.locator("[data-review-form]")).to_be_visible()
        assert guest.url == f"{live_server.url}/projects/support/review/"
        expect(guest.locator(".who")).to_have_text("nina")
        # The link worked once.
        guest.goto(link)
        expect(guest.locator("[data-invitation-unusable]")).to_contain_text("accepted")
    finally:
        fresh.close()
    assert Membership.objects.get(user__username="nina").role == "reviewer"

    # Back to the admin: the new member is listed; make rita a curator.
    page.reload()
    expect(page.locator('[data-member="nina"]')).to_be_visible()
    expect(page.locator("[data-invitations]")).to_contain_text("accepted by nina")
    row = page.locator('[data-member="rita"]')
    row.locator("select[name=role]").select_option("curator")
    row.get_by_role("button", name="Change").click()
    expect(page.locator(".notice-success")).to_contain_text("rita is now curator")
    expect(page.locator('[data-member="rita"] select[name=role]')).to_have_value("curator")
    assert Membership.objects.get(user=reviewer).role == "curator"

    # The last admin cannot demote themselves.
    page.locator('[data-member="ada"] select[name=role]').select_option("reviewer")
    page.locator('[data-member="ada"]').get_by_role("button", name="Change").click()
    expect(page.locator(".notice-error")).to_contain_text("last admin")
    assert Membership.objects.get(user__username="ada").role == "admin"


def test_instance_admin_deactivates_a_user(page: Page, live_server, login, project, reviewer, django_user_model):
    django_user_model.objects.create_superuser("root", "root@example.com", "pw-for-tests-1")
    login("root")
    page.locator("[data-instance-link]").click()
    row = page.locator('[data-user="rita"]')
    expect(row).to_contain_text("Support assistant: reviewer")
    row.get_by_role("button", name="Deactivate").click()
    expect(page.locator('[data-user="rita"]')).to_contain_text("deactivated")
    reviewer.refresh_from_db()
    assert not reviewer.is_active
