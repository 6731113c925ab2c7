"""The Models page, the version page and the gates page through the test client (browser test: tests/browser)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from pipelines.models import Environment, PromotionGate
from tests.factories import member
from tests.pipelines.evidence_helpers import finished_run, model_version, reviews_for, suite

HOSTILE = '<script>window.pwned=1</script>\n<img src=x onerror="window.pwned=2">\n{question}'


def session(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def versions(project):  # type: ignore[no-untyped-def]
    project.mlflow_registered_model = "support-bot"
    project.save()
    v1 = model_version(project, "1", params={"top_k": "1"}, prompt_template="Answer.\n{question}")
    v2 = model_version(
        project, "2", params={"top_k": "3"}, prompt_template=HOSTILE, description="<b>bold</b> claim", aliases=["new"]
    )
    Environment.objects.create(project=project, name="production", alias="champion", current_version=v1)
    return v1, v2


def test_models_page_lists_versions_for_engineers_only(project, versions, engineer, reviewer, curator) -> None:
    reviews_for(project, "2", [{"correct": True}] * 3, reviewer)
    page = session(engineer).get("/projects/support/models/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'data-version="2"' in html and 'data-version="1"' in html and "production" in html
    assert "&lt;b&gt;bold&lt;/b&gt; claim" in html and "<b>bold</b>" not in html
    assert session(reviewer).get("/projects/support/models/").status_code == 403
    assert session(curator).get("/projects/support/models/2/").status_code == 403


def test_version_page_diffs_escapes_and_shows_the_checklist(project, versions, engineer, reviewer) -> None:
    reviews_for(project, "2", [{"correct": True}] * 4, reviewer)
    core = suite(project)
    run = finished_run(project, core, version="2", scores={"correctness": [1.0, 1.0]})
    PromotionGate.objects.create(project=project, kind="min_reviews", params={"count": 4})
    PromotionGate.objects.create(
        project=project, kind="suite_metric", params={"suite_id": core.pk, "metric": "correctness", "threshold": 0.99}
    )

    html = session(engineer).get("/projects/support/models/2/").content.decode()

    assert "<script>window.pwned" not in html and "&lt;script&gt;window.pwned=1&lt;/script&gt;" in html
    assert 'onerror="window' not in html
    # "Answer." went, the two hostile lines came, "{question}" stayed.
    assert html.count('data-kind="add"') == 2 and html.count('data-kind="del"') == 1
    assert html.count('data-kind="same"') == 1
    assert 'data-param="top_k"' in html and "param-changed" in html
    assert html.count('data-passed="true"') == 2 and f"/evaluations/runs/{run.pk}/" in html
    assert "data-gates-passed" in html
    assert "data-promotions-slot" in html


def test_the_champions_page_has_no_diff(project, versions, engineer) -> None:
    html = session(engineer).get("/projects/support/models/1/").content.decode()
    assert "data-is-champion" in html and "data-diff" not in html and "Answer." in html


def test_gates_page_admins_add_and_remove_engineers_read(project, versions, engineer) -> None:
    admin = member(project, "admin", username="ada")
    client = session(admin)
    bad = client.post("/projects/support/gates/", {"kind": "min_items", "params": '{"count": 0}'})
    assert bad.status_code == 422 and "params.count" in bad.content.decode()
    ok = client.post("/projects/support/gates/", {"kind": "min_items", "params": '{"count": 3}', "environment": ""})
    assert ok.status_code == 302
    gate = PromotionGate.objects.get()

    page = session(engineer).get("/projects/support/gates/").content.decode()
    assert "At least 3 reviewed items" in page and "data-gate-form" not in page
    assert session(engineer).post(f"/projects/support/gates/{gate.pk}/delete/").status_code == 403
    assert session(engineer).post("/projects/support/gates/", {"kind": "min_reviews"}).status_code == 403
    assert client.post(f"/projects/support/gates/{gate.pk}/toggle/").status_code == 302
    assert not PromotionGate.objects.get().enabled
    assert client.post(f"/projects/support/gates/{gate.pk}/delete/").status_code == 302
    assert not PromotionGate.objects.exists()


def test_sync_now_with_no_model_reports_the_failure(project, engineer) -> None:
    response = session(engineer).post("/projects/support/models/sync/", follow=True)
    assert response.status_code == 200 and "Sync failed, nothing changed" in response.content.decode()
