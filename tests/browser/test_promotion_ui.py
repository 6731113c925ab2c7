"""Promotion in Chromium, in the demo shape: the demo RAG chain as versions 1 and 2 of ``support-assistant``
in a private MLflow store, a local environment and a real Celery worker. Engineer A requests v2 from the
version page; engineer B approves on the promotion page, whose htmx polling shows the rollout steps finish;
the local endpoint answers with v2; B rolls back and it answers with v1. A reviewer cannot see the page.
No model server outlives the test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Browser, Page, expect

from pipelines.demo_models import demo_models_ensure
from pipelines.models import Environment, ModelVersion, PromotionRequest
from pipelines.releases.promotion import promotion_approve, promotion_request
from pipelines.releases.registry import registry_sync
from pipelines.releases.serving import local_serving_stop_all
from pipelines.releases.serving.local import _alive, _dir, _read_json
from reviewapp.models import AuditEvent
from tests.evaluations.conftest import ingest, rag_row
from tests.factories import PASSWORD, member
from tests.pipelines.promotion_fixtures import engineers
from tests.pipelines.test_promotions_api import free_port
from tests.workers import wait_for

pytestmark = [
    pytest.mark.browser,
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
]
ROLLOUT_TIMEOUT_MS = 180_000


def sign_in(page: Page, base: str, username: str) -> None:
    page.goto(f"{base}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{base}/")


def ask(port: int, question: str) -> requests.Response:
    return requests.post(
        f"http://127.0.0.1:{port}/invocations", json={"dataframe_records": [{"request": question}]}, timeout=60
    )


def serving_pids() -> list[int]:
    """Every model server and proxy the local serving state knows about."""
    pids = []
    for kind in ("servers", "proxies"):
        for state_file in _dir(kind).glob("*.json"):
            if not state_file.name.endswith(".routes.json"):
                pid = (_read_json(state_file) or {}).get("pid")
                if pid:
                    pids.append(int(pid))
    return pids


def test_request_approve_roll_out_and_roll_back_in_the_browser(  # type: ignore[no-untyped-def]
    browser: Browser, page: Page, live_server, project, settings, tmp_path: Path, artifacts: Path
) -> None:
    from tests.workers import Cluster

    cluster = Cluster(tmp_path)
    settings.MLFLOW_TRACKING_URI = cluster.mlflow_uri
    settings.MLFLOW_ARTIFACT_ROOT = cluster.artifacts
    settings.LOCAL_SERVING_DIR = tmp_path / "serving"
    settings.PROMOTION_WEBHOOK_URLS = []
    cluster.point_producer()
    started: list[int] = []
    contexts: list[Any] = []
    try:
        demo_models_ensure(model_name="support-assistant")
        project.mlflow_registered_model = "support-assistant"
        project.save(update_fields=["mlflow_registered_model"])
        registry_sync(project=project)
        erin, ezra, _ = engineers(project)
        rhea = member(project, "reviewer", username="rhea")
        ingest(
            project, [rag_row(1, request="How do I export my notes?"), rag_row(2, request="Does Lumen support SSO?")]
        )
        port = free_port()
        env = Environment.objects.create(
            project=project,
            name="production",
            alias="champion",
            local_port=port,
            canary_stages=[50, 100],
            ready_timeout_seconds=120,
            health_check_queries=2,
            soak_seconds=1,
        )
        worker = cluster.start_worker(
            "promo-ui",
            LOCAL_SERVING_DIR=str(settings.LOCAL_SERVING_DIR),
            ROLLOUT_POLL_MILLISECONDS="200",
            ROLLOUT_SOAK_INTERVAL_MILLISECONDS="250",
        )
        # v1 is the champion already (promoted through the services, as an earlier day's work).
        v1 = ModelVersion.objects.get(project=project, registered_model="support-assistant", version="1")
        first = promotion_request(actor=erin, model_version=v1, environment=env, reason="first champion")
        promotion_approve(actor=ezra, request_id=first.pk)
        assert wait_for(
            lambda: PromotionRequest.objects.get(pk=first.pk).status in ("live", "failed"), timeout=180, interval=0.5
        ), worker.log[-3000:]
        assert PromotionRequest.objects.get(pk=first.pk).status == "live", worker.log[-3000:]
        assert ask(port, "hi").headers["X-Reviewdesk-Served-Version"] == "1"

        # Engineer A requests v2 from the version page.
        base = live_server.url
        sign_in(page, base, erin.username)
        page.goto(f"{base}/projects/{project.slug}/models/2/")
        panel = page.locator("[data-version-promotions]")
        expect(panel).to_be_visible()  # loaded by htmx
        panel.locator("[data-environment-select]").select_option(label="production (@champion)")
        panel.locator("[data-reason]").fill("v2 cites its sources and reviewers prefer it")
        panel.locator("[data-request]").click()
        page.wait_for_url(f"{base}/promotions/*/")
        promotion = PromotionRequest.objects.get(model_version__version="2")
        assert promotion.requested_by == erin and promotion.status == "pending"
        expect(page.locator("[data-approve]")).to_have_count(0)  # not by the requester

        # Engineer B approves on the promotion page; its polling follows the rollout to the end.
        b_context = browser.new_context(viewport={"width": 1440, "height": 1000})
        contexts.append(b_context)
        b = b_context.new_page()
        sign_in(b, base, ezra.username)
        b.goto(f"{base}/promotions/{promotion.pk}/")
        expect(b.locator("[data-promotion-panel]")).to_have_attribute("data-status", "pending")
        polls: list[str] = []
        b.on("request", lambda r: polls.append(r.url) if r.headers.get("hx-request") else None)
        b.locator("[data-approve-form] input[name=comment]").fill("evidence looks good")
        b.locator("[data-approve]").click()
        b.wait_for_url(f"{base}/promotions/{promotion.pk}/")
        b_panel = b.locator("[data-promotion-panel]")
        expect(b_panel.locator('[data-step="traffic_50"]')).to_have_attribute(
            "data-step-status", "done", timeout=ROLLOUT_TIMEOUT_MS
        )
        expect(b_panel).to_have_attribute("data-status", "live", timeout=ROLLOUT_TIMEOUT_MS)
        assert polls, "the promotion page never polled"
        steps = b_panel.locator("[data-steps]").last.locator("tr[data-step]")
        expect(steps).to_have_count(6)
        for key in ("alias", "traffic_50", "health_50", "traffic_100", "health_100", "finish"):
            expect(b_panel.locator(f'[data-step="{key}"]').last).to_have_attribute("data-step-status", "done")
        # The 50% stage's health queries all went to the candidate, and the page says which version answered.
        health_50 = b_panel.locator('[data-step="health_50"]')
        expect(health_50.locator("[data-served-by]")).to_contain_text("asked v2 directly")
        expect(health_50.locator("[data-served-by]")).not_to_contain_text("v1\u00d7")
        expect(health_50.locator("[data-soak]")).to_contain_text("of 1 s")
        expect(health_50.locator("[data-soak]")).to_contain_text("0 errors")
        expect(b_panel.locator("[data-approvals]")).to_contain_text("ezra")
        started = serving_pids()

        answer = ask(port, "How do I turn on two-factor authentication?")
        assert answer.status_code == 200 and answer.headers["X-Reviewdesk-Served-Version"] == "2"
        assert answer.json()["predictions"][0]
        b.screenshot(path=str(artifacts / "promotion-page.png"), full_page=True)

        # B rolls back: a confirm dialog asks for a written reason; without one nothing happens.
        rollback = b_panel.locator("[data-rollback]")
        expect(rollback).to_have_text("Roll back to v1")
        rollback.click()
        dialog = b.locator("[data-rollback-dialog]")
        expect(dialog).to_be_visible()
        dialog.locator("[data-rollback-confirm]").click()  # empty reason: the browser refuses to send it
        expect(dialog).to_be_visible()
        assert dialog.locator("[data-rollback-reason]").evaluate("e => e.validity.valueMissing")
        # A blank reason gets past the browser; the server refuses it and says why.
        dialog.locator("[data-rollback-reason]").fill("   ")
        dialog.locator("[data-rollback-confirm]").click()
        b.wait_for_url(f"{base}/promotions/{promotion.pk}/")
        expect(b.locator(".messages li").filter(has_text="a rollback needs a written reason")).to_have_count(1)
        expect(b_panel).to_have_attribute("data-status", "live")
        assert env.rollouts.filter(kind="rollback").count() == 0
        # With a reason it goes ahead; the page follows the rollback; the endpoint answers with v1.
        b.locator("[data-rollback]").click()
        b.locator("[data-rollback-reason]").fill("v2 quotes an outdated SSO price")
        b.locator("[data-rollback-confirm]").click()
        b.wait_for_url(f"{base}/promotions/{promotion.pk}/")
        expect(b_panel).to_have_attribute("data-status", "rolled_back", timeout=ROLLOUT_TIMEOUT_MS)
        expect(b_panel.locator('[data-rollout-status="succeeded"]')).to_have_count(2)
        last_steps = b_panel.locator("[data-steps]").last.locator("tr[data-step]")
        expect(last_steps).to_have_count(4)  # alias, traffic_100, health_100, finish
        for i in range(4):
            expect(last_steps.nth(i)).to_have_attribute("data-step-status", "done")
        assert ask(port, "hi").headers["X-Reviewdesk-Served-Version"] == "1"
        env.refresh_from_db()
        assert env.current_version_id == v1.pk
        rollback_rollout = env.rollouts.get(kind="rollback")
        assert rollback_rollout.reason == "v2 quotes an outdated SSO price"
        assert AuditEvent.objects.get(action="promotion.rollback_requested").data["reason"] == rollback_rollout.reason

        # A reviewer cannot see promotions at all.
        r_context = browser.new_context()
        contexts.append(r_context)
        r = r_context.new_page()
        sign_in(r, base, rhea.username)
        response = r.goto(f"{base}/promotions/{promotion.pk}/")
        assert response is not None and response.status in (403, 404)
        assert "Roll back" not in r.content() and "support-assistant v2" not in r.content()
    finally:
        for context in contexts:
            context.close()
        cluster.stop()
        started += serving_pids()
        local_serving_stop_all()
    assert started, "no model server was recorded"
    assert not [pid for pid in started if _alive(pid)], "model servers outlived the test"
