"""Browser tests: Chromium (from the root conftest) against pytest-django's live_server."""

from __future__ import annotations

from pathlib import Path

import pytest

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
        page.keyboard.type(username)  # the username field has autofocus
        page.keyboard.press("Tab")
        page.keyboard.type(password)
        page.keyboard.press("Enter")
        page.wait_for_url(f"{live_server.url}/")

    return _login
