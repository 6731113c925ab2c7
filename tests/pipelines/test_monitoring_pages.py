"""Monitoring page and REST API: who may see them, filters, release marks, CSV, bad parameters."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from pipelines.models import Environment, PromotionRequest, Rollout
from pipelines.sources.monitoring import monitoring_refresh
from reviewapp.models import Item, Project, Review
from reviewapp.services.tokens import api_token_create
from tests.factories import ProjectFactory, member
from tests.pipelines.evidence_helpers import model_version

UTC = dt.UTC
DAY = dt.datetime(2026, 3, 1, tzinfo=UTC)
PAGE = "/projects/support/monitoring/"
API = "/api/v1/projects/support/monitoring/"
RANGE = {"since": "2026-02-28", "until": "2026-03-03"}


def session(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def bearer(user: Any, *scopes: str) -> Client:
    _, raw = api_token_create(user=user, name="ci", scopes=list(scopes))
    return Client(headers={"authorization": f"Bearer {raw}"})


def item(project: Project, ext: str, version: str, at: dt.datetime, **metadata: Any) -> Item:
    return Item.objects.create(
        project=project,
        external_id=ext,
        request=f"Q {ext}",
        response="A",
        model_version=version,
        metadata={"trace_timestamp": at.isoformat(), **metadata},
    )


@pytest.fixture
def traffic(project, reviewer, engineer):  # type: ignore[no-untyped-def]
    """Day 1: v1 three items (2 pass of 3 reviewed), v2 one failing; day 2: v2 two items. v2 promoted on day 2."""
    now = timezone.now()
    answers = [True, True, False]
    for i, passed in enumerate(answers):
        it = item(project, f"a{i}", "1", DAY + dt.timedelta(hours=9, minutes=i), latency_ms=100 + 100 * i)
        Review.objects.create(
            project=project, item=it, reviewer=reviewer, answers={"correct": passed}, submitted_at=now, updated_at=now
        )
    bad = item(project, "b0", "2", DAY + dt.timedelta(hours=9), latency_ms=50)
    Review.objects.create(
        project=project, item=bad, reviewer=reviewer, answers={"correct": False}, submitted_at=now, updated_at=now
    )
    for i in range(2):
        item(project, f"c{i}", "2", DAY + dt.timedelta(days=1, hours=2 + i), latency_ms=60)
    v1, v2 = model_version(project, "1"), model_version(project, "2")
    env = Environment.objects.create(project=project, name="production", alias="champion", current_version=v2)
    request = PromotionRequest.objects.create(
        project=project, model_version=v2, environment=env, requested_by=engineer, status="live"
    )
    promoted = Rollout.objects.create(
        request=request, environment=env, to_version=v2, from_version=v1, status="succeeded"
    )
    at = DAY + dt.timedelta(days=1, hours=1)
    Rollout.objects.filter(pk=promoted.pk).update(created_at=at, finished_at=at)
    back = Rollout.objects.create(
        request=request, environment=env, to_version=v1, from_version=v2, kind="rollback", status="succeeded"
    )
    at = DAY + dt.timedelta(days=1, hours=20)
    Rollout.objects.filter(pk=back.pk).update(created_at=at, finished_at=at)
    monitoring_refresh(project=project)


def test_the_page_is_for_curators_engineers_and_admins(project, traffic, reviewer, curator, engineer, outsider):
    admin = member(project, "admin", username="ada")
    for user, expected in [(curator, 200), (engineer, 200), (admin, 200), (reviewer, 403), (outsider, 404)]:
        assert session(user).get(PAGE, RANGE).status_code == expected, user
    assert Client().get(PAGE).status_code == 302  # to the sign-in page
    other = ProjectFactory(slug="other")
    assert session(engineer).get("/projects/other/monitoring/").status_code == 404
    assert other.pk


def test_the_page_draws_a_series_per_metric_with_release_marks_and_no_script(project, traffic, curator):
    response = session(curator).get(PAGE, RANGE)

    html = response.content.decode()
    for metric in ("volume", "human_pass_rate", "latency_ms"):
        assert f'data-monitoring-chart="{metric}"' in html
    volume_svg = re.search(r'<svg[^>]*data-monitoring-chart="volume".*?</svg>', html, re.S)
    assert volume_svg is not None
    assert 'data-mark="promotion"' in volume_svg.group(0) and 'data-mark="rollback"' in volume_svg.group(0)
    assert "v2 to production" in html and "rollback of production to v1" in html
    main = html[html.index("<main") :]
    assert "<script" not in main  # CSP: nothing inline, and the page needs no script at all
    table = re.search(r'data-metric-table="human_pass_rate".*?</table>', html, re.S)
    assert table is not None and "v1" in table.group(0)


def test_filters_narrow_the_version_and_the_bucket(project, traffic, engineer):
    client = session(engineer)
    only_v2 = client.get(PAGE, {**RANGE, "model_version": "2"}).content.decode()
    table = re.search(r'data-metric-table="volume".*?</table>', only_v2, re.S)
    assert table is not None and "v2" in table.group(0) and "<td>v1</td>" not in table.group(0)

    hourly = client.get(PAGE, {**RANGE, "bucket": "hour", "model_version": "1"}).content.decode()
    table = re.search(r'data-metric-table="volume".*?</table>', hourly, re.S)
    assert table is not None and "2026-03-01 09:00" in table.group(0)

    bad = client.get(PAGE, {"bucket": "week", "since": "yesterday"})
    assert bad.status_code == 400
    text = bad.content.decode()
    assert "Give bucket=hour or bucket=day." in text and "Give since as a date" in text


def test_csv_of_one_metric_has_every_bucket_with_n_and_interval(project, traffic, curator):
    response = session(curator).get(PAGE, {**RANGE, "format": "csv", "metric": "human_pass_rate"})

    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert 'filename="support-monitoring-human_pass_rate.csv"' in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0] == ["bucket_start", "model_version", "n", "human_pass_rate", "ci_low", "ci_high"]
    assert [r[:4] for r in rows[1:]] == [
        ["2026-03-01T00:00:00+00:00", "1", "3", "0.666667"],
        ["2026-03-01T00:00:00+00:00", "2", "1", "0"],
    ]
    assert float(rows[1][4]) == pytest.approx(0.2077, abs=1e-4) and float(rows[1][5]) == pytest.approx(0.9385, abs=1e-4)
    assert session(curator).get(PAGE, {"format": "csv", "metric": "nope"}).status_code == 400


def test_api_returns_buckets_with_n_and_intervals(project, traffic, engineer):
    response = session(engineer).get(API, {**RANGE, "metric": "human_pass_rate", "bucket": "day"})

    assert response.status_code == 200
    body = response.json()
    assert (body["metric"], body["kind"], body["bucket"]) == ("human_pass_rate", "rate", "day")
    assert body["since"].startswith("2026-02-28T00:00:00") and body["until"].startswith("2026-03-04T00:00:00")
    first, second = body["buckets"]
    assert (first["model_version"], first["n"], first["value"]) == ("1", 3, pytest.approx(2 / 3))
    assert (first["low"], first["high"]) == (pytest.approx(0.2077, abs=1e-4), pytest.approx(0.9385, abs=1e-4))
    assert (second["model_version"], second["n"], second["value"]) == ("2", 1, 0.0)

    latency = session(engineer).get(API, {**RANGE, "metric": "latency_ms", "model_version": "2"}).json()
    assert [(b["start"][:10], b["n"], b["value"]) for b in latency["buckets"]] == [
        ("2026-03-01", 1, 50.0),
        ("2026-03-02", 2, 60.0),
    ]
    assert latency["buckets"][1]["low"] == pytest.approx(60.0)  # no spread: a zero-width interval


def test_api_bad_parameters_are_400_with_each_field_named(project, traffic, engineer):
    client = session(engineer)
    response = client.get(API, {"metric": "nope", "bucket": "week", "until": "tomorrow"})
    assert response.status_code == 400
    fields = {e["field"] for e in response.json()["errors"]}
    assert fields == {"bucket", "until"}  # the metric is checked once the rest parses
    response = client.get(API, {"metric": "nope"})
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "metric"
    response = client.get(API, {"bucket": "day"})
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "metric"
    response = client.get(API, {"metric": "volume", "since": "2026-03-05", "until": "2026-03-01"})
    assert response.status_code == 400 and response.json()["errors"][0] == {
        "index": None,
        "field": "since",
        "message": "Give a since before until.",
    }


def test_api_permissions_and_token_scopes(project, traffic, reviewer, curator, engineer, outsider):
    query = {"metric": "volume"}
    for client, expected in [
        (session(reviewer), 403),
        (session(outsider), 404),
        (session(curator), 200),
        (bearer(engineer, "export"), 200),
        (bearer(engineer, "promote"), 403),
        (Client(), 401),
    ]:
        assert client.get(API, query).status_code == expected, client


def test_the_schema_describes_the_endpoint(db, engineer):
    response = session(engineer).get("/api/schema/")
    if response.status_code == 404:
        pytest.skip("no schema route")
    text = response.content.decode()
    assert "/api/v1/projects/{slug}/monitoring/" in text and "monitoring_series" in text
