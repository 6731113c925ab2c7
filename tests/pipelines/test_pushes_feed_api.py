"""The continuous feed (micro-batches of newly curated labels), the REST API and the Deliveries page."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable
from django.test import Client
from django.utils import timezone

from pipelines.datasets.pushes import (
    delivery_target_create,
    feed_push_create,
    feed_push_due,
    push_execute,
    pushes_sweep,
)
from pipelines.models import DeliveryTarget, Push
from reviewapp.models import Item
from reviewapp.services.tokens import api_token_create
from tests.evaluations.conftest import curate
from tests.factories import make_items
from tests.pipelines.test_delta_push import canonical, make_version

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]
SOON = timedelta(seconds=10)  # past the feed's settle delay


def session(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def bearer(user: Any, *scopes: str) -> Client:
    _, raw = api_token_create(user=user, name="test", scopes=list(scopes))
    return Client(headers={"authorization": f"Bearer {raw}"})


@pytest.fixture
def delta_root(settings: Any, tmp_path: Path) -> Path:
    settings.DELTA_ROOT = str(tmp_path / "delta")
    return tmp_path / "delta"


def curate_items(project: Any, reviewer: Any, start: int, count: int) -> None:
    make_items(project, count, start=start)
    for item in Item.objects.filter(project=project, external_id__in=[f"ext-{n}" for n in range(start, start + count)]):
        curate(item, reviewer, {"correct": True})


def run_due(now: Any) -> list[Push]:
    pushes = []
    for push_id in feed_push_due(now=now):
        push_execute(push_id=push_id)
        pushes.append(Push.objects.get(pk=push_id))
    return pushes


def test_the_feed_pushes_newly_curated_labels_in_micro_batches(project, reviewer, delta_root, settings) -> None:
    settings.DELIVERY_BATCH_MAX_ROWS = 2
    target = delivery_target_create(project=project, kind="delta", target="", feed_enabled=True, user=None)
    delivery_target_create(project=project, kind="delta", target=str(delta_root / "off"), user=None)  # feed off
    curate_items(project, reviewer, 0, 3)

    first = run_due(timezone.now() + SOON)
    assert len(first) == 1 and first[0].status == Push.Status.SUCCEEDED, first[0].error
    assert (first[0].rows_total, first[0].rows_written, first[0].table_version) == (2, 2, 0)
    assert first[0].dataset_version is None and first[0].is_feed
    second = run_due(timezone.now() + SOON)
    # the two labels before the watermark are re-read (the overlap) but not rewritten
    assert (second[0].rows_total, second[0].rows_written, second[0].table_version) == (3, 1, 1)
    assert run_due(timezone.now() + SOON) == []  # nothing new
    target.refresh_from_db()
    assert (target.watermark_at, target.watermark_id) == (second[0].range_to_at, second[0].range_to_id)

    curate_items(project, reviewer, 3, 1)
    third = run_due(timezone.now() + SOON)
    overlap = timedelta(seconds=settings.DELIVERY_FEED_OVERLAP_SECONDS)
    assert (third[0].rows_total, third[0].rows_written) == (4, 1)
    assert third[0].range_from_at == second[0].range_to_at - overlap and third[0].range_from_id == 0
    rows = DeltaTable(target.target).to_pyarrow_table().to_pylist()
    assert len(rows) == 4 and len({r["row_id"] for r in rows}) == 4
    assert {r["feedback_correct"] for r in rows} == {True} and all(r["dataset_version"] is None for r in rows)
    assert not (delta_root / "off").exists()


def test_a_feed_batch_is_not_created_while_the_previous_one_is_unfinished(project, reviewer, delta_root) -> None:
    target = delivery_target_create(project=project, kind="delta", target="", feed_enabled=True, user=None)
    curate_items(project, reviewer, 0, 2)
    pending = feed_push_create(delivery_target=target, now=timezone.now() + SOON)
    assert pending is not None and pending.rows_total == 2
    curate_items(project, reviewer, 2, 1)
    assert feed_push_create(delivery_target=target, now=timezone.now() + SOON) is None
    # labels curated in the last seconds wait for the next batch (a commit may still be in flight)
    push_execute(push_id=pending.pk)
    assert feed_push_create(delivery_target=target, now=timezone.now()) is None
    # one new label, and the two before the watermark re-read
    assert feed_push_create(delivery_target=target, now=timezone.now() + SOON).rows_total == 3  # type: ignore[union-attr]


def test_a_retried_feed_batch_has_the_same_id_and_writes_nothing_twice(project, reviewer, delta_root) -> None:
    target = delivery_target_create(project=project, kind="delta", target="", feed_enabled=True, user=None)
    curate_items(project, reviewer, 0, 2)
    push = feed_push_create(delivery_target=target, now=timezone.now() + SOON)
    assert push is not None
    push_execute(push_id=push.pk)
    # the worker died after the Delta commit, before the success was recorded; the sweeper re-queues it
    later = timezone.now() + timedelta(seconds=1)
    Push.objects.filter(pk=push.pk).update(status=Push.Status.RUNNING, lease_expires_at=timezone.now())
    DeliveryTarget.objects.filter(pk=target.pk).update(watermark_at=None, watermark_id=0)
    assert pushes_sweep(now=later).requeued == 1
    push_execute(push_id=push.pk)
    push.refresh_from_db()
    assert push.status == Push.Status.SUCCEEDED and push.skipped and push.rows_written == 0
    assert push.attempts == 2 and push.table_version == 0
    assert DeltaTable(target.target).version() == 0 and DeltaTable(target.target).to_pyarrow_table().num_rows == 2


def test_the_sweeper_fails_a_push_whose_worker_keeps_dying(project, delta_root, settings) -> None:
    settings.DELIVERY_PUSH_MAX_ATTEMPTS = 2
    version = make_version(project, [canonical(1)])
    from pipelines.datasets.pushes import push_create

    push = push_create(project=project, dataset_version=version, user=None)
    now = timezone.now()
    Push.objects.filter(pk=push.pk).update(status=Push.Status.RUNNING, attempts=2, lease_expires_at=now)
    result = pushes_sweep(now=now + timedelta(seconds=1))
    push.refresh_from_db()
    assert result.failed == 1 and push.status == Push.Status.FAILED and "Gave up after 2 attempts" in push.error


# --- API ---------------------------------------------------------------------------------------


@pytest.fixture
def version(project: Any) -> Any:
    return make_version(project, [canonical(n) for n in range(1, 4)])


def test_who_may_see_and_create_pushes(project, version, curator, engineer, reviewer, outsider, delta_root) -> None:
    url = "/api/v1/projects/support/pushes/"
    body = {"dataset": version.dataset_id, "version": version.number}
    assert session(outsider).get(url).status_code == 404
    assert session(reviewer).get(url).status_code == 403
    assert session(engineer).get(url).status_code == 200
    assert session(engineer).post(url, body, content_type="application/json").status_code == 403
    assert bearer(curator, "export").post(url, body, content_type="application/json").status_code == 403
    assert bearer(curator, "export").get(url).status_code == 200
    assert Push.objects.count() == 0


def test_a_curator_pushes_a_version_over_the_api_and_reads_the_outcome(
    project, version, curator, delta_root, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks() as callbacks:
        response = bearer(curator, "curate").post(
            "/api/v1/projects/support/pushes/",
            {"dataset": version.dataset_id, "version": version.number},
            content_type="application/json",
        )
    assert response.status_code == 201, response.content
    assert len(callbacks) == 1  # the task is sent once the push row commits
    data = response.json()
    assert data["status"] == "queued" and data["dataset_version"] == 1 and data["feed"] is False
    push_execute(push_id=data["id"])  # what the worker does

    detail = bearer(curator, "export").get(f"/api/v1/pushes/{data['id']}/").json()
    assert detail["status"] == "succeeded" and detail["rows_written"] == 3 and detail["table_version"] == 0
    assert detail["target"].endswith("/support/golden") and detail["duration_seconds"] >= 0
    listed = session(curator).get("/api/v1/projects/support/pushes/").json()
    assert [p["id"] for p in listed["results"]] == [data["id"]]


def test_targets_over_the_api(project, curator, engineer, delta_root) -> None:
    url = "/api/v1/projects/support/delivery-targets/"
    bad = session(curator).post(url, {"kind": "unity_catalog", "target": "no-dots"}, content_type="application/json")
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "target"
    assert session(engineer).post(url, {"kind": "delta"}, content_type="application/json").status_code == 403
    created = session(curator).post(url, {"kind": "delta", "feed_enabled": True}, content_type="application/json")
    assert created.status_code == 201 and created.json()["feed_enabled"] is True
    target_id = created.json()["id"]
    off = session(curator).patch(
        f"/api/v1/delivery-targets/{target_id}/", {"feed_enabled": False}, content_type="application/json"
    )
    assert off.status_code == 200 and off.json()["feed_enabled"] is False
    assert [t["id"] for t in session(engineer).get(url).json()] == [target_id]
    nothing = session(curator).post(
        "/api/v1/projects/support/pushes/", {"target": target_id, "feed": True}, content_type="application/json"
    )
    assert nothing.status_code == 409  # no curated labels yet


# --- page --------------------------------------------------------------------------------------


def test_the_deliveries_page(project, version, curator, reviewer, outsider, delta_root) -> None:
    from django.urls import reverse

    url = reverse("pushes-list", args=["support"])
    assert session(outsider).get(url).status_code == 404
    assert session(reviewer).get(url).status_code == 403
    client = session(curator)
    response = client.post(reverse("push-now", args=["support"]), {"version": version.pk})
    assert response.status_code == 302
    push = Push.objects.get()
    push_execute(push_id=push.pk)

    page = client.get(url)
    assert page.status_code == 200
    html = page.content.decode()
    assert f'data-push="{push.pk}" data-status="succeeded"' in html and "3 written" in html
    fragment = client.get(url, headers={"HX-Request": "true"})
    assert fragment.status_code == 286 and b'id="push-table"' in fragment.content  # nothing active: stop polling
    assert b"<h1>" not in fragment.content
    bad = client.post(reverse("delivery-target-create", args=["support"]), {"kind": "unity_catalog", "target": "x"})
    assert bad.status_code == 400 and b"catalog.schema.table" in bad.content
