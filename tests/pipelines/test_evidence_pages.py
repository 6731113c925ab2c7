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
    PromotionGate.objects.create(project=project, kind="min_reviews", params={"count": 4})  # the old name still works
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


@pytest.mark.slow
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


def test_version_page_and_api_say_n_and_pair_with_the_champion(project, versions, engineer, reviewer) -> None:
    shared = [f"Shared {i}?" for i in range(3)]
    reviews_for(project, "1", [{"correct": False}] * 3 + [{"correct": True}], reviewer, requests=[*shared, "v1 only?"])
    reviews_for(project, "2", [{"correct": True}] * 3, reviewer, requests=shared)
    PromotionGate.objects.create(project=project, kind="min_items", params={"count": 3})
    PromotionGate.objects.create(project=project, kind="not_worse_than_champion", params={"metric": "human_pass_rate"})

    html = session(engineer).get("/projects/support/models/2/").content.decode()

    assert "n=3 items (3 reviews)" in html and "n=4 items (4 reviews)" in html  # each version's own figure
    assert "data-human-paired" in html and "compared on 3 shared items; 1 only in the champion" in html
    assert "3 reviews of 3 items" in html  # the min_items checklist line
    assert "Only 3 shared" in html and "at least 20" in html  # not_worse below the shared minimum
    listed = session(engineer).get("/projects/support/models/").content.decode()
    assert "n=3 items, 3 reviews" in listed

    body = session(engineer).get("/api/v1/projects/support/model-versions/2/").json()
    primary = body["evidence"]["candidate"]["human"]["primary"]
    assert (primary["n"], primary["reviews"], primary["rate"]) == (3, 3, 1.0)
    paired = body["evidence"]["human_paired"][0]
    assert (paired["shared"], paired["only_a"], paired["only_b"], paired["delta"]) == (3, 1, 0, 1.0)
    lines = {line["kind"]: line for line in body["gates"][0]["lines"]}
    assert lines["min_items"]["passed"] and lines["min_items"]["figures"]["reviews"] == 3
    assert not lines["not_worse_than_champion"]["passed"]
    assert lines["not_worse_than_champion"]["figures"]["shared"] == 3
    summary = session(engineer).get("/api/v1/projects/support/model-versions/").json()["results"]
    v2 = next(v for v in summary if v["version"] == "2")["evidence"]
    assert (v2["judged"], v2["judged_reviews"], v2["items"]) == (3, 3, 3)
