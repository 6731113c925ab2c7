"""Promotion gates: each kind's pass and fail paths, validation, and the report contract."""

from __future__ import annotations

import importlib
import json

import pytest
from django.utils import timezone

from pipelines.models import Environment, PromotionGate
from pipelines.releases.gates import gate_create, gate_params_validate, gate_update, gates_evaluate, gates_evaluate_all
from reviewapp.errors import ValidationFailed
from reviewapp.models import AuditEvent, CuratedLabel, Review
from tests.factories import member
from tests.pipelines.evidence_helpers import finished_run, items_for, model_version, reviews_for, suite


@pytest.fixture
def candidate(project):  # type: ignore[no-untyped-def]
    return model_version(project, "2")


@pytest.fixture
def production(project):  # type: ignore[no-untyped-def]
    return Environment.objects.create(project=project, name="production", alias="champion")


def gate(project, kind, **params):  # type: ignore[no-untyped-def]
    return gate_create(project=project, kind=kind, params=params, actor=None)


def one_line(candidate, production):  # type: ignore[no-untyped-def]
    report = gates_evaluate(model_version=candidate, environment=production)
    (line,) = report.lines
    assert report.passed == line.passed
    json.dumps(report.as_dict())  # stored on promotion requests as JSON
    return line


def answers(passes: int, fails: int) -> list[dict[str, bool]]:
    return [{"correct": True}] * passes + [{"correct": False}] * fails


# --- suite_metric -----------------------------------------------------------------------------


def test_suite_metric_uses_the_latest_succeeded_run(project, candidate, production) -> None:
    core = suite(project)
    old = finished_run(project, core, version="2", scores={"correctness": [1.0, 1.0]})
    latest = finished_run(project, core, version="2", scores={"correctness": [1.0, 0.0, 1.0, 1.0]})
    finished_run(project, core, version="2", scores={"correctness": [0.0]}, status="failed")  # not counted
    gate(project, "suite_metric", suite_id=core.pk, metric="correctness", op=">=", threshold=0.7)

    line = one_line(candidate, production)

    assert line.passed and line.figures["run_id"] == latest.pk != old.pk
    assert line.figures["value"] == 0.75 and line.figures["n"] == 4 and line.figures["threshold"] == 0.7
    assert line.links[0] == {"label": f"Run #{latest.pk}", "url": f"/evaluations/runs/{latest.pk}/"}


def test_suite_metric_fails_below_threshold_without_a_run_or_when_stale(project, candidate, production) -> None:
    core = suite(project, scorers=("correctness", "latency"))
    g = gate(project, "suite_metric", suite_id=core.pk, metric="correctness", threshold=0.8)

    line = one_line(candidate, production)
    assert not line.passed and "No succeeded run" in line.detail

    finished_run(project, core, version="2", scores={"correctness": [1.0, 0.0, 1.0, 1.0]}, finished_days_ago=10)
    line = one_line(candidate, production)
    assert not line.passed and line.figures["value"] == 0.75

    gate_update(
        gate=g, params={"suite_id": core.pk, "metric": "correctness", "threshold": 0.7, "max_age_days": 7}, actor=None
    )
    line = one_line(candidate, production)
    assert not line.passed and "days old" in line.detail

    gate_update(gate=g, params={"suite_id": core.pk, "metric": "correctness", "op": "<=", "threshold": 0.5}, actor=None)
    assert not one_line(candidate, production).passed
    gate_update(
        gate=g,
        params={"suite_id": core.pk, "metric": "correctness", "statistic": "pass_rate", "threshold": 0.5},
        actor=None,
    )
    line = one_line(candidate, production)
    assert not line.passed and "has no pass_rate" in line.detail  # the run recorded no verdicts


# --- min_items and min_pass_rate --------------------------------------------------------------


def review(project, item, reviewer, given) -> None:  # type: ignore[no-untyped-def]
    now = timezone.now()
    Review.objects.create(
        project=project, item=item, reviewer=reviewer, answers=given, submitted_at=now, updated_at=now
    )


def test_min_items_counts_done_items_not_reviews(project, candidate, production, reviewer, reviewer2) -> None:
    project.reviews_per_item = 2
    project.save()
    third = member(project, "reviewer", username="rhea")
    full, short, curated, other = items_for(project, "2", 3) + items_for(project, "1", 1)
    for person in (reviewer, reviewer2, third):
        review(project, full, person, {"correct": True})  # 3 reviews: complete
    review(project, short, reviewer, {"correct": True})  # 1 of 2 reviews: not done
    review(project, curated, reviewer, {"correct": False})  # 1 review, but a curated label: done
    CuratedLabel.objects.create(
        project=project,
        item=curated,
        answers={"correct": False},
        method="consensus",
        schema_version=1,
        created_at=timezone.now(),
        updated_at=timezone.now(),
    )
    for person in (reviewer, reviewer2):
        review(project, other, person, {"correct": True})  # another version's item does not count
    g = gate(project, "min_items", count=2)

    line = one_line(candidate, production)

    assert line.passed and line.kind == "min_items"
    assert (line.figures["items"], line.figures["reviews"], line.figures["items_reviewed"]) == (2, 4, 3)
    assert "4 reviews of 2 items" in line.detail and "1 more item still short of reviews" in line.detail

    gate_update(gate=g, params={"count": 3}, actor=None)  # five reviews would pass a review count of 3
    line = one_line(candidate, production)
    assert not line.passed and line.links[0]["url"] == f"/projects/{project.slug}/dashboard/"


def test_min_reviews_is_read_as_min_items(project, candidate, production, reviewer) -> None:
    reviews_for(project, "2", answers(3, 0), reviewer)
    created = gate(project, "min_reviews", count=3)  # the deprecated name, as API input
    assert created.kind == "min_items" and created.params == {"count": 3}
    created.delete()
    # A gate stored under the old name before the migration ran still works, as min_items.
    stored = PromotionGate.objects.create(project=project, kind="min_reviews", params={"count": 3})
    line = one_line(candidate, production)
    assert line.passed and line.kind == "min_items" and line.figures["items"] == 3
    gate_update(gate=stored, params={"count": 4}, actor=None)
    stored.refresh_from_db()
    assert stored.kind == "min_items" and not one_line(candidate, production).passed


def test_the_migration_renames_stored_min_reviews_gates(project) -> None:
    from django.apps import apps

    migration = importlib.import_module("pipelines.migrations.0006_gate_min_items")
    old = PromotionGate.objects.create(project=project, kind="min_reviews", params={"count": 7})
    other = PromotionGate.objects.create(project=project, kind="min_pass_rate", params={"threshold": 0.5})
    migration.rename_forward(apps, None)
    assert PromotionGate.objects.get(pk=old.pk).kind == "min_items"
    assert PromotionGate.objects.get(pk=other.pk).kind == "min_pass_rate"
    migration.rename_backward(apps, None)
    assert PromotionGate.objects.get(pk=old.pk).kind == "min_reviews"


def test_min_pass_rate_counts_each_item_once(project, candidate, production, reviewer, reviewer2) -> None:
    # One item passed by ten reviewers, three items failed by one each: 10/13 reviews pass, 1/4 items.
    people = [reviewer, reviewer2] + [member(project, "reviewer", username=f"r{i}") for i in range(8)]
    popular, *others = items_for(project, "2", 4)
    for person in people:
        review(project, popular, person, {"correct": True})
    for item in others:
        review(project, item, reviewer, {"correct": False})
    gate(project, "min_pass_rate", threshold=0.5)

    line = one_line(candidate, production)

    assert not line.passed
    assert (line.figures["items"], line.figures["reviews"], line.figures["value"]) == (4, 13, 0.25)
    assert line.figures["lower_bound"] == pytest.approx(0.04559, abs=1e-4)  # Wilson 1/4
    assert "13 reviews of 4 items" in line.detail


def test_min_pass_rate_compares_the_wilson_lower_bound_not_the_raw_rate(project, candidate, production, reviewer):
    reviews_for(project, "2", answers(18, 2), reviewer)
    g = gate(project, "min_pass_rate", threshold=0.69)

    line = one_line(candidate, production)
    assert line.passed and line.figures["question"] == "correct"
    assert line.figures["lower_bound"] == pytest.approx(0.69897, abs=1e-4)

    # 90% raw pass rate, but the lower bound (69.9%) is below 75%: the gate fails.
    gate_update(gate=g, params={"threshold": 0.75}, actor=None)
    line = one_line(candidate, production)
    assert not line.passed and line.figures["value"] == 0.9

    gate_update(gate=g, params={"threshold": 0.69, "confidence": 0.99}, actor=None)
    assert not one_line(candidate, production).passed  # wider interval at 99%


def test_min_pass_rate_without_reviews_fails(project, candidate, production) -> None:
    gate(project, "min_pass_rate", threshold=0.1)
    line = one_line(candidate, production)
    assert not line.passed and "No item of version 2 has an answer" in line.detail


# --- not_worse_than_champion ------------------------------------------------------------------


def test_not_worse_passes_without_a_champion_and_for_the_champion_itself(project, candidate, production) -> None:
    gate(project, "not_worse_than_champion", metric="human_pass_rate")
    line = one_line(candidate, production)
    assert line.passed and "No champion" in line.detail

    production.current_version = candidate
    production.save()
    line = one_line(candidate, production)
    assert line.passed and "is the champion" in line.detail


def paired_reviews(project, reviewer, *, champion: list[bool], candidate: list[bool], extra=(0, 0)) -> None:  # type: ignore[no-untyped-def]
    """Both versions answer the same requests (the i-th of each list); ``extra``: requests only one answered."""
    shared = [f"Shared question {i}?" for i in range(len(champion))]
    only_1 = [f"Only v1 {i}?" for i in range(extra[0])]
    only_2 = [f"Only v2 {i}?" for i in range(extra[1])]
    reviews_for(
        project, "1", [{"correct": v} for v in champion + [True] * extra[0]], reviewer, requests=shared + only_1
    )
    reviews_for(
        project, "2", [{"correct": v} for v in candidate + [False] * extra[1]], reviewer, requests=shared + only_2
    )


def test_not_worse_on_human_pass_rate_is_paired_on_shared_requests(project, candidate, production, reviewer) -> None:
    champion = model_version(project, "1")
    production.current_version = champion
    production.save()
    # 30 shared requests: the champion passes 15, the candidate the same 15 and 10 more.
    paired_reviews(
        project,
        reviewer,
        champion=[True] * 15 + [False] * 15,
        candidate=[True] * 25 + [False] * 5,
        extra=(3, 2),
    )
    gate(project, "not_worse_than_champion", metric="human_pass_rate")

    line = one_line(candidate, production)

    assert line.passed and line.figures["difference"] == pytest.approx(10 / 30)
    assert (line.figures["value"], line.figures["champion_value"]) == (pytest.approx(25 / 30), 0.5)
    assert (line.figures["shared"], line.figures["only_champion"], line.figures["only_candidate"]) == (30, 3, 2)
    assert "compared on 30 shared items; 3 only in the champion, 2 only in this version" in line.detail
    assert line.figures["lower_bound"] > 0 and "Paired bootstrap" in line.figures["test"]
    # Seeded: the same data gives the same interval.
    assert one_line(candidate, production).figures["interval"] == line.figures["interval"]

    # The other way round, v1 against champion v2, is clearly worse.
    production.current_version = candidate
    production.save()
    line = one_line(champion, production)
    assert not line.passed and line.figures["difference"] == pytest.approx(-10 / 30)


def test_not_worse_fails_below_the_shared_minimum(project, candidate, production, reviewer) -> None:
    champion = model_version(project, "1")
    production.current_version = champion
    production.save()
    paired_reviews(project, reviewer, champion=[False] * 12, candidate=[True] * 12, extra=(5, 0))
    g = gate(project, "not_worse_than_champion", metric="human_pass_rate")

    line = one_line(candidate, production)
    # Clearly better on what is shared, but 12 shared requests are fewer than the default 20.
    assert not line.passed and line.figures["shared"] == 12 and line.figures["min_shared_items"] == 20
    assert "Only 12 shared" in line.detail and "at least 20" in line.detail and "5 only in the champion" in line.detail

    gate_update(gate=g, params={"metric": "human_pass_rate", "min_shared_items": 10}, actor=None)
    assert one_line(candidate, production).passed


def test_not_worse_margin_lets_a_close_candidate_through(project, candidate, production, reviewer) -> None:
    champion = model_version(project, "1")
    production.current_version = champion
    production.save()
    # Equal rates (20/30 each): the candidate fixes five requests and breaks five others.
    paired_reviews(
        project,
        reviewer,
        champion=[True] * 15 + [False] * 5 + [True] * 5 + [False] * 5,
        candidate=[True] * 15 + [True] * 5 + [False] * 5 + [False] * 5,
    )
    g = gate(project, "not_worse_than_champion", metric="human_pass_rate")
    line = one_line(candidate, production)
    assert not line.passed and line.figures["difference"] == 0  # equal rates: the lower bound is below 0

    gate_update(gate=g, params={"metric": "human_pass_rate", "margin": 0.3}, actor=None)
    assert one_line(candidate, production).passed


def test_not_worse_on_a_suite_mean_is_paired(project, candidate, production) -> None:
    champion = model_version(project, "1")
    production.current_version = champion
    production.save()
    core = suite(project)
    gate(project, "not_worse_than_champion", metric="correctness", suite_id=core.pk)

    line = one_line(candidate, production)
    assert not line.passed and "No succeeded run of the suite for this version" in line.detail

    few = [f"q{i}" for i in range(4)]
    mine = finished_run(project, core, version="2", scores={"correctness": [1, 0, 1, 1]}, requests=few)
    theirs = finished_run(project, core, version="1", scores={"correctness": [0, 0, 1, 0]}, requests=few)
    line = one_line(candidate, production)
    assert not line.passed and line.figures["shared"] == 4 and "Only 4 shared" in line.detail
    assert (line.figures["run_id"], line.figures["champion_run_id"]) == (mine.pk, theirs.pk)
    assert any(link["label"] == "Compare runs" for link in line.links)

    many = [f"r{i}" for i in range(40)]
    finished_run(project, core, version="2", scores={"correctness": [1.0] * 20 + [0.9] * 20}, requests=many)
    finished_run(project, core, version="1", scores={"correctness": [0.5] * 20 + [0.4] * 20}, requests=many)
    line = one_line(candidate, production)
    assert line.passed and line.figures["difference"] == pytest.approx(0.5) and line.figures["shared"] == 40
    assert line.figures["interval"] == pytest.approx([0.5, 0.5])  # every pair differs by exactly 0.5


def test_not_worse_on_a_suite_pass_rate_is_paired(project, candidate, production) -> None:
    champion = model_version(project, "1")
    production.current_version = champion
    production.save()
    core = suite(project)
    requests = [f"q{i}" for i in range(80)]
    verdicts_2 = [True] * 56 + [False] * 14
    verdicts_1 = [True] * 48 + [False] * 32
    finished_run(project, core, version="2", scores={}, verdicts={"correctness": verdicts_2}, requests=requests[:70])
    finished_run(project, core, version="1", scores={}, verdicts={"correctness": verdicts_1}, requests=requests)
    gate(project, "not_worse_than_champion", metric="correctness", suite_id=core.pk, statistic="pass_rate")

    line = one_line(candidate, production)

    # On the 70 shared requests the champion passes 48, the candidate 56 (the same 48 and 8 more).
    assert line.passed and line.figures["difference"] == pytest.approx(8 / 70)
    assert (line.figures["shared"], line.figures["only_champion"], line.figures["only_candidate"]) == (70, 10, 0)
    assert line.figures["lower_bound"] >= 0


# --- the report -------------------------------------------------------------------------------


def test_report_passes_only_when_every_applicable_gate_passes(project, candidate, production, reviewer) -> None:
    staging = Environment.objects.create(project=project, name="staging", alias="staging")
    reviews_for(project, "2", answers(3, 0), reviewer)
    gate(project, "min_reviews", count=3)
    gate_create(project=project, kind="min_reviews", params={"count": 50}, environment="staging", actor=None)
    disabled = gate(project, "min_reviews", count=100)
    gate_update(gate=disabled, enabled=False, actor=None)

    assert gates_evaluate(model_version=candidate, environment=production).passed
    staging_report = gates_evaluate(model_version=candidate, environment=staging)
    assert not staging_report.passed and [line.passed for line in staging_report.lines] == [True, False]
    assert [(env.name, r.passed) for env, r in gates_evaluate_all(model_version=candidate)] == [
        ("production", True),
        ("staging", False),
    ]


def test_a_gate_made_invalid_later_fails(project, candidate, production, reviewer) -> None:
    reviews_for(project, "2", answers(3, 0), reviewer)
    g = gate(project, "min_pass_rate", question="correct", threshold=0.1)
    assert one_line(candidate, production).passed
    # The question was made a rating since (or the row was edited in the admin): fail, never pass silently.
    project.questions.filter(key="correct").update(kind="rating")

    line = one_line(candidate, production)

    assert not line.passed and "no longer valid" in line.detail and "params.question" in line.detail
    assert PromotionGate.objects.get(pk=g.pk).enabled


def test_gate_changes_are_audited(project) -> None:
    g = gate(project, "min_reviews", count=3)
    gate_update(gate=g, params={"count": 4}, actor=None)
    assert list(
        AuditEvent.objects.filter(project=project, action__startswith="promotion.")
        .values_list("action", flat=True)
        .order_by("id")
    ) == [
        "promotion.gate_create",
        "promotion.gate_update",
    ]


# --- validation -------------------------------------------------------------------------------


def fields_of(exc: pytest.ExceptionInfo[ValidationFailed]) -> set[str]:
    return {e["field"] for e in exc.value.errors}


@pytest.mark.parametrize(
    ("kind", "params", "fields"),
    [
        ("suite_metric", {}, {"params.suite_id", "params.metric", "params.threshold"}),
        (
            "suite_metric",
            {"suite_id": 999999, "metric": "x", "threshold": 1, "op": ">"},
            {"params.suite_id", "params.op"},
        ),
        (
            "suite_metric",
            {"suite_id": "1", "metric": "", "threshold": True},
            {"params.suite_id", "params.metric", "params.threshold"},
        ),
        ("min_items", {"count": 0}, {"params.count"}),
        ("min_reviews", {"count": 2.5, "extra": 1}, {"params.count", "params.extra"}),
        ("not_worse_than_champion", {"metric": "human_pass_rate", "min_shared_items": 1}, {"params.min_shared_items"}),
        ("min_pass_rate", {"threshold": 1.5, "confidence": 1}, {"params.threshold", "params.confidence"}),
        ("min_pass_rate", {"threshold": 0.8, "question": "helpfulness"}, {"params.question"}),
        ("not_worse_than_champion", {"metric": "correctness"}, {"params.suite_id"}),
        (
            "not_worse_than_champion",
            {"metric": "human_pass_rate", "margin": -0.1, "suite_id": 1},
            {"params.margin", "params.suite_id"},
        ),
        ("nonsense", {}, {"kind"}),
    ],
)
def test_bad_params_name_the_field(project, kind, params, fields) -> None:
    with pytest.raises(ValidationFailed) as exc:
        gate_params_validate(project=project, kind=kind, params=params)
    assert fields_of(exc) == fields


def test_suite_metric_names_must_be_scorers_of_the_suite(project) -> None:
    core = suite(project, scorers=("correctness",))
    with pytest.raises(ValidationFailed) as exc:
        gate_params_validate(
            project=project, kind="suite_metric", params={"suite_id": core.pk, "metric": "fluency", "threshold": 0.5}
        )
    assert fields_of(exc) == {"params.metric"} and "correctness" in exc.value.errors[0]["message"]


def test_defaults_are_filled_in_and_environment_must_be_the_projects(project) -> None:
    assert gate_params_validate(project=project, kind="min_pass_rate", params={"threshold": 0.8}) == {
        "question": "",
        "threshold": 0.8,
        "confidence": 0.95,
    }
    with pytest.raises(ValidationFailed) as exc:
        gate_create(project=project, kind="min_reviews", params={"count": 1}, environment="nowhere", actor=None)
    assert fields_of(exc) == {"environment"}
    assert not PromotionGate.objects.exists()
