"""Promotion pages through the test client: list, request form, detail with approve/reject, access rules."""

from __future__ import annotations

import pytest
from django.test import Client

from pipelines.models import PromotionRequest, Rollout
from tests.pipelines.promotion_fixtures import databricks_environment, engineers, versions

pytestmark = pytest.mark.django_db


def login(user) -> Client:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(user)
    return client


def test_request_then_approve_through_the_pages(project, reviewer) -> None:  # type: ignore[no-untyped-def]
    erin, ezra, _ = engineers(project)
    v1, v2 = versions(project, 1, 2)
    env = databricks_environment(project, current_version=v1)
    a, b = login(erin), login(ezra)

    page = a.get("/projects/support/promotions/")
    assert page.status_code == 200 and b"data-request-form" in page.content
    response = a.post(
        "/projects/support/promotions/new/", {"model_version": v2.pk, "environment": env.pk, "reason": "better"}
    )
    req = PromotionRequest.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/promotions/{req.pk}/"

    own = a.get(f"/promotions/{req.pk}/")
    assert b"data-approve-form" not in own.content  # the requester is not offered approval
    a.post(f"/promotions/{req.pk}/approve/")
    req.refresh_from_db()
    assert req.status == "pending"

    detail = b.get(f"/promotions/{req.pk}/")
    assert b"data-approve-form" in detail.content
    b.post(f"/promotions/{req.pk}/approve/", {"comment": "ok"})
    req.refresh_from_db()
    assert req.status == "approved" and Rollout.objects.filter(request=req).exists()
    polled = b.get(f"/promotions/{req.pk}/", headers={"HX-Request": "true"})
    assert polled.status_code == 200 and b'hx-trigger="every 1s"' in polled.content and b"<html" not in polled.content
    assert b'data-step="traffic_10"' in polled.content

    panel = b.get(f"/projects/support/model-versions/{v2.pk}/promotions/")
    assert panel.status_code == 200 and f"#{req.pk}".encode() in panel.content

    assert login(reviewer).get("/projects/support/promotions/").status_code == 403
    assert login(reviewer).get(f"/promotions/{req.pk}/").status_code == 403


def test_the_version_page_loads_the_promotion_panel(project) -> None:  # type: ignore[no-untyped-def]
    erin, _, _ = engineers(project)
    (v2,) = versions(project, 2)
    page = login(erin).get(f"/projects/support/models/{v2.version}/")
    assert page.status_code == 200, page.content[:500]
    assert f'hx-get="/projects/support/model-versions/{v2.pk}/promotions/"'.encode() in page.content
