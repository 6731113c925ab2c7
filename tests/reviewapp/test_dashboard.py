"""Dashboards and the stats API: figures against hand-computed values, access, SVG, tables and CSV."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from reviewapp.charts import project_charts
from reviewapp.models import CuratedLabel, GoldAnswer, Item, Review
from reviewapp.models.curation import Adjudication
from reviewapp.selectors.stats import project_stats, reviewer_stats
from tests.factories import make_items

pytestmark = pytest.mark.django_db


def session(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _at(days_ago: int) -> dt.datetime:
    day = timezone.localdate() - dt.timedelta(days=days_ago)
    return timezone.make_aware(dt.datetime.combine(day, dt.time(12)))


def _review(item: Item, user: Any, answers: dict[str, Any], *, days_ago: int, ms: int, returned: bool = False) -> None:
    when = _at(days_ago)
    Review.objects.create(
        project=item.project,
        item=item,
        reviewer=user,
        answers=answers,
        submitted_at=when,
        updated_at=when,
        time_on_task_ms=ms,
        returned_at=when if returned else None,
    )


@pytest.fixture
def data(project, reviewer, reviewer2, curator, engineer):  # type: ignore[no-untyped-def]
    """4 items (two of version 1, two of version 2), 7 current reviews by rita and rob, 1 returned."""
    project.reviews_per_item = 2
    project.save()
    make_items(project, 2, model_version="1")
    make_items(project, 2, start=2, model_version="2")
    i0, i1, i2, i3 = Item.objects.filter(project=project).order_by("external_id")
    rita, rob = reviewer, reviewer2
    _review(i0, rita, {"correct": True, "helpfulness": 5}, days_ago=0, ms=1000)
    _review(i0, rob, {"correct": True, "helpfulness": 4}, days_ago=0, ms=4000)
    _review(i1, rita, {"correct": True, "helpfulness": 3}, days_ago=1, ms=2000)
    _review(i1, rob, {"correct": False, "helpfulness": 3}, days_ago=1, ms=6000)
    _review(i2, rita, {"correct": False, "helpfulness": 1}, days_ago=2, ms=3000)
    _review(i2, rob, {"correct": False, "helpfulness": 2}, days_ago=2, ms=8000)
    _review(i3, rita, {"correct": True, "helpfulness": 4}, days_ago=40, ms=10000)
    # Sent back: counts nowhere.
    _review(i3, engineer, {"correct": False, "helpfulness": 1}, days_ago=0, ms=1, returned=True)
    for item, n in ((i0, 2), (i1, 2), (i2, 2), (i3, 1)):
        Item.objects.filter(pk=item.pk).update(review_count=n)
    now = timezone.now()
    CuratedLabel.objects.create(
        project=project,
        item=i0,
        answers={"correct": True, "helpfulness": 4},
        method="consensus",
        schema_version=1,
        created_at=now,
        updated_at=now,
    )
    CuratedLabel.objects.create(
        project=project,
        item=i2,
        answers={"correct": False, "helpfulness": 2},
        method="adjudicated",
        decided_by=curator,
        schema_version=1,
        created_at=now,
        updated_at=now,
    )
    Adjudication.objects.create(
        project=project,
        item=i1,
        disagreements=[{"key": "correct", "reason": "tie"}, {"key": "helpfulness", "reason": "spread"}],
        opened_at=now,
        updated_at=now,
    )
    Adjudication.objects.create(
        project=project,
        item=i2,
        status="decided",
        disagreements=[{"key": "correct", "reason": "tie"}],
        opened_at=now,
        updated_at=now,
    )
    GoldAnswer.objects.create(project=project, item=i3, answers={"correct": True}, created_by=curator)
    return project


def test_project_figures_match_hand_computed_values(data) -> None:  # type: ignore[no-untyped-def]
    stats = project_stats(project=data)
    p = stats.progress
    assert (p.items, p.reviewed, p.complete, p.curated, p.left) == (4, 4, 3, 2, 1)

    assert len(stats.throughput) == 30
    assert stats.throughput[-1] == (timezone.localdate(), 2)
    assert [n for _, n in stats.throughput[-3:]] == [2, 2, 2]
    assert sum(n for _, n in stats.throughput) == 6  # the 40-day-old and the returned review are out

    dist = {d.key: d for d in stats.distributions}
    correct = {v.model_version: v for v in dist["correct"].versions}
    assert correct["1"].counts == {"pass": 3, "fail": 1}
    # Over items: v1 = i0 curated pass (1) and i1 split (0.5); v2 = i2 curated fail (0), i3 one pass (1).
    assert (correct["1"].pass_rate, correct["1"].items) == (pytest.approx(0.75), 2)
    assert correct["2"].counts == {"pass": 1, "fail": 2}  # 1 of 3 answers pass, but 1 of 2 items
    assert (correct["2"].pass_rate, correct["2"].items) == (pytest.approx(0.5), 2)
    assert (correct["2"].pass_low, correct["2"].pass_high) == (
        pytest.approx(0.09453, abs=1e-4),
        pytest.approx(0.90547, abs=1e-4),
    )
    figures = {(f.model_version, f.question): f.figure for f in stats.figures}
    assert (figures["2", "correct"].items, figures["2", "correct"].reviews) == (2, 3)
    assert figures["2", "correct"].interval.startswith("Wilson")
    assert figures["1", "correct"].interval.startswith("bootstrap")  # a split vote: values are not all 0/1
    assert (figures["1", "helpfulness"].value, figures["2", "helpfulness"].value) == (3.5, 3.0)  # 4, (3+3)/2; 2, 4
    assert figures["1", "helpfulness"].curated == 1
    helpful = {v.model_version: v for v in dist["helpfulness"].versions}
    assert helpful["1"].counts == {"1": 0, "2": 0, "3": 2, "4": 1, "5": 1}
    assert helpful["2"].counts == {"1": 1, "2": 1, "3": 0, "4": 1, "5": 0}
    assert helpful["2"].pass_rate is None

    agreement = {a.key: a for a in stats.agreement}
    # correct: items [T,T], [T,F], [F,F] (i3 has one review): o_TF = o_FT = 1, n_T = n_F = 3, n = 6,
    # alpha = 1 - (n-1) * 2 / (2 * 3 * 3) = 4/9; pairs agreeing per item 1, 0, 1.
    assert agreement["correct"].level == "nominal"
    assert agreement["correct"].alpha.value == pytest.approx(4 / 9)
    assert agreement["correct"].alpha.n_items == 3
    assert agreement["correct"].percent.value == pytest.approx(2 / 3)
    low, high = agreement["correct"].percent.ci_low, agreement["correct"].percent.ci_high
    assert low is not None and high is not None and low <= 2 / 3 <= high
    assert agreement["helpfulness"].level == "ordinal"
    assert agreement["helpfulness"].percent.value == pytest.approx(1 / 3)

    assert stats.hot_spots is not None
    assert stats.hot_spots.by_question == [("correct", 2), ("helpfulness", 1)]
    assert stats.hot_spots.by_version == [("1", 1, 1), ("2", 1, 0)]  # (version, adjudications, open)


def test_reviewer_figures_match_hand_computed_values(data, reviewer, reviewer2) -> None:  # type: ignore[no-untyped-def]
    rows = {r.username: r for r in reviewer_stats(project=data)}
    assert set(rows) == {"rita", "rob"}  # the returned review's author has no current reviews
    rita, rob = rows["rita"], rows["rob"]
    assert (rita.reviews, rob.reviews) == (4, 3)
    assert rita.median_time_ms == pytest.approx(2500)
    assert rob.median_time_ms == pytest.approx(6000)
    # rita: correct right on i0 and i2, helpfulness wrong on both; rob: all four right.
    assert (rita.consensus_agreed, rita.consensus_compared) == (2, 4)
    assert rita.consensus_rate == pytest.approx(0.5)
    assert rob.consensus_rate == pytest.approx(1.0)
    assert rita.consensus_ci_low is not None and rita.consensus_ci_low < 0.5 < rita.consensus_ci_high
    assert rita.gold is not None and rita.gold.n == 1 and rita.gold.accuracy == 1.0
    assert rob.gold is None


def test_query_count_does_not_grow_with_data(data, django_assert_num_queries) -> None:  # type: ignore[no-untyped-def]
    # progress 3 + throughput 1 + questions 1 + figures over items 2 + distributions 1 + agreement 1 + hot spots 2
    with django_assert_num_queries(11):
        project_stats(project=data)
    make_items(data, 20, start=100, model_version="3")
    for item in Item.objects.filter(project=data, model_version="3"):
        for user in data.memberships.values_list("user", flat=True)[:2]:
            Review.objects.create(
                project=data, item=item, reviewer_id=user, answers={"correct": True},
                submitted_at=timezone.now(), updated_at=timezone.now(),
            )  # fmt: skip
    with django_assert_num_queries(11):
        project_stats(project=data)


def test_dashboard_page_has_svg_charts_with_tables(data, curator) -> None:  # type: ignore[no-untyped-def]
    response = session(curator).get(f"/projects/{data.slug}/dashboard/")
    assert response.status_code == 200
    html = response.content.decode()
    assert html.count('role="img"') == len(project_charts(project_stats(project=data)))
    assert '<title id="chart-agreement-title">' in html
    assert 'data-chart-table="distribution-correct"' in html
    assert "<details" in html
    assert "?format=csv&amp;chart=throughput" in html
    assert "<script" not in html.split("<main", 1)[1]
    assert "0.444" in html  # alpha of "correct" in the agreement table
    assert 'data-figure="2-correct"' in html and "2 items, 3 reviews" in html  # every figure says its n
    assert f"/projects/{data.slug}/reviewers/" in html


def test_csv_download(data, curator) -> None:  # type: ignore[no-untyped-def]
    response = session(curator).get(f"/projects/{data.slug}/dashboard/?format=csv&chart=distribution-correct")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    lines = response.content.decode().splitlines()
    assert lines == ["label,pass,fail,n,pass_rate", "v1,3,1,4,0.75", "v2,1,2,3,0.5"]  # the rate is over items
    progress = session(curator).get(f"/projects/{data.slug}/dashboard/?format=csv&chart=progress")
    assert "left,1" in progress.content.decode().splitlines()
    missing = session(curator).get(f"/projects/{data.slug}/dashboard/?format=csv&chart=nope")
    assert missing.status_code == 404


def test_reviewer_dashboard_page_and_csv(data, curator) -> None:  # type: ignore[no-untyped-def]
    client = session(curator)
    response = client.get(f"/projects/{data.slug}/reviewers/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'role="img"' in html and "data-reviewer-table" in html and "rita" in html
    csv_text = client.get(f"/projects/{data.slug}/reviewers/?format=csv&chart=reviewer-consensus").content.decode()
    assert "rita,0.5," in csv_text and "rob,1.0," in csv_text


def test_reviewer_sees_progress_only_and_no_reviewer_dashboard(data, reviewer) -> None:  # type: ignore[no-untyped-def]
    client = session(reviewer)
    response = client.get(f"/projects/{data.slug}/dashboard/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-chart="progress"' in html
    assert "distribution-correct" not in html and "data-agreement-table" not in html
    assert client.get(f"/projects/{data.slug}/reviewers/").status_code == 403
    assert client.get(f"/api/v1/projects/{data.slug}/stats/").status_code == 403


def test_outsider_gets_404(data, outsider) -> None:  # type: ignore[no-untyped-def]
    client = session(outsider)
    assert client.get(f"/projects/{data.slug}/dashboard/").status_code == 404
    assert client.get(f"/projects/{data.slug}/reviewers/").status_code == 404
    assert client.get(f"/api/v1/projects/{data.slug}/stats/").status_code == 404


def test_stats_api(data, curator, engineer) -> None:  # type: ignore[no-untyped-def]
    body = session(curator).get(f"/api/v1/projects/{data.slug}/stats/").json()
    assert body["progress"] == {"items": 4, "reviewed": 4, "complete": 3, "curated": 2, "left": 1}
    correct = next(a for a in body["agreement"] if a["question"] == "correct")
    assert correct["alpha"]["value"] == pytest.approx(4 / 9)
    assert correct["alpha"]["n_items"] == 3
    assert body["hot_spots"]["by_question"][0] == {"question": "correct", "adjudications": 2}
    v2 = next(f for f in body["figures"] if (f["model_version"], f["question"]) == ("2", "correct"))
    assert (v2["value"], v2["items"], v2["reviews"], v2["curated"]) == (0.5, 2, 3, 1)
    assert v2["low"] == pytest.approx(0.09453, abs=1e-4) and v2["interval"].startswith("Wilson")
    dist_v2 = next(d for d in body["distributions"] if d["question"] == "correct")["versions"][1]
    assert (dist_v2["n"], dist_v2["items"], dist_v2["pass_rate"]) == (3, 2, 0.5)
    assert {r["reviewer"]: r["consensus_rate"] for r in body["reviewers"]} == {"rita": 0.5, "rob": 1.0}
    # Engineers may export but not curate: figures without the per-reviewer part.
    eng = session(engineer).get(f"/api/v1/projects/{data.slug}/stats/").json()
    assert "reviewers" not in eng and eng["progress"]["curated"] == 2


def test_project_card_links_dashboard(data, reviewer) -> None:  # type: ignore[no-untyped-def]
    html = session(reviewer).get("/").content.decode()
    assert f'href="/projects/{data.slug}/dashboard/" data-dashboard-link' in html


def test_dashboard_figures_follow_new_reviews(data, curator, reviewer2, settings) -> None:  # type: ignore[no-untyped-def]
    """Without a staleness window, the cached figures change as soon as a review arrives."""
    settings.STATS_REFRESH_SECONDS = 0
    client = session(curator)
    first = client.get(f"/projects/{data.slug}/dashboard/?format=csv&chart=progress").content.decode()
    assert "fully reviewed,3" in first.splitlines()
    i3 = Item.objects.get(project=data, external_id="ext-3")
    _review(i3, reviewer2, {"correct": True, "helpfulness": 4}, days_ago=0, ms=500)
    second = client.get(f"/projects/{data.slug}/dashboard/?format=csv&chart=progress").content.decode()
    assert "fully reviewed,4" in second.splitlines() and "left,0" in second.splitlines()


def test_warm_dashboard_runs_few_queries(data, curator, django_assert_max_num_queries) -> None:  # type: ignore[no-untyped-def]
    client = session(curator)
    client.get(f"/projects/{data.slug}/dashboard/")
    # session + user + project + role + fingerprint + the navigation's two (+ slack for middleware);
    # the figures come from the cache.
    with django_assert_max_num_queries(8):
        assert client.get(f"/projects/{data.slug}/dashboard/").status_code == 200


def test_stale_figures_are_served_within_the_window(data, curator, reviewer2) -> None:  # type: ignore[no-untyped-def]
    from reviewapp.selectors.stats import project_stats_cached

    assert project_stats_cached(project=data).progress.complete == 3
    i3 = Item.objects.get(project=data, external_id="ext-3")
    _review(i3, reviewer2, {"correct": True, "helpfulness": 4}, days_ago=0, ms=500)
    assert project_stats_cached(project=data).progress.complete == 3  # within 30 s: not recomputed


def test_portable_paths_give_the_same_figures(data) -> None:  # type: ignore[no-untyped-def]
    # The demo runs on SQLite, CI on PostgreSQL: the SQLite fallbacks must agree with the SQL paths.
    from reviewapp.selectors import stats

    keys = [q.key for q in stats.questions_for_project(project=data) if q.kind in stats.STAT_KINDS]
    assert stats._consensus_counts_portable(project=data, keys=keys) == stats._consensus_counts(project=data, keys=keys)
    assert stats._consensus_counts_portable(project=data, keys=keys)  # there is something to compare
    medians = stats._medians_portable(project=data)
    assert {r.reviewer_id: r.median_time_ms for r in stats.reviewer_stats(project=data)} == {
        reviewer_id: pytest.approx(m) for reviewer_id, m in medians.items()
    }
    before = stats._stats_fingerprint_portable(project=data)
    Review.objects.filter(project=data).update(updated_at=timezone.now())
    assert stats._stats_fingerprint_portable(project=data) != before


def test_the_background_refresh_recomputes_only_changed_projects(data, curator, reviewer2) -> None:  # type: ignore[no-untyped-def]
    """The worker's refresh brings served figures up to date inside the staleness window, and
    leaves unchanged projects alone."""
    from reviewapp.selectors.stats import project_stats_cached, projects_stats_refresh

    assert project_stats_cached(project=data).progress.complete == 3
    assert projects_stats_refresh() == 0  # nothing changed since the page computed them
    i3 = Item.objects.get(project=data, external_id="ext-3")
    _review(i3, reviewer2, {"correct": True, "helpfulness": 4}, days_ago=0, ms=500)
    assert project_stats_cached(project=data).progress.complete == 3  # stale, within the window
    assert projects_stats_refresh() == 1
    assert project_stats_cached(project=data).progress.complete == 4
    assert projects_stats_refresh() == 0
