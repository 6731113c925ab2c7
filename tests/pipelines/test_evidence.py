"""Evidence of a model version: human reviews, pairwise wins, runs, the champion; figures checked by hand."""

from __future__ import annotations

import pytest
from django.utils import timezone

from pipelines.models import Environment
from pipelines.releases.evidence import (
    champion_for,
    evidence_compare,
    human_evidence,
    pairwise_evidence,
    runs_for_version,
    versions_summary,
)
from reviewapp.item_stats import wilson
from reviewapp.models import CuratedLabel, Review
from tests.factories import member
from tests.pipelines.evidence_helpers import finished_run, items_for, model_version, preferences, reviews_for, suite


def test_wilson_interval_of_18_of_20_matches_the_hand_computation() -> None:
    # p = 0.9, z = 1.95996: centre = (0.9 + z²/40) / (1 + z²/20) = 0.83555,
    # half = z·sqrt(0.09/20 + z²/1600) / (1 + z²/20) = 0.13658
    low, high = wilson(18, 20)
    assert low == pytest.approx(0.69897, abs=1e-4) and high == pytest.approx(0.97213, abs=1e-4)
    assert wilson(0, 0) is None
    low99, _ = wilson(18, 20, confidence=0.99)
    assert low99 < low  # a higher confidence widens the interval


def test_human_evidence_counts_current_reviews_of_the_version_only(project, reviewer) -> None:
    answers = [{"correct": True, "helpfulness": 5}] * 15 + [{"correct": True, "helpfulness": 3}] * 3
    answers += [{"correct": False, "helpfulness": 1}] * 2
    reviews_for(project, "2", answers, reviewer)
    reviews_for(project, "1", [{"correct": False, "helpfulness": 1}] * 4, reviewer)  # another version
    returned = reviews_for(project, "2", [{"correct": False}], reviewer)[0]
    Review.objects.filter(item=returned).update(returned_at=timezone.now())  # sent back: no longer counts

    human = human_evidence(project=project, model_version="2")

    assert (human.reviews, human.items, human.primary_question) == (20, 20, "correct")
    primary = human.primary
    assert (primary.passes, primary.n, primary.rate) == (18, 20, 0.9)
    assert primary.low == pytest.approx(0.69897, abs=1e-4) and primary.high == pytest.approx(0.97213, abs=1e-4)
    (rating,) = human.ratings
    assert rating.question == "helpfulness" and rating.n == 20
    assert rating.mean == pytest.approx((15 * 5 + 3 * 3 + 2 * 1) / 20) and rating.median == 5.0


def test_pairwise_wins_use_the_true_versions(project, reviewer) -> None:
    preferences(project, a="2", b="1", outcomes=["a", "a", "a", "b", "tie", "both_bad"], reviewers=[reviewer] * 6)
    preferences(project, a="1", b="2", outcomes=["b"], reviewers=[reviewer])  # shown the other way round: v2 wins
    preferences(project, a="2", b="3", outcomes=["a"], reviewers=[reviewer])  # another pair of versions

    result = pairwise_evidence(project=project, version="2", against="1")

    assert (result.wins, result.losses, result.ties, result.both_bad, result.n) == (4, 1, 1, 1, 5)
    assert result.win_rate == 0.8
    assert (result.low, result.high) == pytest.approx(wilson(4, 5))


def test_pairwise_wins_count_pairs_not_judgements(project, reviewer, reviewer2, curator) -> None:
    # One pair judged three times, all for v2; three pairs judged once each, all for v1. Per judgement
    # that would be 3 of 6 (50%); per pair it is 1 of 4 (25%), Wilson over the 4 unanimous pairs.
    preferences(
        project, a="2", b="1", outcomes=["a", "a", "a"], reviewers=[reviewer, reviewer2, curator], one_task=True
    )
    preferences(project, a="2", b="1", outcomes=["b", "b", "b"], reviewers=[reviewer] * 3)

    result = pairwise_evidence(project=project, version="2", against="1")

    assert (result.wins, result.losses, result.decisive, result.n) == (3, 3, 6, 4)
    assert result.win_rate == 0.25
    assert (result.low, result.high) == pytest.approx(wilson(1, 4))


def test_runs_for_a_version_are_stored_response_runs_of_its_items_or_runs_of_its_model(project) -> None:
    mv = model_version(project, "2")
    core = suite(project)
    stored = finished_run(project, core, version="2", scores={"correctness": [1.0]})
    generated = finished_run(
        project,
        core,
        version="1",
        scores={"correctness": [1.0]},
        target={"kind": "mlflow_model", "model_uri": "models:/support-bot/2"},
    )
    finished_run(project, core, version="1", scores={"correctness": [0.0]})
    finished_run(
        project, core, version="2", scores={"correctness": [0.0]}, target={"kind": "endpoint", "endpoint": "x"}
    )

    assert [r.pk for r in runs_for_version(version=mv)] == [generated.pk, stored.pk]


def test_champion_is_the_champion_environments_version_else_the_alias(project) -> None:
    v1 = model_version(project, "1")
    v2 = model_version(project, "2", aliases=["champion"])
    v3 = model_version(project, "3")
    assert champion_for(project=project) == v2

    Environment.objects.create(project=project, name="production", alias="champion", current_version=v1)
    staging = Environment.objects.create(project=project, name="staging", alias="staging", current_version=v3)
    empty = Environment.objects.create(project=project, name="canary", alias="canary")

    assert champion_for(project=project) == v1
    assert champion_for(project=project, environment=staging) == v3
    assert champion_for(project=project, environment=empty) == v1


def test_no_champion(project) -> None:
    model_version(project, "1")
    model_version(project, "2", aliases=["champion"], status="DELETED")
    assert champion_for(project=project) is None


def test_evidence_compare_puts_the_champion_beside_the_candidate(project, reviewer) -> None:
    v1 = model_version(project, "1", aliases=["champion"])
    v2 = model_version(project, "2")
    reviews_for(project, "2", [{"correct": True}] * 3 + [{"correct": False}], reviewer)
    reviews_for(project, "1", [{"correct": True}] + [{"correct": False}] * 3, reviewer)
    core = suite(project)
    run2 = finished_run(project, core, version="2", scores={"correctness": [1.0, 1.0, 0.0]})
    run1 = finished_run(project, core, version="1", scores={"correctness": [0.0, 1.0, 0.0]})
    preferences(project, a="2", b="1", outcomes=["a", "a"], reviewers=[reviewer] * 2)

    comparison = evidence_compare(model_version=v2)

    assert comparison.champion_version == v1 and not comparison.is_champion
    assert comparison.candidate.human.primary.rate == 0.75 and comparison.champion.human.primary.rate == 0.25
    assert comparison.candidate.pairwise.wins == 2
    (row,) = comparison.suite_rows()
    assert (row.candidate_run.id, row.champion_run.id) == (run2.pk, run1.pk)
    assert row.candidate["mean"] == pytest.approx(2 / 3) and row.champion["mean"] == pytest.approx(1 / 3)
    data = comparison.as_dict()
    assert data["champion_version"] == "1" and data["candidate"]["human"]["primary"]["passes"] == 3
    assert evidence_compare(model_version=v1).is_champion


def test_versions_summary_for_lists(project, reviewer) -> None:
    v1, v2 = model_version(project, "1"), model_version(project, "2")
    reviews_for(project, "2", [{"correct": True}] * 18 + [{"correct": False}] * 2, reviewer)
    finished_run(project, suite(project), version="2", scores={"correctness": [1.0]})

    summary = versions_summary(project=project, versions=[v1, v2])

    assert (summary[v1.pk].reviews, summary[v1.pk].runs, summary[v1.pk].pass_rate) == (0, 0, None)
    assert (summary[v2.pk].reviews, summary[v2.pk].passes, summary[v2.pk].runs) == (20, 18, 1)
    assert summary[v2.pk].pass_low == pytest.approx(0.69897, abs=1e-4)


def ten_reviews_of_one_item(project, version: str) -> None:  # type: ignore[no-untyped-def]
    """One item passed by ten reviewers, three items failed by one each: 10/13 reviews, 1/4 items."""
    people = [member(project, "reviewer", username=f"p{version}-{i}") for i in range(10)]
    popular, *others = items_for(project, version, 4)
    now = timezone.now()
    for person in people:
        Review.objects.create(
            project=project, item=popular, reviewer=person, answers={"correct": True, "helpfulness": 5},
            submitted_at=now, updated_at=now,
        )  # fmt: skip
    for item in others:
        Review.objects.create(
            project=project, item=item, reviewer=people[0], answers={"correct": False, "helpfulness": 1},
            submitted_at=now, updated_at=now,
        )  # fmt: skip


def test_human_evidence_counts_each_item_once(project) -> None:
    ten_reviews_of_one_item(project, "2")

    human = human_evidence(project=project, model_version="2")

    assert (human.reviews, human.items) == (13, 4)
    primary = human.primary
    assert (primary.rate, primary.n, primary.reviews, primary.passes) == (0.25, 4, 13, 1.0)
    assert primary.low == pytest.approx(0.04559, abs=1e-4) and primary.high == pytest.approx(0.69936, abs=1e-4)
    (rating,) = human.ratings
    assert (rating.mean, rating.n, rating.reviews) == (2.0, 4, 13)  # (5 + 1 + 1 + 1) / 4, not 53/13
    assert rating.low is not None and rating.low <= 2.0 <= rating.high


def test_a_curated_label_is_the_items_value(project, reviewer, reviewer2) -> None:
    item = reviews_for(project, "2", [{"correct": True, "helpfulness": 5}], reviewer)[0]
    now = timezone.now()
    Review.objects.create(
        project=project, item=item, reviewer=reviewer2, answers={"correct": True, "helpfulness": 4},
        submitted_at=now, updated_at=now,
    )  # fmt: skip
    CuratedLabel.objects.create(
        project=project, item=item, answers={"correct": False, "helpfulness": 2}, method="adjudicated",
        decided_by=reviewer, schema_version=1, created_at=now, updated_at=now,
    )  # fmt: skip

    human = human_evidence(project=project, model_version="2")

    assert (human.primary.rate, human.primary.n, human.primary.reviews, human.primary.curated) == (0.0, 1, 2, 1)
    assert human.ratings[0].mean == 2.0 and human.items_complete == 1


def test_versions_summary_counts_items(project) -> None:
    v2 = model_version(project, "2")
    ten_reviews_of_one_item(project, "2")

    summary = versions_summary(project=project, versions=[v2])[v2.pk]

    assert (summary.reviews, summary.items, summary.judged, summary.judged_reviews) == (13, 4, 4, 13)
    assert summary.pass_rate == 0.25 and summary.pass_low == pytest.approx(0.04559, abs=1e-4)


def test_evidence_against_the_champion_is_paired_on_shared_requests(project, reviewer) -> None:
    model_version(project, "1", aliases=["champion"])
    v2 = model_version(project, "2")
    shared = [f"Shared {i}?" for i in range(4)]
    reviews_for(project, "1", [{"correct": c} for c in (True, False, False, True, True)], reviewer,
                requests=[*shared, "Only the champion?"])  # fmt: skip
    reviews_for(project, "2", [{"correct": c} for c in (True, True, True, True, False, False)], reviewer,
                requests=[*shared, "Only v2 a?", "Only v2 b?"])  # fmt: skip
    core = suite(project)
    finished_run(project, core, version="2", scores={"correctness": [1.0, 1.0, 0.0]}, requests=shared[:3])
    finished_run(project, core, version="1", scores={"correctness": [0.0, 1.0, 0.0, 1.0]}, requests=shared)

    comparison = evidence_compare(model_version=v2)

    # Unpaired, each version alone: v1 3/5, v2 4/6. Paired on the 4 shared requests: 2/4 against 4/4.
    assert comparison.champion.human.primary.rate == 0.6
    correct = next(p for p in comparison.human_paired if p.question == "correct")
    f = correct.figure
    assert (f.shared, f.only_a, f.only_b, f.mean_a, f.mean_b, f.delta) == (4, 1, 2, 0.5, 1.0, 0.5)
    assert correct.summary == "compared on 4 shared items; 1 only in the champion, 2 only in this version"
    (row,) = comparison.suite_rows()
    assert (row.paired["shared"], row.paired["only_champion"], row.paired["only_candidate"]) == (3, 1, 0)
    assert (row.paired["mean_champion"], row.paired["mean_candidate"]) == (pytest.approx(1 / 3), pytest.approx(2 / 3))
    data = comparison.as_dict()
    assert data["human_paired"][0]["shared"] == 4 and data["human_paired"][0]["summary"].startswith("compared on 4")
    assert data["suites_paired"][0]["shared"] == 3
    assert "values" not in data["candidate"]["human"]  # the per-item table stays inside
