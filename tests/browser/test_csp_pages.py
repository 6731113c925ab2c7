"""Every page under the Content-Security-Policy in Chromium: each role visits its pages, with demo-like
data (reviews, a pairwise comparison, adjudications, a dataset, model versions, a promotion, an
evaluation run, tokens, the audit log, the admin, the API docs), and no page reports a CSP violation
(a ``securitypolicyviolation`` event or a console message) or fails to load."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Page

from evaluations.models import RunChunk
from evaluations.services.chunks import run_chunk_execute
from evaluations.services.runs import run_start
from evaluations.services.suites import suite_create
from pipelines.datasets.versions import dataset_create, dataset_version_create
from pipelines.models import Environment
from pipelines.releases.promotion import promotion_request
from reviewapp.models import Adjudication, Item, Review
from reviewapp.services.flags import flag_create
from reviewapp.services.ingest import items_ingest
from reviewapp.services.tokens import api_token_create
from tests.factories import PASSWORD, UserFactory, item_row, member
from tests.pipelines.datasets_helpers import add_preference, build_curated
from tests.pipelines.promotion_fixtures import versions

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Recorded from the first script that runs in each document (Playwright injects it outside the CSP).
LISTEN = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber}`);
});
"""


def sign_in(browser: Browser, base: str, username: str | None) -> tuple[Page, list[str]]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.add_init_script(LISTEN)
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: console.append(f"page error: {e}"))
    if username:
        page.goto(f"{base}/login/")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", PASSWORD)
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/")
    return page, console


def visit_all(page: Page, console: list[str], base: str, paths: list[str]) -> list[str]:
    problems = []
    for path in paths:
        console.clear()
        response = page.goto(base + path)
        page.wait_for_load_state("networkidle")
        status = response.status if response else 0
        if status >= 400:
            problems.append(f"{path}: HTTP {status}")
        if response is not None and "script-src 'self'" not in (response.headers.get("content-security-policy") or ""):
            problems.append(f"{path}: no Content-Security-Policy header")
        violations = page.evaluate("window.__csp || []")
        csp_console = [m for m in console if "Content Security Policy" in m or "page error" in m]
        problems += [f"{path}: {v}" for v in violations + csp_console]
    return problems


def test_no_page_violates_the_content_security_policy(browser: Browser, live_server, project, settings) -> None:
    settings.API_DOCS_PUBLIC = False
    reviewer = member(project, "reviewer", username="rita")
    reviewer2 = member(project, "reviewer", username="rob")
    curator = member(project, "curator", username="cora")
    engineer = member(project, "engineer", username="eddie")
    admin = member(project, "admin", username="ada")
    UserFactory(username="root", is_staff=True, is_superuser=True)
    # Reviews, an adjudicated item, a dataset with a version, a pairwise judgement.
    build_curated(project, reviewer, reviewer2, curator)
    add_preference(project, reviewer)
    items_ingest(
        project=project,
        rows=[
            item_row(
                9,
                request="Spoof \u202edecnac\u202c?",
                response="A **markdown** answer\n\n| a | b |\n|:-|-:|\n| 1 | 2 |",
            )
        ],
    )
    dataset = dataset_create(project=project, user=curator, name="Curated answers")
    dataset_version_create(dataset=dataset, user=curator)
    adjudicated = Adjudication.objects.filter(project=project).first()
    review = Review.objects.filter(reviewer=reviewer).first()
    api_token_create(user=reviewer, name="laptop", scopes=["review"])
    # An open flag with an untrusted note, for the curation pages.
    flag_create(item=review.item, user=reviewer, kind="unsafe", note="<script>alert(1)</script>")
    # Model versions, a local environment and a pending promotion.
    v1, v2 = versions(project, 1, 2)
    environment = Environment.objects.create(project=project, name="staging", alias="challenger", local_port=5999)
    promotion = promotion_request(actor=engineer, model_version=v2, environment=environment, reason="Better evals")

    base = live_server.url
    slug = project.slug
    problems: list[str] = []
    # The audit log first: an evaluation run's audit event still breaks that page (issue 11 §4, the lead's fix).
    page, console = sign_in(browser, base, curator.username)
    problems += visit_all(
        page,
        console,
        base,
        [
            "/",
            f"/projects/{slug}/audit/",
            f"/projects/{slug}/adjudicate/",
            f"/projects/{slug}/adjudicate/{adjudicated.item_id}/" if adjudicated else f"/projects/{slug}/adjudicate/",
            f"/projects/{slug}/assignments/",
            f"/projects/{slug}/schema/",
            f"/projects/{slug}/dashboard/",
            f"/projects/{slug}/reviewers/",
            f"/projects/{slug}/pairwise/results/",
            f"/projects/{slug}/datasets/",
            f"/datasets/{dataset.pk}/",
            f"/projects/{slug}/deliveries/",
            f"/projects/{slug}/curate/",
            f"/projects/{slug}/curate/items/{review.item_id}/",
            f"/projects/{slug}/pairwise/new/",
        ],
    )
    # An evaluation run, scored inline as a worker would.
    suite = suite_create(project=project, name="Core", scorers=["exact_match", "pii"], config={}, actor=None)
    run = run_start(project=project, suite_version=suite.versions.get(), actor=engineer)
    for chunk_id in RunChunk.objects.filter(run=run).values_list("pk", flat=True):
        run_chunk_execute(chunk_id=chunk_id)
    other = run_start(project=project, suite_version=suite.versions.get(), actor=engineer)

    page, console = sign_in(browser, base, reviewer.username)
    problems += visit_all(
        page,
        console,
        base,
        [
            "/",
            f"/projects/{slug}/review/",
            f"/projects/{slug}/pairwise/",
            "/reviews/",
            f"/reviews/{review.pk}/",
            "/settings/tokens/",
            f"/projects/{slug}/dashboard/",
        ],
    )
    page, console = sign_in(browser, base, engineer.username)
    problems += visit_all(
        page,
        console,
        base,
        [
            "/evaluations/",
            f"/evaluations/projects/{slug}/",
            f"/evaluations/projects/{slug}/suites/{suite.pk}/",
            f"/evaluations/runs/{run.pk}/",
            f"/evaluations/runs/compare/?a={run.pk}&b={other.pk}",
            f"/projects/{slug}/models/",
            f"/projects/{slug}/models/{v1.version}/",
            f"/projects/{slug}/promotions/",
            f"/promotions/{promotion.pk}/",
            "/api/docs/",
        ],
    )
    # The docs page really drew the API (its start-up script is a file, allowed by the policy).
    page.goto(f"{base}/api/docs/")
    page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)
    page, console = sign_in(browser, base, admin.username)
    problems += visit_all(
        page,
        console,
        base,
        [f"/projects/{slug}/gates/", f"/projects/{slug}/assignments/", f"/projects/{slug}/members/"],
    )
    page, console = sign_in(browser, base, "root")
    problems += visit_all(
        page, console, base, ["/admin/", "/admin/reviewapp/auditevent/", "/admin/reviewapp/item/", "/instance/"]
    )
    page, console = sign_in(browser, base, None)
    problems += visit_all(page, console, base, ["/login/"])
    # The listener hears a real violation: an injected inline script is blocked and reported.
    page.evaluate(
        "() => { const s = document.createElement('script'); s.textContent = 'window.ran = 1';"
        " document.body.append(s); }"
    )
    page.wait_for_timeout(200)
    assert page.evaluate("window.ran") is None
    assert any("script-src" in v for v in page.evaluate("window.__csp"))
    assert Item.objects.filter(project=project).count() >= 5
    assert problems == []
