"""The whole single sign-on in Chromium: Reviewdesk's sign-in page, the provider's form, and back."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from reviewapp.models import Membership
from tests.fakes.oidc_provider import PROVIDER_PASSWORD

pytestmark = pytest.mark.browser


def provider_sign_in(page: Page, username: str, password: str = PROVIDER_PASSWORD) -> None:
    expect(page.get_by_role("heading", name="Fake provider")).to_be_visible()
    page.get_by_label("Provider username").fill(username)
    page.get_by_label("Provider password").fill(password)
    page.get_by_role("button", name="Continue").click()


def test_sign_in_with_the_provider_lands_on_the_projects_with_the_mapped_role(
    page: Page, live_server, oidc_provider, project
):
    oidc_provider.add_user("carol", email="carol@example.org", groups=["support-curators"])
    page.goto(f"{live_server.url}/login/")

    page.get_by_role("link", name="Sign in with Acme ID").click()
    provider_sign_in(page, "carol")

    expect(page).to_have_url(f"{live_server.url}/")
    card = page.locator(".card.project", has_text="Support assistant")
    expect(card.locator(".badge")).to_have_text("curator")
    assert Membership.objects.get(project=project, user__username="carol").role == "curator"
    # The mapped role is the one the app enforces: the curator's adjudication queue opens.
    card.locator("[data-adjudicate-link]").click()
    expect(page).to_have_url(f"{live_server.url}/projects/{project.slug}/adjudicate/")


def test_sso_refusal_and_local_passwords_off_in_the_browser(page: Page, live_server, oidc_provider, settings, project):
    settings.OIDC_CREATE_USER = False
    settings.LOCAL_PASSWORDS = False
    oidc_provider.add_user("mallory", email="mallory@example.org")
    page.goto(f"{live_server.url}/login/")
    expect(page.locator("input[name=password]")).to_have_count(0)

    page.get_by_role("link", name="Sign in with Acme ID").click()
    provider_sign_in(page, "mallory")

    expect(page.locator("[data-sso-refusal]")).to_contain_text("There is no Reviewdesk account for mallory@example.org")
    page.get_by_role("link", name="Back to the sign-in page").click()
    expect(page.get_by_role("link", name="Sign in with Acme ID")).to_be_visible()
