"""Promotion requests and decisions: two-person rule, double approval, gates re-checked, admin override,
rejection, one rollout per environment (also with two threads racing on PostgreSQL)."""

from __future__ import annotations

import threading

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.http import Http404

from pipelines.models import Approval, PromotionGate, PromotionRequest, Rollout
from pipelines.releases.promotion import (
    AlreadyApproved,
    GatesFailed,
    environment_create,
    environments_ensure_default,
    promotion_approve,
    promotion_cancel,
    promotion_override,
    promotion_reject,
    promotion_request,
    rollback_request,
)
from pipelines.selectors.promotions import promotion_get_for_user
from reviewapp.errors import Conflict, ValidationFailed
from reviewapp.models import AuditEvent
from tests.pipelines.promotion_fixtures import databricks_environment, engineers, versions

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(project):  # type: ignore[no-untyped-def]
    erin, ezra, ada = engineers(project)
    v1, v2, v3 = versions(project, 1, 2, 3)
    env = databricks_environment(project, current_version=v1)
    return {"erin": erin, "ezra": ezra, "ada": ada, "v1": v1, "v2": v2, "v3": v3, "env": env, "project": project}


def request_v2(s, **kw):  # type: ignore[no-untyped-def]
    return promotion_request(actor=s["erin"], model_version=s["v2"], environment=s["env"], reason="Better evals", **kw)


def test_a_request_stores_the_gate_report_and_is_audited(setup) -> None:  # type: ignore[no-untyped-def]
    req = request_v2(setup)

    assert req.status == PromotionRequest.Status.PENDING
    assert req.gate_report == {"passed": True, "lines": []}
    assert AuditEvent.objects.filter(action="promotion.requested", target_id=str(req.pk)).exists()


def test_a_request_needs_a_reason_and_a_matching_project(setup, outsider) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationFailed) as exc:
        promotion_request(actor=setup["erin"], model_version=setup["v2"], environment=setup["env"], reason=" ")
    assert exc.value.errors[0]["field"] == "reason"
    with pytest.raises(Conflict, match="already live"):
        promotion_request(actor=setup["erin"], model_version=setup["v1"], environment=setup["env"], reason="x")
    request_v2(setup)
    with pytest.raises(Conflict, match="already open"):
        request_v2(setup)


def test_the_requester_cannot_approve_their_own_request(setup) -> None:  # type: ignore[no-untyped-def]
    req = request_v2(setup)

    with pytest.raises(PermissionDenied, match="two-person rule"):
        promotion_approve(actor=setup["erin"], request_id=req.pk)
    req.refresh_from_db()
    assert req.status == PromotionRequest.Status.PENDING
    assert not Approval.objects.exists() and not Rollout.objects.exists()


def test_a_second_engineers_approval_queues_a_rollout_with_canary_steps(setup) -> None:  # type: ignore[no-untyped-def]
    req = request_v2(setup)

    promotion_approve(actor=setup["ezra"], request_id=req.pk, comment="LGTM")

    req.refresh_from_db()
    assert req.status == PromotionRequest.Status.APPROVED and req.decided_at is not None
    rollout = Rollout.objects.get(request=req)
    assert (rollout.status, rollout.stages, rollout.from_version, rollout.to_version) == (
        "queued",
        [10, 50, 100],
        setup["v1"],
        setup["v2"],
    )
    assert list(rollout.steps.values_list("key", flat=True)) == [
        "alias",
        "traffic_10",
        "health_10",
        "traffic_50",
        "health_50",
        "traffic_100",
        "health_100",
        "finish",
    ]
    assert AuditEvent.objects.filter(action="promotion.approved", actor=setup["ezra"]).exists()


def test_required_approvals_are_distinct_and_approving_twice_is_refused(setup, project) -> None:  # type: ignore[no-untyped-def]
    setup["env"].required_approvals = 2
    setup["env"].save()
    req = request_v2(setup)

    promotion_approve(actor=setup["ezra"], request_id=req.pk)
    req.refresh_from_db()
    assert req.status == PromotionRequest.Status.PENDING and not Rollout.objects.exists()
    with pytest.raises(AlreadyApproved, match="already approved"):
        promotion_approve(actor=setup["ezra"], request_id=req.pk)

    promotion_approve(actor=setup["ada"], request_id=req.pk)
    req.refresh_from_db()
    assert req.status == PromotionRequest.Status.APPROVED
    assert Rollout.objects.filter(request=req).count() == 1
    with pytest.raises(Conflict, match="no longer be approved"):
        promotion_approve(actor=setup["ada"], request_id=req.pk)


def test_approval_rechecks_gates_and_only_an_admin_with_a_justification_overrides(setup) -> None:  # type: ignore[no-untyped-def]
    req = request_v2(setup)
    assert req.gate_report["passed"] is True
    # New evidence: a gate the version does not meet (no human reviews at all).
    PromotionGate.objects.create(project=setup["project"], kind="min_reviews", params={"count": 5})

    with pytest.raises(GatesFailed) as failed:
        promotion_approve(actor=setup["ezra"], request_id=req.pk)
    # which gate fails and why; "new evidence" because the gates passed when the request was made
    assert "1 gate fails" in failed.value.message and "new evidence arrived since" in failed.value.message
    assert "0 reviews of 0 items of version 2" in failed.value.message and "needs 5 items" in failed.value.message
    with pytest.raises(PermissionDenied, match="Only an admin"):
        promotion_approve(actor=setup["ezra"], request_id=req.pk, override_justification="trust me")
    with pytest.raises(ValidationFailed) as exc:
        promotion_override(actor=setup["ada"], request_id=req.pk, justification="   ")
    assert exc.value.errors[0]["field"] == "override_justification"
    with pytest.raises(GatesFailed):
        promotion_approve(actor=setup["ada"], request_id=req.pk)
    assert not Approval.objects.exists()

    promotion_override(
        actor=setup["ada"], request_id=req.pk, justification="Hotfix for a security issue; reviewed live."
    )

    req.refresh_from_db()
    assert req.status == PromotionRequest.Status.APPROVED
    assert req.override_justification == "Hotfix for a security issue; reviewed live."
    assert req.overridden_by == setup["ada"]
    assert req.gate_report["passed"] is False
    event = AuditEvent.objects.get(action="promotion.override")
    assert event.data["override_justification"].startswith("Hotfix")


def test_rejection_needs_a_reason_and_closes_the_request(setup) -> None:  # type: ignore[no-untyped-def]
    req = request_v2(setup)
    with pytest.raises(ValidationFailed):
        promotion_reject(actor=setup["ezra"], request_id=req.pk, reason="")

    promotion_reject(actor=setup["ezra"], request_id=req.pk, reason="Pass rate CI too wide")

    req.refresh_from_db()
    assert req.status == PromotionRequest.Status.REJECTED
    assert Approval.objects.get(request=req).comment == "Pass rate CI too wide"
    with pytest.raises(Conflict):
        promotion_approve(actor=setup["ada"], request_id=req.pk)
    with pytest.raises(Conflict):
        promotion_cancel(actor=setup["erin"], request_id=req.pk)


def test_a_second_rollout_on_the_same_environment_is_refused(setup) -> None:  # type: ignore[no-untyped-def]
    first = request_v2(setup)
    second = promotion_request(actor=setup["erin"], model_version=setup["v3"], environment=setup["env"], reason="v3")
    promotion_approve(actor=setup["ezra"], request_id=first.pk)

    with pytest.raises(Conflict, match="only one rollout per endpoint"):
        promotion_approve(actor=setup["ezra"], request_id=second.pk)

    second.refresh_from_db()
    assert second.status == PromotionRequest.Status.PENDING
    assert not Approval.objects.filter(request=second).exists()  # the refused approval left nothing behind


def test_rollback_needs_a_live_version_with_a_predecessor(setup) -> None:  # type: ignore[no-untyped-def]
    req = request_v2(setup)
    with pytest.raises(Conflict, match="Only the version live"):
        rollback_request(actor=setup["ezra"], request_id=req.pk, reason="test")


def test_reviewers_cannot_see_promotions_and_outsiders_get_404(setup, reviewer, outsider) -> None:  # type: ignore[no-untyped-def]
    req = request_v2(setup)
    with pytest.raises(PermissionDenied):
        promotion_get_for_user(user=reviewer, pk=req.pk)
    with pytest.raises(Http404):
        promotion_get_for_user(user=outsider, pk=req.pk)
    assert promotion_get_for_user(user=setup["ezra"], pk=req.pk).pk == req.pk


def test_environments_are_validated_and_defaults_are_local(setup, project) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationFailed) as exc:
        environment_create(project=project, actor=setup["ada"], name="qa", canary_stages=[50, 10], local_port=6000)
    assert exc.value.errors[0]["field"] == "canary_stages"
    staging, production = environments_ensure_default(project=project, base_port=5900)
    assert (staging.alias, staging.local_port, staging.serving_kind) == ("staging", 5901, "local")
    assert (production.alias, production.canary_stages) == ("champion", [10, 50, 100])
    assert environments_ensure_default(project=project, base_port=5900) == [staging, production]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_approvals_racing_on_one_environment_create_one_rollout(project) -> None:  # type: ignore[no-untyped-def]
    erin, ezra, ada = engineers(project)
    v1, v2, v3 = versions(project, 1, 2, 3)
    env = databricks_environment(project, current_version=v1)
    a = promotion_request(actor=erin, model_version=v2, environment=env, reason="a")
    b = promotion_request(actor=erin, model_version=v3, environment=env, reason="b")
    barrier = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def approve(name: str, user, req) -> None:  # type: ignore[no-untyped-def]
        try:
            barrier.wait(timeout=10)
            promotion_approve(actor=user, request_id=req.pk)
            outcomes[name] = "approved"
        except Conflict as exc:
            outcomes[name] = f"refused: {exc.message}"
        finally:
            connection.close()

    threads = [
        threading.Thread(target=approve, args=("a", ezra, a)),
        threading.Thread(target=approve, args=("b", ada, b)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)

    assert sorted(o.split(":")[0] for o in outcomes.values()) == ["approved", "refused"], outcomes
    assert Rollout.objects.filter(environment=env).count() == 1
    assert PromotionRequest.objects.filter(status="approved").count() == 1
    assert PromotionRequest.objects.filter(status="pending").count() == 1


def test_approving_while_gates_fail_says_which_gates_fail_and_why(setup) -> None:  # type: ignore[no-untyped-def]
    """Gates that already failed at the request: the refusal names them, and claims no new evidence."""
    PromotionGate.objects.create(project=setup["project"], kind="min_reviews", params={"count": 5})
    PromotionGate.objects.create(project=setup["project"], kind="min_reviews", params={"count": 7})
    req = request_v2(setup)
    assert req.gate_report["passed"] is False
    failing = [line for line in req.gate_report["lines"] if not line["passed"]]
    assert len(failing) == 2

    with pytest.raises(GatesFailed) as exc:
        promotion_approve(actor=setup["ezra"], request_id=req.pk)

    message = exc.value.message
    assert message.startswith("Cannot approve: 2 gates fail (")
    for line in failing:
        assert line["title"] in message and line["detail"] in message
    assert "New evidence" not in message and "new evidence" not in message
    assert "override justification" in message
    assert not Approval.objects.exists()


def test_a_rollback_needs_a_written_reason(setup) -> None:  # type: ignore[no-untyped-def]
    req = request_v2(setup)
    for blank in ("", "   "):
        with pytest.raises(ValidationFailed) as exc:
            rollback_request(actor=setup["ezra"], request_id=req.pk, reason=blank)
        assert exc.value.errors[0]["field"] == "reason"
    assert not Rollout.objects.exists()
