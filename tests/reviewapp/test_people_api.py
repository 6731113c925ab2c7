"""People over REST and in the HTML pages: who may call what, the 400 shape, the 409 for the last
admin, invitation links, the instance page, and the read-only Django admin."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from reviewapp.models import AuditEvent, Invitation, Membership, Project, Question
from reviewapp.services.tokens import api_token_create
from tests.factories import member

BASE = "/api/v1/projects/support"
STRONG = "correct horse battery staple 42"


def session(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def send(client: Client, method: str, url: str, body: Any) -> Any:
    return getattr(client, method)(url, json.dumps(body), content_type="application/json")


@pytest.fixture
def admin(project):
    return member(project, "admin", username="ada")


@pytest.fixture
def root(db):
    return get_user_model().objects.create_superuser("root", "root@example.com", "pw-root-123456")


def test_members_api_needs_the_admin_role_and_a_session(project, admin, curator, outsider):
    assert session(admin).get(f"{BASE}/members/").status_code == 200
    assert session(curator).get(f"{BASE}/members/").status_code == 403
    assert session(outsider).get(f"{BASE}/members/").status_code == 404
    _, raw = api_token_create(user=admin, name="ci", scopes=["curate"])
    token = Client(headers={"authorization": f"Bearer {raw}"})
    assert token.get(f"{BASE}/members/").status_code == 403
    assert send(token, "post", f"{BASE}/invitations/", {}).status_code == 403
    assert Invitation.objects.count() == 0


def test_members_api_add_change_remove(project, admin, reviewer, outsider):
    client = session(admin)
    rows = client.get(f"{BASE}/members/").json()
    assert {r["username"]: r["role"] for r in rows} == {"ada": "admin", "rita": "reviewer"}
    assert set(rows[0]) == {"username", "role", "is_active", "reviews", "last_review", "created_at"}

    created = send(client, "post", f"{BASE}/members/", {"username": "otto", "role": "engineer"})
    assert created.status_code == 201 and created.json()["role"] == "engineer"
    bad = send(client, "post", f"{BASE}/members/", {"username": "", "role": "chief", "extra": 1})
    assert bad.status_code == 400
    assert sorted(bad.json()["errors"], key=lambda e: e["field"]) == [
        {"index": None, "field": "extra", "message": "Unknown field."},
        {"index": None, "field": "role", "message": "Use one of reviewer, curator, engineer, admin."},
        {"index": None, "field": "username", "message": "Give the username of an existing user."},
    ]
    changed = send(client, "patch", f"{BASE}/members/rita/", {"role": "curator"})
    assert changed.status_code == 200 and changed.json()["role"] == "curator"
    last = send(client, "patch", f"{BASE}/members/ada/", {"role": "reviewer"})
    assert last.status_code == 409 and last.json()["code"] == "last_admin"
    assert client.delete(f"{BASE}/members/ada/").status_code == 409
    assert client.delete(f"{BASE}/members/otto/").status_code == 204
    assert client.delete(f"{BASE}/members/otto/").status_code == 404
    assert not Membership.objects.filter(user=outsider).exists()
    assert set(AuditEvent.objects.values_list("action", flat=True)) >= {"member.add", "member.role", "member.remove"}


def test_invitations_api_create_list_revoke_and_accept(project, admin, outsider):
    client = session(admin)
    created = send(client, "post", f"{BASE}/invitations/", {"role": "curator", "days": 2})
    assert created.status_code == 201
    body = created.json()
    assert body["url"].startswith("http://testserver/invite/inv_") and body["status"] == "pending"
    listed = client.get(f"{BASE}/invitations/").json()
    assert [i["id"] for i in listed] == [body["id"]] and "url" not in listed[0]
    assert "secret_hash" not in listed[0]

    bad = send(client, "post", f"{BASE}/invitations/", {"days": 1000, "email": "not-mail"})
    assert bad.status_code == 400
    assert {e["field"] for e in bad.json()["errors"]} == {"days", "email"}

    # Accepting over HTTP as a signed-in user.
    path = body["url"].removeprefix("http://testserver")
    joiner = session(outsider)
    assert joiner.get(path).status_code == 200
    accepted = joiner.post(path)
    assert accepted.status_code == 302 and accepted["Location"] == "/projects/support/review/"
    assert Membership.objects.get(user=outsider).role == "curator"
    assert joiner.get(path).status_code == 410  # single use

    second = send(client, "post", f"{BASE}/invitations/", {}).json()
    revoked = client.delete(f"{BASE}/invitations/{second['id']}/")
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    assert Client().get(second["url"].removeprefix("http://testserver")).status_code == 410
    assert Client().get("/invite/inv_nope_nope/").status_code == 404


def test_a_visitor_creates_an_account_from_an_invitation(project, admin):
    url = send(session(admin), "post", f"{BASE}/invitations/", {}).json()["url"].removeprefix("http://testserver")
    visitor = Client()
    weak = visitor.post(url, {"username": "newbie", "password": "newbie123"})
    assert weak.status_code == 422 and b'class="err" role="alert"' in weak.content
    assert not get_user_model().objects.filter(username="newbie").exists()
    made = visitor.post(url, {"username": "newbie", "password": STRONG})
    assert made.status_code == 302
    assert visitor.get("/projects/support/review/").status_code == 200  # signed in and a reviewer
    assert Membership.objects.get(user__username="newbie").role == "reviewer"


def test_members_page_and_forms(project, admin, reviewer, curator, outsider):
    client = session(admin)
    page = client.get("/projects/support/members/")
    assert page.status_code == 200 and b'data-member="rita"' in page.content
    assert session(curator).get("/projects/support/members/").status_code == 403
    assert session(outsider).get("/projects/support/members/").status_code == 404

    assert client.post("/projects/support/members/add/", {"username": "otto", "role": "reviewer"}).status_code == 302
    assert Membership.objects.filter(user=outsider, role="reviewer").exists()
    client.post("/projects/support/members/rita/role/", {"role": "curator"})
    assert Membership.objects.get(user=reviewer).role == "curator"
    response = client.post("/projects/support/members/ada/remove/", follow=True)
    assert b"last admin" in response.content and Membership.objects.filter(user=admin).exists()

    created = client.post("/projects/support/invitations/", {"role": "reviewer", "days": "5", "email": ""})
    assert created.status_code == 201 and b"/invite/inv_" in created.content
    assert created["Cache-Control"].startswith("max-age=0")

    client.post("/projects/support/members/groups/", {"name": "experts", "members": ["otto"]})
    group = project.reviewer_groups.get()
    assert [u.username for u in group.members.all()] == ["otto"]
    client.post(f"/projects/support/members/groups/{group.pk}/", {"name": "experts", "members": []})
    assert group.members.count() == 0
    client.post(f"/projects/support/members/groups/{group.pk}/delete/")
    assert not project.reviewer_groups.exists()


def test_instance_page_and_users_api(project, admin, reviewer, root):
    assert session(admin).get("/instance/").status_code == 404
    assert session(admin).get("/api/v1/users/").status_code == 403
    client = session(root)
    page = client.get("/instance/")
    assert (
        page.status_code == 200
        and b'data-user="rita"' in page.content
        and b"Support assistant: reviewer" in page.content
    )

    client.post("/instance/users/rita/", {"action": "deactivate"})
    assert not get_user_model().objects.get(username="rita").is_active
    assert b"<code>user.deactivate</code></td><td>rita</td>" in client.get("/instance/").content
    users = {u["username"]: u for u in client.get("/api/v1/users/").json()}
    assert users["rita"]["is_active"] is False and users["rita"]["projects"] == [
        {"project": "support", "role": "reviewer"}
    ]

    assert send(client, "patch", "/api/v1/users/rita/", {"is_active": True}).json()["is_active"] is True
    bad = send(client, "patch", "/api/v1/users/rita/", {"is_active": "yes"})
    assert bad.status_code == 400 and bad.json()["errors"] == [
        {"index": None, "field": "is_active", "message": "Give true or false."}
    ]
    last = send(client, "patch", "/api/v1/users/root/", {"is_instance_admin": False})
    assert last.status_code == 409 and last.json()["code"] == "last_instance_admin"
    granted = send(client, "patch", "/api/v1/users/ada/", {"is_instance_admin": True})
    assert granted.json()["is_instance_admin"] is True
    _, raw = api_token_create(user=root, name="ci", scopes=["curate"])
    assert Client(headers={"authorization": f"Bearer {raw}"}).get("/api/v1/users/").status_code == 403


def test_django_admin_is_read_only_for_projects_questions_members_and_audit(project, admin, root):
    client = session(root)
    for model in ("project", "question", "membership", "auditevent"):
        assert client.get(f"/admin/reviewapp/{model}/").status_code == 200
        assert client.get(f"/admin/reviewapp/{model}/add/").status_code == 403
    question = Question.objects.filter(project=project).first()
    assert question is not None
    change = client.get(f"/admin/reviewapp/question/{question.pk}/change/")
    assert change.status_code == 200 and b'name="_save"' not in change.content
    posted = client.post(f"/admin/reviewapp/project/{project.pk}/change/", {"name": "Hacked", "slug": "support"})
    assert posted.status_code == 403
    assert Project.objects.get(pk=project.pk).name == "Support assistant"
    membership = Membership.objects.get(user=admin)
    assert client.post(f"/admin/reviewapp/membership/{membership.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Membership.objects.filter(pk=membership.pk).exists()


def test_an_existing_user_signs_in_from_the_invitation_and_comes_back_to_join(project, admin, outsider):
    from tests.factories import PASSWORD

    url = send(session(admin), "post", f"{BASE}/invitations/", {"role": "engineer"}).json()["url"]
    path = url.removeprefix("http://testserver")
    visitor = Client()
    page = visitor.get(path)
    assert f'href="/login/?next={path}"'.encode() in page.content
    signed_in = visitor.post(f"/login/?next={path}", {"username": "otto", "password": PASSWORD, "next": path})
    assert signed_in.status_code == 302 and signed_in["Location"] == path
    assert visitor.post(path).status_code == 302
    assert Membership.objects.get(user=outsider).role == "engineer"


def test_with_local_passwords_off_an_invitee_signs_in_with_sso_instead(project, admin, settings):
    settings.OIDC_ISSUER = "https://idp.example.com"
    settings.OIDC_RP_CLIENT_ID = "reviewdesk"
    settings.LOCAL_PASSWORDS = False
    url = send(session(admin), "post", f"{BASE}/invitations/", {}).json()["url"]
    path = url.removeprefix("http://testserver")
    visitor = Client()
    page = visitor.get(path)
    assert b"data-create-account" not in page.content and b"data-sso-sign-in" in page.content
    refused = visitor.post(path, {"username": "newbie", "password": STRONG})
    assert refused.status_code == 403 and b"single sign-on" in refused.content
    assert not get_user_model().objects.filter(username="newbie").exists()
    assert Invitation.objects.get().status == "pending"
