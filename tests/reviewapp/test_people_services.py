"""People services: members and the last-admin guard, invitations (hashed, single use, expiry,
revocation, new accounts), and deactivation stopping sessions and API tokens at once."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client, override_settings
from django.utils import timezone

from reviewapp.errors import NotAllowed, ValidationFailed
from reviewapp.models import Assignment, AuditEvent, Invitation, Membership, ReviewerGroup
from reviewapp.services.assignments import reviewer_group_create
from reviewapp.services.instance import LastInstanceAdmin, instance_admin_set, user_set_active
from reviewapp.services.invitations import (
    InvitationUnusable,
    invitation_accept,
    invitation_accept_new_account,
    invitation_create,
    invitation_revoke,
)
from reviewapp.services.members import LastAdmin, member_add, member_remove, member_role_change
from reviewapp.services.tokens import api_token_create
from tests.factories import UserFactory, make_items, member

STRONG = "correct horse battery staple 42"


@pytest.fixture
def admin(project):
    return member(project, "admin", username="ada")


# --- members ---------------------------------------------------------------------------------


def test_add_member_is_audited_and_refuses_unknown_and_duplicate(project, admin, outsider):
    membership = member_add(project=project, data={"username": "otto", "role": "curator"}, actor=admin)
    assert membership.role == "curator"
    event = AuditEvent.objects.get(action="member.add")
    assert event.actor == admin and event.data["username"] == "otto" and event.project == project

    with pytest.raises(ValidationFailed) as exc:
        member_add(project=project, data={"username": "otto"}, actor=admin)
    assert exc.value.errors[0]["field"] == "username"
    with pytest.raises(ValidationFailed) as exc:
        member_add(project=project, data={"username": "nobody", "role": "boss"}, actor=admin)
    fields = {e["field"] for e in exc.value.errors}
    assert fields == {"role"}  # the role is refused before the user is looked up
    with pytest.raises(ValidationFailed) as exc:
        member_add(project=project, data={"username": "nobody"}, actor=admin)
    assert exc.value.errors == [{"index": None, "field": "username", "message": "No active user has this username."}]


def test_last_admin_cannot_be_demoted_or_removed(project, admin, reviewer):
    membership = Membership.objects.get(project=project, user=admin)
    with pytest.raises(LastAdmin):
        member_role_change(membership=membership, data={"role": "curator"}, actor=admin)
    with pytest.raises(LastAdmin):
        member_remove(membership=membership, actor=admin)
    assert Membership.objects.get(pk=membership.pk).role == "admin"

    # With a second admin, the first may step down.
    other = Membership.objects.get(project=project, user=reviewer)
    member_role_change(membership=other, data={"role": "admin"}, actor=admin)
    member_role_change(membership=membership, data={"role": "reviewer"}, actor=admin)
    assert Membership.objects.get(pk=membership.pk).role == "reviewer"
    # ...and now the other one is the last.
    with pytest.raises(LastAdmin):
        member_remove(membership=Membership.objects.get(pk=other.pk), actor=admin)
    changes = list(AuditEvent.objects.filter(action="member.role").values_list("data", flat=True))
    assert {(c["username"], c["from"], c["to"]) for c in changes} == {
        ("rita", "reviewer", "admin"),
        ("ada", "admin", "reviewer"),
    }


def test_remove_member_leaves_groups_and_unassigns_open_slots(project, admin, reviewer, reviewer2):
    make_items(project, 2)
    group = reviewer_group_create(project=project, name="experts", members=[reviewer, reviewer2], actor=admin)
    Assignment.objects.filter(project=project).update(assigned_to=reviewer)
    member_remove(membership=Membership.objects.get(project=project, user=reviewer), actor=admin)
    assert not Membership.objects.filter(project=project, user=reviewer).exists()
    assert list(ReviewerGroup.objects.get(pk=group.pk).members.all()) == [reviewer2]
    assert not Assignment.objects.filter(project=project, assigned_to=reviewer).exists()
    event = AuditEvent.objects.get(action="member.remove")
    assert event.data["slots_unassigned"] == Assignment.objects.filter(project=project).count() > 0


def test_role_change_refuses_unknown_role(project, admin):
    with pytest.raises(ValidationFailed) as exc:
        member_role_change(membership=Membership.objects.get(user=admin), data={"role": "owner"}, actor=admin)
    assert exc.value.errors[0]["field"] == "role"


# --- invitations -----------------------------------------------------------------------------


def test_invitation_is_stored_hashed_and_single_use(project, admin, outsider):
    invitation, raw = invitation_create(project=project, data={"role": "curator", "days": 3}, actor=admin)
    _, prefix, secret = raw.split("_", 2)
    row = Invitation.objects.get(pk=invitation.pk)
    assert row.prefix == prefix and secret not in row.secret_hash
    assert row.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert timedelta(days=2, hours=23) < row.expires_at - timezone.now() <= timedelta(days=3)

    membership = invitation_accept(raw=raw, user=outsider)
    assert (membership.user, membership.role) == (outsider, "curator")
    row.refresh_from_db()
    assert row.status == "accepted" and row.accepted_by == outsider
    other = UserFactory(username="olga")
    with pytest.raises(InvitationUnusable):
        invitation_accept(raw=raw, user=other)
    assert not Membership.objects.filter(user=other).exists()
    assert AuditEvent.objects.filter(action="invitation.accept", project=project).count() == 1


def test_wrong_secret_is_refused(project, admin, outsider):
    _, raw = invitation_create(project=project, data={}, actor=admin)
    forged = raw[:-4] + ("AAAA" if not raw.endswith("AAAA") else "BBBB")
    with pytest.raises(InvitationUnusable):
        invitation_accept(raw=forged, user=outsider)
    with pytest.raises(InvitationUnusable):
        invitation_accept(raw="rd_abc_def", user=outsider)


def test_expired_and_revoked_invitations_are_refused(project, admin, outsider):
    expired, raw_expired = invitation_create(project=project, data={"days": 1}, actor=admin)
    Invitation.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(InvitationUnusable, match="expired"):
        invitation_accept(raw=raw_expired, user=outsider)

    revoked, raw_revoked = invitation_create(project=project, data={}, actor=admin)
    invitation_revoke(invitation=revoked, actor=admin)
    with pytest.raises(InvitationUnusable, match="revoked"):
        invitation_accept(raw=raw_revoked, user=outsider)
    with pytest.raises(InvitationUnusable):
        invitation_accept_new_account(raw=raw_revoked, data={"username": "newbie", "password": STRONG})
    assert not get_user_model().objects.filter(username="newbie").exists()
    assert not Membership.objects.filter(user=outsider).exists()
    assert AuditEvent.objects.filter(action="invitation.revoke").count() == 1


def test_invitation_input_is_checked(project, admin):
    with pytest.raises(ValidationFailed) as exc:
        invitation_create(project=project, data={"role": "boss", "days": 0, "email": "nope", "x": 1}, actor=admin)
    assert {e["field"] for e in exc.value.errors} == {"role", "days", "email", "x"}
    assert Invitation.objects.count() == 0


def test_new_account_through_invitation_uses_password_validators(project, admin):
    _, raw = invitation_create(project=project, data={"role": "reviewer"}, actor=admin)
    with pytest.raises(ValidationFailed) as exc:
        invitation_accept_new_account(raw=raw, data={"username": "newbie", "password": "12345678"})
    assert {e["field"] for e in exc.value.errors} == {"password"}
    with pytest.raises(ValidationFailed) as exc:
        invitation_accept_new_account(raw=raw, data={"username": "ada", "password": STRONG})
    assert exc.value.errors[0]["field"] == "username"

    membership = invitation_accept_new_account(raw=raw, data={"username": "newbie", "password": STRONG})
    user = membership.user
    assert user.username == "newbie" and user.check_password(STRONG) and membership.role == "reviewer"
    assert Client().login(username="newbie", password=STRONG)


def test_invitation_does_not_demote_an_existing_member(project, admin, curator):
    _, raw = invitation_create(project=project, data={"role": "reviewer"}, actor=admin)
    assert invitation_accept(raw=raw, user=curator).role == "curator"


@override_settings(EMAIL_ENABLED=True, EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend")
def test_invitation_is_mailed_when_email_is_configured(project, admin, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        _, raw = invitation_create(
            project=project, data={"email": "x@example.com"}, actor=admin, base_url="https://rd.example.com/"
        )
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["x@example.com"]
    assert f"https://rd.example.com/invite/{raw}/" in mail.outbox[0].body


def test_no_mail_without_email_url(project, admin, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        invitation_create(project=project, data={"email": "x@example.com"}, actor=admin)
    assert mail.outbox == []


# --- instance --------------------------------------------------------------------------------


@pytest.fixture
def root(db):
    return get_user_model().objects.create_superuser("root", "root@example.com", "pw-root-123456")


def test_deactivation_stops_tokens_and_sessions_at_once(project, reviewer, root):
    _, raw = api_token_create(user=reviewer, name="ci", scopes=["review"])
    api = Client(headers={"authorization": f"Bearer {raw}"})
    browser = Client()
    browser.force_login(reviewer)
    assert api.get("/api/v1/projects/support/").status_code == 200
    assert browser.get("/reviews/").status_code == 200

    user_set_active(user=reviewer, active=False, actor=root)
    assert api.get("/api/v1/projects/support/").status_code == 401
    page = browser.get("/reviews/")
    assert page.status_code == 302 and page["Location"].startswith("/login/")
    assert AuditEvent.objects.get(action="user.deactivate").data["sessions_ended"] == 1

    user_set_active(user=reviewer, active=True, actor=root)
    assert api.get("/api/v1/projects/support/").status_code == 200  # the token works again


def test_a_session_of_a_deactivated_user_is_refused_even_if_kept(project, reviewer, root):
    """Even a session that survived (e.g. a cache-backed session store) is refused: auth checks is_active."""
    browser = Client()
    browser.force_login(reviewer)
    get_user_model().objects.filter(pk=reviewer.pk).update(is_active=False)  # the flag alone, sessions kept
    assert browser.get("/reviews/").status_code == 302
    assert browser.get("/api/v1/projects/support/").status_code in (401, 403)


def test_there_is_always_an_instance_admin(db, root):
    with pytest.raises(LastInstanceAdmin):
        instance_admin_set(user=root, admin=False, actor=None)
    with pytest.raises(LastInstanceAdmin):
        user_set_active(user=root, active=False, actor=None)
    with pytest.raises(NotAllowed):
        user_set_active(user=root, active=False, actor=root)
    second = UserFactory(username="sam")
    instance_admin_set(user=second, admin=True, actor=root)
    second.refresh_from_db()
    assert second.is_superuser and second.is_staff
    instance_admin_set(user=root, admin=False, actor=second)
    root.refresh_from_db()
    assert not root.is_superuser
    actions = list(AuditEvent.objects.order_by("id").values_list("action", flat=True))
    assert actions == ["user.admin_grant", "user.admin_revoke"]


@pytest.mark.django_db(transaction=True)
def test_two_admins_demoting_each_other_at_once_leave_one_admin(project):
    """Each admin demotes the other at the same moment, ten times over: the project-row lock makes
    the second change see the first, so exactly one succeeds and one admin is always left."""
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("threads need a server database (SQLite serialises writes anyway)")
    import threading

    for round_ in range(10):
        ada = member(project, "admin", username=f"ada{round_}")
        bea = member(project, "admin", username=f"bea{round_}")
        Membership.objects.filter(project=project, role="admin").exclude(user__in=[ada, bea]).delete()
        start = threading.Barrier(2)
        outcomes: list[str] = []

        def demote(actor, target, start, outcomes) -> None:  # type: ignore[no-untyped-def]
            try:
                membership = Membership.objects.select_related("project", "user").get(project=project, user=target)
                start.wait(timeout=30)
                member_role_change(membership=membership, data={"role": "reviewer"}, actor=actor)
                outcomes.append("ok")
            except LastAdmin:
                outcomes.append("last_admin")
            finally:
                connection.close()

        threads = [
            threading.Thread(target=demote, args=(ada, bea, start, outcomes)),
            threading.Thread(target=demote, args=(bea, ada, start, outcomes)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert sorted(outcomes) == ["last_admin", "ok"], (round_, outcomes)
        assert Membership.objects.filter(project=project, role="admin").count() == 1
