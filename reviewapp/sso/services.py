"""What a successful OpenID sign-in does: find (or make) the account, then apply the role map.

Called by the backend after the ID token was verified. Every change goes through reviewapp's
membership service and is audited, with the signing-in user as the actor.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from reviewapp.models import Membership, Project, Role
from reviewapp.services.audit import audit_record
from reviewapp.services.members import member_remove
from reviewapp.services.projects import membership_set
from reviewapp.sso.config import ROLES, RoleMapEntry
from reviewapp.sso.models import SsoIdentity, SsoRoleGrant

if TYPE_CHECKING:
    from django.contrib.auth.models import User

log = logging.getLogger(__name__)

_USERNAME_UNSAFE = re.compile(r"[^\w.@+-]")


class SsoRefused(Exception):
    """The provider vouched for the person, but Reviewdesk does not let them in; the message says why."""


@dataclass
class RolesApplied:
    granted: dict[str, str] = field(default_factory=dict)  # slug -> role (new or changed)
    revoked: list[str] = field(default_factory=list)  # slugs
    kept: list[str] = field(default_factory=list)  # slugs with a hand-made membership SSO leaves alone


def _claim_values(claims: Mapping[str, Any], claim: str) -> list[str]:
    raw = claims.get(claim)
    if raw is None:
        return []
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list | tuple):
        return [str(v) for v in raw if isinstance(v, str | int)]
    return []


def _new_username(claims: Mapping[str, Any]) -> str:
    email = str(claims.get("email") or "")
    base = str(claims.get("preferred_username") or email.split("@")[0] or claims.get("sub") or "user")
    base = _USERNAME_UNSAFE.sub("", base)[:140] or "user"
    users = get_user_model().objects
    candidate, n = base, 1
    while users.filter(username__iexact=candidate).exists():
        n += 1
        candidate = f"{base}{n}"
    return candidate


def sso_account_resolve(*, issuer: str, claims: Mapping[str, Any], create_users: bool) -> User:
    """The account for verified ``claims``: by (issuer, subject); else, on a first sign-in, the one
    active account with the same verified email; else a new account when ``create_users``."""
    subject = str(claims.get("sub") or "")
    if not subject:
        raise SsoRefused("The provider did not say who you are (no subject in the ID token).")
    identity = SsoIdentity.objects.select_related("user").filter(issuer=issuer, subject=subject).first()
    email = str(claims.get("email") or "").strip()
    with transaction.atomic():
        user: User | None = None
        if identity is not None:
            user = identity.user
        else:
            # An unverified email proves nothing about who owns the local account with that address.
            if email and claims.get("email_verified", True) is not False:
                matches = list(get_user_model().objects.filter(email__iexact=email)[:2])
                if len(matches) > 1:
                    raise SsoRefused(f"Several Reviewdesk accounts use {email}; an administrator must fix that first.")
                user = matches[0] if matches else None
            if user is None:
                if not create_users:
                    who = email or subject
                    raise SsoRefused(
                        f"There is no Reviewdesk account for {who}. Ask an administrator of Reviewdesk "
                        "to invite you or to create your account, then sign in again."
                    )
                user = get_user_model().objects.create_user(
                    _new_username(claims),
                    email=email,
                    first_name=str(claims.get("given_name") or "")[:150],
                    last_name=str(claims.get("family_name") or "")[:150],
                )
                user.set_unusable_password()  # this account signs in through the provider only
                user.save(update_fields=["password"])
                audit_record(
                    actor=user, action="sso.account_create", target=user, data={"issuer": issuer, "email": email}
                )
            identity = SsoIdentity.objects.create(user=user, issuer=issuer, subject=subject)
            audit_record(actor=user, action="sso.link", target=user, data={"issuer": issuer, "subject": subject})
        assert user is not None
        if not user.is_active:
            raise SsoRefused("Your Reviewdesk account is deactivated. Ask an administrator to reactivate it.")
        identity.last_login_at = timezone.now()
        identity.save(update_fields=["last_login_at"])
    return user


def _strongest(roles: list[str]) -> str:
    # admin > engineer > curator > reviewer: when several groups point at one project, the most able wins.
    return max(roles, key=ROLES.index)


def _last_admin(membership: Membership) -> bool:
    # SSO never leaves a project without an admin (as the members page does not).
    return (
        membership.role == Role.ADMIN
        and not Membership.objects.filter(project=membership.project, role=Role.ADMIN)
        .exclude(pk=membership.pk)
        .exists()
    )


def sso_roles_apply(*, user: User, claims: Mapping[str, Any], claim: str, role_map: list[RoleMapEntry]) -> RolesApplied:
    """Make the memberships that the role map granted match the claim's current values: grant new
    ones, change a role when the mapped role changed, remove those whose value went away. A
    membership that SSO did not grant, or that someone changed by hand since, is left alone."""
    result = RolesApplied()
    if not claim or not role_map:
        return result
    values = set(_claim_values(claims, claim))
    wanted_roles: dict[str, list[str]] = {}
    source: dict[str, str] = {}
    for entry in role_map:
        if entry.claim_value in values:
            wanted_roles.setdefault(entry.project_slug, []).append(entry.role)
            source.setdefault(entry.project_slug, entry.claim_value)
    wanted = {slug: _strongest(roles) for slug, roles in wanted_roles.items()}
    with transaction.atomic():
        projects = {p.slug: p for p in Project.objects.filter(slug__in=wanted)}
        for slug in sorted(set(wanted) - set(projects)):
            log.warning("OIDC_ROLE_MAP names project %r, which does not exist", slug)
        grants = {
            g.membership.project.slug: g
            for g in SsoRoleGrant.objects.select_related("membership__project").filter(membership__user=user)
        }
        for slug, project in projects.items():
            role = wanted[slug]
            membership = Membership.objects.filter(project=project, user=user).first()
            grant = grants.pop(slug, None)
            if membership is not None and (grant is None or membership.role != grant.role):
                if grant is not None:
                    grant.delete()  # changed by hand since: no longer SSO's to manage
                result.kept.append(slug)
                continue
            if membership is not None and membership.role != role and _last_admin(membership):
                log.warning("SSO keeps %s admin on %s: they are its last admin", user, slug)
                result.kept.append(slug)
                continue
            if membership is None or membership.role != role:
                membership = membership_set(project=project, user=user, role=role, actor=user)
                result.granted[slug] = role
            SsoRoleGrant.objects.update_or_create(
                membership=membership, defaults={"role": role, "claim_value": source[slug]}
            )
        # Grants whose value left the claim (or whose project left the map).
        for slug, grant in grants.items():
            membership = grant.membership
            if membership.role != grant.role:
                grant.delete()
                continue
            if _last_admin(membership):
                log.warning("SSO keeps %s on %s: they are its last admin", user, slug)
                result.kept.append(slug)
                continue
            member_remove(membership=membership, actor=user, reason="sso: the role claim no longer grants it")
            result.revoked.append(slug)
    return result
