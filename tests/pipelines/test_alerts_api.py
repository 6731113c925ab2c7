"""REST /api/v1/projects/{slug}/alerts/: permissions, token scopes, typed 400s, history."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from pipelines.models import AlertRule
from reviewapp.services.tokens import api_token_create

pytestmark = pytest.mark.django_db

RULE = {"name": "slow", "metric": "latency_ms", "model_version": "2", "comparison": "above", "threshold": 500}


def session(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def url(project: Any, pk: int | None = None) -> str:
    base = f"/api/v1/projects/{project.slug}/alerts/"
    return base if pk is None else f"{base}{pk}/"


def test_engineers_create_change_and_delete_rules_others_read_or_not(project, reviewer, curator, engineer, outsider):
    created = session(engineer).post(url(project), RULE, content_type="application/json")
    assert created.status_code == 201, created.content
    pk = created.json()["id"]
    assert created.json()["state"] == "ok" and created.json()["threshold"] == 500
    assert session(curator).get(url(project)).json()["results"][0]["name"] == "slow"  # reads monitoring: may read
    assert (
        session(curator).post(url(project), {**RULE, "name": "x"}, content_type="application/json").status_code == 403
    )
    assert session(reviewer).get(url(project)).status_code == 403
    assert session(outsider).get(url(project)).status_code == 404
    changed = session(engineer).put(url(project, pk), {**RULE, "threshold": 700}, content_type="application/json")
    assert changed.status_code == 200 and changed.json()["threshold"] == 700
    detail = session(curator).get(url(project, pk)).json()
    assert detail["history"] == [] and detail["threshold"] == 700
    assert session(curator).delete(url(project, pk)).status_code == 403
    assert session(engineer).delete(url(project, pk)).status_code == 204
    assert not AlertRule.objects.exists()


def test_bad_rules_are_400_with_each_field_named(project, engineer):
    client = session(engineer)
    bad = client.post(
        url(project),
        {"name": "", "metric": "nope", "comparison": "sideways", "window_hours": 0, "colour": "red"},
        content_type="application/json",
    )
    assert bad.status_code == 400
    fields = {e["field"] for e in bad.json()["errors"]}
    assert {"name", "comparison", "window_hours", "colour"} <= fields, bad.json()
    assert all(set(e) == {"index", "field", "message"} for e in bad.json()["errors"])
    semantic = client.post(
        url(project),
        {"name": "d", "metric": "nope", "comparison": "worse_than_champion", "scope": "candidate", "rollback": True},
        content_type="application/json",
    )
    assert semantic.status_code == 400
    assert {"metric", "environment", "delta", "rollback"} <= {e["field"] for e in semantic.json()["errors"]}
    client.post(url(project), RULE, content_type="application/json")
    again = client.post(url(project), RULE, content_type="application/json")
    assert again.status_code == 400 and again.json()["errors"][0]["field"] == "name"
    assert client.post(url(project), [1, 2], content_type="application/json").status_code == 400


def test_token_scopes(project, engineer):
    _, read_only = api_token_create(user=engineer, name="ro", scopes=["export"])
    _, promote = api_token_create(user=engineer, name="rw", scopes=["promote", "export"])
    ro = Client(headers={"authorization": f"Bearer {read_only}"})
    rw = Client(headers={"authorization": f"Bearer {promote}"})
    assert ro.get(url(project)).status_code == 200
    assert ro.post(url(project), RULE, content_type="application/json").status_code == 403
    assert rw.post(url(project), RULE, content_type="application/json").status_code == 201


def test_the_monitoring_page_lists_edits_and_deletes_rules_and_shows_the_banner(project, curator, engineer, reviewer):
    form = {"name": "slow <b>", "metric": "latency_ms", "scope": "version", "model_version": "2",
            "comparison": "above", "threshold": "500", "window_hours": "24", "min_n": "3", "enabled": "on"}  # fmt: skip
    page = f"/projects/{project.slug}/monitoring/"
    created = session(engineer).post(f"{page}alerts/", form)
    assert created.status_code == 302, created.content
    rule = AlertRule.objects.get()
    assert rule.threshold == 500 and rule.min_n == 3 and rule.enabled and not rule.rollback
    bad = session(engineer).post(f"{page}alerts/", {**form, "name": "b", "window_hours": "soon"}, follow=True)
    assert "window_hours" in bad.content.decode() and AlertRule.objects.count() == 1
    assert session(curator).post(f"{page}alerts/", {**form, "name": "c"}).status_code == 403
    assert session(curator).post(f"{page}alerts/{rule.pk}/delete/").status_code == 403

    html = session(curator).get(page).content.decode()
    assert "data-alerts" in html and "slow &lt;b&gt;" in html and "data-alert-banner" not in html
    assert "data-alert-new" not in html  # curators read rules, engineers change them
    AlertRule.objects.filter(pk=rule.pk).update(state="firing")
    html = session(curator).get(page).content.decode()
    assert "data-alert-banner" in html and "Alert firing: slow &lt;b&gt;" in html
    listed = session(curator).get("/").content.decode()
    assert "1 monitoring alert firing" in listed and f"{page}#alerts" in listed
    assert "monitoring alert" not in session(reviewer).get("/").content.decode()  # reviewers do not watch monitoring

    edited = session(engineer).post(f"{page}alerts/{rule.pk}/", {**form, "threshold": "800"})
    assert edited.status_code == 302 and AlertRule.objects.get().threshold == 800
    assert session(engineer).post(f"{page}alerts/{rule.pk}/delete/").status_code == 302
    assert not AlertRule.objects.exists()
