"""Browser tests: Chromium (from the root conftest) against pytest-django's live_server."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.factories import PASSWORD

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict) -> dict:
    return {**browser_context_args, "viewport": {"width": 1440, "height": 1000}}


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def login(page, live_server):  # type: ignore[no-untyped-def]
    """Log in through the login form, with the keyboard only."""

    def _login(username: str, password: str = PASSWORD) -> None:
        page.goto(f"{live_server.url}/login/")
        # The username field has autofocus, which Chromium applies at its next rendering step, not
        # by the load event: keys typed before it land on the page and are lost (seldom, under load).
        expect(page.locator("input[name=username]")).to_be_focused()
        page.keyboard.type(username)
        page.keyboard.press("Tab")
        page.keyboard.type(password)
        with page.expect_navigation():
            page.keyboard.press("Enter")
        # Signed in, or why not (a refused sign-in comes back to /login/ with its reason).
        assert page.url == f"{live_server.url}/", (page.url, page.locator(".notice-error").all_inner_texts())

    return _login
