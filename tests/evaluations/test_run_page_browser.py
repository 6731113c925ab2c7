"""The run page in a real Chromium: the progress bar follows the run by htmx polling, which stops at the end."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from evaluations.models import RunChunk
from evaluations.services.chunks import run_chunk_execute
from evaluations.services.runs import run_start
from evaluations.services.suites import suite_create
from reviewapp.models import Item
from tests.evaluations.conftest import curate, ingest, rag_row
from tests.factories import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def test_the_progress_bar_follows_the_run_and_polling_stops(
    page: Page, live_server, project, rag_questions, engineer, reviewer
) -> None:
    ingest(project, [rag_row(n, metadata={"verdict": n % 3 != 0, "latency_ms": 300 + n}) for n in range(6)])
    expected = "Open Settings, then Security, and choose Reset password."
    for item in Item.objects.order_by("id")[:4]:
        curate(item, reviewer, {"correct": True, "expected": expected})
    suite = suite_create(
        project=project,
        name="Core",
        scorers=["test_judge", "exact_match", "lexical_groundedness", "pii", "latency"],
        config={"chunk_size": 2},
        actor=None,
    )
    run = run_start(project=project, suite_version=suite.versions.get(), actor=engineer)
    chunks = list(RunChunk.objects.filter(run=run).order_by("index").values_list("pk", flat=True))

    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", engineer.username)
    page.fill("input[name=password]", PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/")
    polls: list[str] = []
    page.on("request", lambda request: polls.append(request.url) if request.url.endswith("/status/") else None)
    page.goto(f"{live_server.url}/evaluations/runs/{run.pk}/")
    status = page.locator("#run-status")
    expect(status.locator("[data-status]")).to_have_text("Queued")

    run_chunk_execute(chunk_id=chunks[0])  # a worker finishes the first chunk
    expect(status.locator("[data-percent]")).to_have_text("33%", timeout=10_000)
    expect(status.locator("[data-status]")).to_have_text("Running")
    for chunk_id in chunks[1:]:
        run_chunk_execute(chunk_id=chunk_id)
    expect(status.locator("[data-status]")).to_have_text("Succeeded", timeout=10_000)
    expect(status.locator("[data-percent]")).to_have_text("100%")
    # the run-finished event refreshed the metrics panel: alignment with the 4 curated items is there
    expect(page.locator('#run-metrics tr[data-scorer="test_judge"] [data-accuracy]')).to_contain_text("n=4")
    expect(page.locator("#run-rows tr[data-item]")).to_have_count(6)  # and the rows, in suite order
    expect(page.locator("#run-metrics tbody tr").first).to_have_attribute("data-scorer", "test_judge")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "evaluations-run-page.png"), full_page=True)

    seen = len(polls)
    page.wait_for_timeout(4500)  # two more polling periods
    assert len(polls) == seen, "polling went on after the run finished"
    assert seen >= 2
