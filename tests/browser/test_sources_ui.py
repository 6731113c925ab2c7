"""A curator adds an MLflow traces source with rules on the Sources page, pulls it now, and watches the
pull finish (htmx polling) with a real Celery worker reading a real MLflow store, in Chromium."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from pipelines.models import SourcedItem
from reviewapp.models import Item

pytestmark = [pytest.mark.browser, pytest.mark.redis, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def log_traces(uri: str, artifacts: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    import mlflow
    from mlflow.entities import AssessmentSource

    monkeypatch.setenv("MLFLOW_ENABLE_ASYNC_TRACE_LOGGING", "false")
    mlflow.set_tracking_uri(uri)
    experiment_id = mlflow.create_experiment("support-live", artifact_location=f"file://{artifacts}")
    mlflow.set_experiment(experiment_id=experiment_id)
    ids = []
    for n in range(4):
        with mlflow.start_span(name="rag") as root:
            root.set_inputs({"question": f"Question {n}?"})
            root.set_outputs({"response": f"Answer {n}."})
        ids.append(str(root.trace_id))
    mlflow.log_feedback(
        trace_id=ids[2],
        name="user_feedback",
        value="thumbs_down",
        source=AssessmentSource(source_type="HUMAN", source_id="u"),
    )
    return ids


def test_a_source_is_added_pulled_and_its_pull_watched(
    page: Page, live_server, login, project, curator, cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    traces = log_traces(cluster.mlflow_uri, cluster.artifacts, monkeypatch)
    worker = cluster.start_worker("sources")
    login("cora")
    page.goto(f"{live_server.url}/projects/support/sources/")
    expect(page.locator("#source-table")).to_contain_text("No sources yet")
    # Only the chosen kind's settings show (CSS :has, no script).
    expect(page.locator("input[name=setting_experiment]")).to_be_visible()
    expect(page.locator("input[name=setting_uri]")).to_be_hidden()
    page.select_option("select[name=kind]", "delta_table")
    expect(page.locator("input[name=setting_uri]")).to_be_visible()
    page.select_option("select[name=kind]", "mlflow_traces")

    page.fill("input[name=name]", "live traffic")
    page.fill("input[name=setting_experiment]", "support-live")
    # The form starts with thumbs_down, error, percent 5: keep only the thumbs-down rule.
    page.select_option("select[name=rule_kind_1]", "")
    page.select_option("select[name=rule_kind_2]", "")
    page.click("[data-save-source]")
    expect(page.locator(".messages")).to_contain_text("Source live traffic added.")

    page.click("[data-pull-now]")
    expect(page.locator(".messages")).to_contain_text("queued")
    pull_row = page.locator("[data-pull]").first
    expect(pull_row).to_have_attribute("data-status", "succeeded", timeout=60_000)  # htmx polled it there
    expect(pull_row).to_contain_text("Succeeded")
    expect(page.locator("[data-source] [data-last-counters]")).to_contain_text("4 read · 1 new")
    expect(page.locator("[data-source]")).to_contain_text("thumbs_down: 1")

    assert list(Item.objects.values_list("external_id", flat=True)) == [traces[2]], worker.log[-3000:]
    assert SourcedItem.objects.get().rule == "thumbs_down"
