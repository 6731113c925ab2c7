"""Shared fixtures: personas, a demo-shaped project, and service gating.

Tests marked ``postgres``, ``redis`` or ``browser`` need a real service. When one is missing
(a laptop), they are skipped with the reason and listed at the end; on CI (``CI=true``) a
skipped service test fails the run, so CI always exercises the real parts.

Tests that start Celery workers, a live server or a browser are marked ``slow`` here (others carry
``@pytest.mark.slow`` by hand); ``make test-fast`` leaves them out, ``make test`` runs them all.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SERVICE_MARKERS = {
    "postgres": "REVIEWDESK_SKIP_POSTGRES",
    "redis": "REVIEWDESK_SKIP_REDIS",
    "browser": "REVIEWDESK_SKIP_BROWSER",
}
# Fixtures that make a test slow: real Celery worker processes, the live server, a browser.
SLOW_FIXTURES = {"cluster", "live_server", "page"}
_service_skips: list[str] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from django.db import connection

    if connection.vendor != "postgresql" and not os.environ.get("REVIEWDESK_SKIP_POSTGRES"):
        os.environ["REVIEWDESK_SKIP_POSTGRES"] = f"the test database is {connection.vendor}, not PostgreSQL"
    for item in items:
        for marker, env_key in SERVICE_MARKERS.items():
            reason = os.environ.get(env_key)
            if reason and item.get_closest_marker(marker):
                item.add_marker(pytest.mark.skip(reason=f"[{marker}] {reason}"))
        if item.get_closest_marker("browser") or SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
    # `-m` deselects after this hook, so the marks added above count (`make test-fast`: -m "not slow").


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Note each service test skipped. Under pytest-xdist this runs in the controller with every
    worker's reports too, so the list and the CI rule below see the whole run."""
    if report.skipped and isinstance(report.longrepr, tuple):
        reason = report.longrepr[2].removeprefix("Skipped: ")
        if any(reason.startswith(f"[{marker}] ") for marker in SERVICE_MARKERS):
            _service_skips.append(f"{report.nodeid}: {reason.split('] ', 1)[1]}")


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:  # type: ignore[no-untyped-def]
    if _service_skips:
        terminalreporter.section("service-backed tests skipped")
        for line in _service_skips:
            terminalreporter.write_line(line)
    terminalreporter.write_line(skip_summary(terminalreporter.stats.get("skipped", [])))


def skip_summary(reports: list) -> str:  # type: ignore[type-arg]
    """One line: how many tests were skipped and why, grouped by reason."""
    reasons: dict[str, int] = {}
    for report in reports:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason.removeprefix("Skipped: ")
        reasons[reason] = reasons.get(reason, 0) + 1
    if not reasons:
        return "skipped: 0 tests"
    why = "; ".join(f"{count}: {reason}" for reason, count in sorted(reasons.items(), key=lambda kv: -kv[1]))
    return f"skipped: {sum(reasons.values())} tests ({why})"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if hasattr(session.config, "workerinput"):
        return  # an xdist worker: the controller, which sees every report, decides
    if _service_skips and os.environ.get("CI", "").lower() == "true":
        print(f"\nCI requires every service; {len(_service_skips)} service-backed tests were skipped.")
        session.exitstatus = 1


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    return {**browser_type_launch_args, "executable_path": "/usr/bin/chromium", "args": CHROMIUM_ARGS}


# --- personas --------------------------------------------------------------------------------


@pytest.fixture
def project(db):  # type: ignore[no-untyped-def]
    from tests.factories import ProjectFactory, standard_questions

    project = ProjectFactory(slug="support", name="Support assistant")
    standard_questions(project)
    return project


@pytest.fixture
def reviewer(project):  # type: ignore[no-untyped-def]
    from tests.factories import member

    return member(project, "reviewer", username="rita")


@pytest.fixture
def reviewer2(project):  # type: ignore[no-untyped-def]
    from tests.factories import member

    return member(project, "reviewer", username="rob")


@pytest.fixture
def curator(project):  # type: ignore[no-untyped-def]
    from tests.factories import member

    return member(project, "curator", username="cora")


@pytest.fixture
def engineer(project):  # type: ignore[no-untyped-def]
    from tests.factories import member

    return member(project, "engineer", username="eddie")


@pytest.fixture
def outsider(db):  # type: ignore[no-untyped-def]
    from tests.factories import UserFactory

    return UserFactory(username="otto")


@pytest.fixture(autouse=True)
def _empty_cache():  # type: ignore[no-untyped-def]
    """Each test starts with an empty cache (SQLite reuses primary keys, so cached keys would leak)."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def cluster(tmp_path):  # type: ignore[no-untyped-def]
    """Real Celery workers on a private Redis queue (``cluster.start_worker(name)``), this process's
    producer pointed at it, and a tmp MLflow store (``cluster.mlflow_uri``); all stopped afterwards."""
    from tests.workers import cluster_running

    with cluster_running(tmp_path) as started:
        yield started


@pytest.fixture
def oidc_provider(settings):  # type: ignore[no-untyped-def]
    """A local OpenID provider (tests/fakes/oidc_provider.py) on a free port, and Reviewdesk's SSO
    settings pointed at it: accounts made on first sign-in, ``groups`` mapped to Support's roles."""
    from reviewapp.sso.discovery import discovery_forget
    from tests.fakes.oidc_provider import FakeOidcProvider

    with FakeOidcProvider().running() as provider:
        settings.OIDC_ISSUER = provider.url
        settings.OIDC_RP_CLIENT_ID = provider.client_id
        settings.OIDC_RP_CLIENT_SECRET = provider.client_secret
        settings.OIDC_PROVIDER_NAME = "Acme ID"
        settings.OIDC_CREATE_USER = True
        settings.OIDC_ROLE_CLAIM = "groups"
        settings.OIDC_ROLE_MAP = "support-curators=support:curator,support-reviewers=support:reviewer"
        discovery_forget()
        yield provider
        discovery_forget()
