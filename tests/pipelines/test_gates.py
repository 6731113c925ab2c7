"""Promotion gates: each kind's pass and fail paths, validation, and the report contract."""

from __future__ import annotations

import json

import pytest

from pipelines.gates import gate_create, gate_params_validate, gate_update, gates_evaluate, gates_evaluate_all
from pipelines.models import Environment, PromotionGate
from reviewapp.errors import ValidationFailed
from reviewapp.models import AuditEvent
from tests.pipelines.evidence_helpers import finished_run, model_version, reviews_for, suite


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


# --- min_reviews and min_pass_rate ------------------------------------------------------------


def test_min_reviews(project, candidate, production, reviewer) -> None:
    reviews_for(project, "2", answers(4, 1), reviewer)
    reviews_for(project, "1", answers(9, 0), reviewer)  # another version's reviews do not count
    g = gate(project, "min_reviews", count=5)
    line = one_line(candidate, production)
    assert line.passed and line.figures["n"] == 5

    gate_update(gate=g, params={"count": 6}, actor=None)
    line = one_line(candidate, production)
    assert not line.passed and line.links[0]["url"] == f"/projects/{project.slug}/dashboard/"


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
    assert not line.passed and "No review" in line.detail


# --- not_worse_than_champion ------------------------------------------------------------------


def test_not_worse_passes_without_a_champion_and_for_the_champion_itself(project, candidate, production) -> None:
    gate(project, "not_worse_than_champion", metric="human_pass_rate")
    line = one_line(candidate, production)
    assert line.passed and "No champion" in line.detail

    production.current_version = candidate
    production.save()
    line = one_line(candidate, production)
    assert line.passed and "is the champion" in line.detail


def test_not_worse_on_human_pass_rate_uses_newcombes_interval(project, candidate, production, reviewer) -> None:
    champion = model_version(project, "1")
    production.current_version = champion
    production.save()
    reviews_for(project, "2", answers(56, 14), reviewer)
    reviews_for(project, "1", answers(48, 32), reviewer)
    gate(project, "not_worse_than_champion", metric="human_pass_rate")

    line = one_line(candidate, production)

    # Newcombe (1998) example: 56/70 - 48/80 = 0.2, 95% CI 0.0524 to 0.3339.
    assert line.passed and line.figures["difference"] == pytest.approx(0.2)
    assert line.figures["interval"] == pytest.approx([0.0524, 0.3339], abs=1e-4)
    assert line.figures["champion_version"] == "1" and "Newcombe" in line.figures["test"]

    # The other way round, v1 against champion v2, is clearly worse.
    production.current_version = candidate
    production.save()
    line = one_line(champion, production)
    assert not line.passed and line.figures["lower_bound"] == pytest.approx(-0.3339, abs=1e-4)


def test_not_worse_margin_lets_a_close_candidate_through(project, candidate, production, reviewer) -> None:
    champion = model_version(project, "1")
    production.current_version = champion
    production.save()
    reviews_for(project, "2", answers(40, 10), reviewer)
    reviews_for(project, "1", answers(40, 10), reviewer)
    g = gate(project, "not_worse_than_champion", metric="human_pass_rate")
    line = one_line(candidate, production)
    assert not line.passed and line.figures["difference"] == 0  # equal rates: the lower bound is below 0

    gate_update(gate=g, params={"metric": "human_pass_rate", "margin": 0.2}, actor=None)
    assert one_line(candidate, production).passed


def test_not_worse_on_a_suite_mean_uses_welch(project, candidate, production) -> None:
    champion = model_version(project, "1")
    production.current_version = champion
    production.save()
    core = suite(project)
    gate(project, "not_worse_than_champion", metric="correctness", suite_id=core.pk)

    line = one_line(candidate, production)
    assert not line.passed and "No succeeded run of the suite for this version" in line.detail

    mine = finished_run(project, core, version="2", scores={"correctness": [1, 0, 1, 1]})
    theirs = finished_run(project, core, version="1", scores={"correctness": [0, 0, 1, 0]})
    line = one_line(candidate, production)
    # 0.75 - 0.25 = 0.5, se = 0.35355: the interval -0.193 to 1.193 includes a loss, so the gate fails.
    assert not line.passed and line.figures["interval"] == pytest.approx([-0.19295, 1.19295], abs=1e-4)
    assert (line.figures["run_id"], line.figures["champion_run_id"]) == (mine.pk, theirs.pk)
    assert any(link["label"] == "Compare runs" for link in line.links)

    finished_run(project, core, version="2", scores={"correctness": [1.0] * 20 + [0.9] * 20})
    finished_run(project, core, version="1", scores={"correctness": [0.5] * 20 + [0.4] * 20})
    assert one_line(candidate, production).passed


def test_not_worse_on_a_suite_pass_rate_uses_newcombe(project, candidate, production) -> None:
    champion = model_version(project, "1")
    production.current_version = champion
    production.save()
    core = suite(project)
    finished_run(project, core, version="2", scores={}, verdicts={"correctness": [True] * 56 + [False] * 14})
    finished_run(project, core, version="1", scores={}, verdicts={"correctness": [True] * 48 + [False] * 32})
    gate(project, "not_worse_than_champion", metric="correctness", suite_id=core.pk, statistic="pass_rate")

    line = one_line(candidate, production)

    assert line.passed and line.figures["interval"] == pytest.approx([0.0524, 0.3339], abs=1e-4)


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
        ("min_reviews", {"count": 0}, {"params.count"}),
        ("min_reviews", {"count": 2.5, "extra": 1}, {"params.count", "params.extra"}),
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
