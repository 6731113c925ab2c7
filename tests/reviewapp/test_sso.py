"""Single sign-on against a real (local) OpenID provider: the code flow with PKCE and nonce, ID token
checks, accounts, the role map, and local passwords switched off."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from reviewapp.models import AuditEvent, Membership
from reviewapp.sso.config import role_map_parse
from reviewapp.sso.models import SsoIdentity, SsoRoleGrant
from tests.factories import PASSWORD, ProjectFactory, UserFactory, member
from tests.fakes.oidc_provider import PROVIDER_PASSWORD, FakeOidcProvider

User = get_user_model()


def sso_sign_in(client: Client, provider: FakeOidcProvider, username: str, password: str = PROVIDER_PASSWORD):  # type: ignore[no-untyped-def]
    """Start at Reviewdesk, sign in at the provider's form, and come back with the code."""
    start = client.get("/oidc/authenticate/")
    assert start.status_code == 302, start.content
    authorize = urlsplit(start["Location"])
    params = {k: v[0] for k, v in parse_qs(authorize.query).items()}
    answer = requests.post(
        f"{provider.url}/authorize",
        data={**params, "username": username, "password": password, "action": "login"},
        allow_redirects=False,
        timeout=5,
    )
    assert answer.status_code == 302, answer.text
    back = urlsplit(answer.headers["Location"])
    return client.get(back.path, parse_qs(back.query))


def signed_in_user(client: Client):  # type: ignore[no-untyped-def]
    response = client.get("/api/v1/projects/")
    return response.status_code == 200


def test_first_sign_in_makes_the_account_and_grants_the_mapped_role(oidc_provider, project):
    oidc_provider.add_user("carol", email="carol@example.org", groups=["support-curators", "other"])
    client = Client()

    response = sso_sign_in(client, oidc_provider, "carol")

    assert response.status_code == 302 and response["Location"] == "/"
    user = User.objects.get(username="carol")
    assert user.email == "carol@example.org" and not user.has_usable_password()
    assert Membership.objects.get(project=project, user=user).role == "curator"
    assert SsoIdentity.objects.get(user=user).subject == oidc_provider.users["carol"].sub
    assert signed_in_user(client)
    actions = set(AuditEvent.objects.filter(actor=user).values_list("action", flat=True))
    assert {"sso.account_create", "sso.link", "membership.set"} <= actions
    # The library's PKCE and nonce really went over the wire.
    authorize = oidc_provider.calls("POST", "/authorize")[0]
    assert "code_challenge=" in authorize.raw.decode() and "nonce=" in authorize.raw.decode()
    assert "code_verifier=" in oidc_provider.calls("POST", "/token")[0].raw.decode()


def test_the_role_map_follows_the_claim_and_leaves_hand_made_memberships_alone(oidc_provider, project):
    other = ProjectFactory(slug="billing", name="Billing")
    oidc_provider.add_user("dan", email="dan@example.org", groups=["support-curators"])
    sso_sign_in(Client(), oidc_provider, "dan")
    dan = User.objects.get(username="dan")
    Membership.objects.create(project=other, user=dan, role="admin")  # made by hand: SSO never touches it

    oidc_provider.users["dan"].groups = ["support-reviewers"]
    sso_sign_in(Client(), oidc_provider, "dan")
    assert Membership.objects.get(project=project, user=dan).role == "reviewer"
    assert SsoRoleGrant.objects.get(membership__user=dan).role == "reviewer"

    oidc_provider.users["dan"].groups = []
    sso_sign_in(Client(), oidc_provider, "dan")
    assert not Membership.objects.filter(project=project, user=dan).exists()
    assert Membership.objects.get(project=other, user=dan).role == "admin"
    removed = AuditEvent.objects.get(action="member.remove")
    assert removed.data["reason"].startswith("sso:") and removed.actor == dan


def test_a_role_changed_by_hand_is_no_longer_managed_by_sso(oidc_provider, project):
    oidc_provider.add_user("erin", email="erin@example.org", groups=["support-reviewers"])
    sso_sign_in(Client(), oidc_provider, "erin")
    erin = User.objects.get(username="erin")
    Membership.objects.filter(project=project, user=erin).update(role="admin")  # an admin promoted her

    oidc_provider.users["erin"].groups = []
    sso_sign_in(Client(), oidc_provider, "erin")

    assert Membership.objects.get(project=project, user=erin).role == "admin"
    assert not SsoRoleGrant.objects.filter(membership__user=erin).exists()


def test_an_existing_hand_made_membership_is_not_downgraded(oidc_provider, project, curator):
    curator.email = "cora@example.org"
    curator.save()
    oidc_provider.add_user("cora-at-acme", email="cora@example.org", groups=["support-reviewers"])

    sso_sign_in(Client(), oidc_provider, "cora-at-acme")

    assert SsoIdentity.objects.get().user == curator  # linked by verified email on the first sign-in
    assert Membership.objects.get(project=project, user=curator).role == "curator"


def test_without_automatic_accounts_an_unknown_person_is_refused_with_a_reason(oidc_provider, settings, project):
    settings.OIDC_CREATE_USER = False
    oidc_provider.add_user("mallory", email="mallory@example.org", groups=["support-curators"])
    client = Client()

    response = sso_sign_in(client, oidc_provider, "mallory")

    assert response.status_code == 403
    assert "There is no Reviewdesk account for mallory@example.org" in response.content.decode()
    assert not User.objects.filter(email="mallory@example.org").exists()
    assert not signed_in_user(client)


def test_an_unverified_email_does_not_take_over_an_account(oidc_provider, settings, reviewer):
    settings.OIDC_CREATE_USER = False
    reviewer.email = "rita@example.org"
    reviewer.save()
    oidc_provider.add_user("fake-rita", email="rita@example.org", email_verified=False)

    response = sso_sign_in(Client(), oidc_provider, "fake-rita")

    assert response.status_code == 403
    assert not SsoIdentity.objects.exists()


def test_a_deactivated_account_cannot_sign_in_with_sso(oidc_provider, project):
    oidc_provider.add_user("gus", email="gus@example.org")
    sso_sign_in(Client(), oidc_provider, "gus")
    User.objects.filter(username="gus").update(is_active=False)
    client = Client()

    response = sso_sign_in(client, oidc_provider, "gus")

    assert response.status_code == 403 and "deactivated" in response.content.decode()
    assert not signed_in_user(client)


@pytest.mark.parametrize("tamper", ["signature", "audience", "nonce", "issuer", "expired"])
def test_a_tampered_id_token_is_refused(oidc_provider, project, tamper):
    oidc_provider.add_user("ivy", email="ivy@example.org", groups=["support-curators"])
    oidc_provider.tamper = tamper
    client = Client()

    response = sso_sign_in(client, oidc_provider, "ivy")

    assert response.status_code == 403
    assert "could not be trusted" in response.content.decode()
    assert not signed_in_user(client)
    assert not User.objects.filter(username="ivy").exists()


def test_a_code_cannot_be_replayed_and_a_foreign_state_is_refused(oidc_provider, project):
    oidc_provider.add_user("jo", email="jo@example.org")
    client = Client()
    start = client.get("/oidc/authenticate/")
    params = {k: v[0] for k, v in parse_qs(urlsplit(start["Location"]).query).items()}
    answer = requests.post(
        f"{oidc_provider.url}/authorize",
        data={**params, "username": "jo", "password": PROVIDER_PASSWORD, "action": "login"},
        allow_redirects=False,
        timeout=5,
    )
    back = urlsplit(answer.headers["Location"])

    stranger = Client()
    stranger.get("/oidc/authenticate/")  # has its own state in its session, not this one
    assert stranger.get(back.path, parse_qs(back.query)).status_code == 403
    assert client.get(back.path, parse_qs(back.query)).status_code == 302  # the rightful browser
    replay = client.get(back.path, parse_qs(back.query))
    assert replay.status_code == 403  # state used up


def test_the_provider_saying_no_shows_why(oidc_provider, project):
    client = Client()
    start = client.get("/oidc/authenticate/")
    params = {k: v[0] for k, v in parse_qs(urlsplit(start["Location"]).query).items()}
    answer = requests.post(
        f"{oidc_provider.url}/authorize", data={**params, "action": "cancel"}, allow_redirects=False, timeout=5
    )
    back = urlsplit(answer.headers["Location"])

    response = client.get(back.path, parse_qs(back.query))

    assert response.status_code == 403 and "access_denied" in response.content.decode()


def test_the_login_page_offers_the_provider_only_when_configured(client, db, settings):
    settings.OIDC_ISSUER = ""
    page = client.get("/login/").content.decode()
    assert "Sign in with" not in page and 'name="password"' in page
    assert client.get("/oidc/authenticate/").status_code == 404


def test_local_passwords_off_hides_the_form_and_refuses_passwords(oidc_provider, settings, reviewer):
    earlier = Client()
    assert earlier.post("/login/", {"username": "rita", "password": PASSWORD}).status_code == 302
    assert signed_in_user(earlier)
    settings.LOCAL_PASSWORDS = False
    assert not signed_in_user(earlier)  # a session a password opened ends too
    client = Client()

    page = client.get("/login/").content.decode()
    assert "Sign in with Acme ID" in page and 'name="password"' not in page
    refused = client.post("/login/", {"username": "rita", "password": PASSWORD})
    assert refused.status_code == 403 and "switched off" in refused.content.decode()
    assert not signed_in_user(client)
    # The admin's login form goes through the same backends.
    admin = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.post("/admin/login/?next=/admin/", {"username": admin.username, "password": PASSWORD})
    assert client.get("/admin/").status_code == 302


def test_break_glass_lets_only_superusers_use_a_password(oidc_provider, settings, reviewer):
    settings.LOCAL_PASSWORDS = False
    settings.LOCAL_PASSWORDS_BREAK_GLASS = True
    UserFactory(username="root", is_staff=True, is_superuser=True)
    client = Client()

    assert "break-glass" in client.get("/login/").content.decode()
    assert client.post("/login/", {"username": "rita", "password": PASSWORD}).status_code == 200  # form error
    assert not signed_in_user(client)
    assert client.post("/login/", {"username": "root", "password": PASSWORD}).status_code == 302
    assert signed_in_user(client)


def test_role_map_parsing():
    entries = role_map_parse("support-curators=support:curator, a=b=c=support:reviewer")
    assert [(e.claim_value, e.project_slug, e.role) for e in entries] == [
        ("support-curators", "support", "curator"),
        ("a=b=c", "support", "reviewer"),
    ]
    for bad in ("nogroup", "g=support", "g=support:owner", "=support:reviewer"):
        with pytest.raises(ImproperlyConfigured):
            role_map_parse(bad)


def test_the_strongest_mapped_role_wins(oidc_provider, settings, project):
    settings.OIDC_ROLE_MAP = "staff=support:reviewer,leads=support:admin"
    oidc_provider.add_user("kim", email="kim@example.org", groups=["staff", "leads"])
    sso_sign_in(Client(), oidc_provider, "kim")
    assert Membership.objects.get(project=project, user__username="kim").role == "admin"


def test_sso_never_removes_or_demotes_a_projects_last_admin(oidc_provider, settings, project):
    settings.OIDC_ROLE_MAP = "leads=support:admin,staff=support:reviewer"
    oidc_provider.add_user("lee", email="lee@example.org", groups=["leads"])
    sso_sign_in(Client(), oidc_provider, "lee")

    oidc_provider.users["lee"].groups = ["staff"]
    sso_sign_in(Client(), oidc_provider, "lee")
    assert Membership.objects.get(project=project, user__username="lee").role == "admin"

    oidc_provider.users["lee"].groups = []
    sso_sign_in(Client(), oidc_provider, "lee")
    assert Membership.objects.get(project=project, user__username="lee").role == "admin"

    # With another admin present, the map's changes apply again.
    member(project, "admin", username="ada")
    oidc_provider.users["lee"].groups = ["staff"]
    sso_sign_in(Client(), oidc_provider, "lee")
    assert Membership.objects.get(project=project, user__username="lee").role == "reviewer"
