"""The model version page in Chromium: the pipeline diff, the evidence and the gate checklist; hostile text is inert."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from pipelines.models import Environment, PromotionGate
from tests.factories import member
from tests.pipelines.evidence_helpers import finished_run, model_version, reviews_for, suite

pytestmark = pytest.mark.browser

HOSTILE = (
    "You are Lumen's support assistant.\n"
    "<script>window.pwned = 1</script>\n"
    '<img src=x onerror="window.pwned = 2">\n'
    "{context}\n{question}"
)


def test_an_engineer_reads_the_diff_evidence_and_checklist(page: Page, live_server, login, project, artifacts) -> None:
    engineer = member(project, "engineer", username="erin")
    reviewer = member(project, "reviewer", username="rhea")
    project.mlflow_registered_model = "support-bot"
    project.save()
    champion = model_version(
        project,
        "1",
        params={"top_k": "1", "llm_endpoint": "small"},
        prompt_template="You are Lumen's support assistant.\n{context}\n{question}",
    )
    model_version(
        project,
        "2",
        params={"top_k": "3", "llm_endpoint": "small"},
        prompt_template=HOSTILE,
        description='<a href="javascript:window.pwned=3">click</a>',
    )
    Environment.objects.create(project=project, name="production", alias="champion", current_version=champion)
    reviews_for(project, "2", [{"correct": True, "helpfulness": 5}] * 18 + [{"correct": False}] * 2, reviewer)
    reviews_for(project, "1", [{"correct": True}] * 10 + [{"correct": False}] * 10, reviewer)
    core = suite(project)
    run = finished_run(project, core, version="2", scores={"correctness": [1.0, 1.0, 0.0, 1.0]})
    PromotionGate.objects.create(project=project, kind="min_items", params={"count": 10})
    PromotionGate.objects.create(project=project, kind="min_pass_rate", params={"threshold": 0.95})
    PromotionGate.objects.create(
        project=project, kind="suite_metric", params={"suite_id": core.pk, "metric": "correctness", "threshold": 0.7}
    )
    login(engineer.username)

    page.goto(f"{live_server.url}/projects/{project.slug}/models/")
    page.get_by_role("link", name="v2").click()
    page.wait_for_url(f"{live_server.url}/projects/{project.slug}/models/2/")

    diff = page.get_by_role("region", name="Prompt template diff")
    expect(diff).to_be_visible()
    expect(diff.locator('[data-kind="add"]')).to_have_count(2)
    expect(diff.locator('[data-kind="add"]').first).to_contain_text("<script>window.pwned = 1</script>")
    expect(diff.locator('[data-kind="same"]')).to_have_count(3)
    expect(page.locator('[data-param="top_k"]')).to_have_class("param-changed")
    expect(page.locator('[data-param="llm_endpoint"]')).not_to_have_class("param-changed")

    expect(page.locator('[data-row="pass-correct"]')).to_contain_text("90%")
    expect(page.locator('[data-row="pass-correct"]')).to_contain_text("n=20 items (20 reviews), 95% CI 70\u201397%")
    expect(page.locator('[data-row="pass-correct"] td.champion')).to_contain_text("50%")

    checklist = page.locator('[data-gate-report="production"]')
    expect(checklist).to_be_visible()
    expect(checklist.locator(".check-line")).to_have_count(3)
    expect(checklist.locator('.check-line[data-passed="true"]')).to_have_count(2)
    failing = checklist.locator('.check-line[data-passed="false"]')
    expect(failing).to_contain_text("✗")
    expect(failing).to_contain_text("lower bound")
    expect(checklist.get_by_role("link", name=f"Run #{run.pk}")).to_have_attribute(
        "href", f"/evaluations/runs/{run.pk}/"
    )

    # Nothing from the registry ran: no script, no handler, no javascript: link.
    assert page.evaluate("window.pwned") is None
    assert page.locator("[data-description] a").count() == 0
    expect(page.locator("[data-description]")).to_contain_text('<a href="javascript:window.pwned=3">click</a>')
    page.screenshot(path=str(artifacts / "model_version_page.png"), full_page=True)
