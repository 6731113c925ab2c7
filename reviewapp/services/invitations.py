"""Invitations: a one-time link with a role and an expiry, made by a project admin.

Link format: ``/invite/inv_<prefix>_<secret>/``. As with API tokens, only a SHA-256 of the secret is
stored, the prefix finds the row, and the secret carries 256 bits of randomness (no stretching needed).
The link is shown once to the inviter to copy; when ``EMAIL_URL`` is set and an address is given it
is also mailed. Accepting is single use: the row is locked, and an accepted, revoked or expired
invitation is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated

import msgspec
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from reviewapp.errors import Conflict, NotAllowed, ValidationFailed
from reviewapp.models import Invitation, Membership, Project, Role
from reviewapp.services.audit import audit_record
from reviewapp.services.projects import RoleName
from reviewapp.sso import config as sso_config
from reviewapp.typed_input import TypedInput, field_error, says, struct_errors
from reviewapp.usertypes import signed_in

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from reviewapp.usertypes import Actor

log = logging.getLogger(__name__)

MAX_DAYS = 90


class InvitationIn(TypedInput):
    role: RoleName = Role.REVIEWER.value
    days: Annotated[int, msgspec.Meta(ge=1, le=MAX_DAYS), says(f"Give 1 to {MAX_DAYS} days.")] = 7
    email: Annotated[
        str, msgspec.Meta(max_length=254, pattern=r"^$|^[^@\s]+@[^@\s]+\.[^@\s]+$"), says("Give an email address.")
    ] = ""


class AccountIn(TypedInput):
    username: Annotated[
        str,
        msgspec.Meta(min_length=1, max_length=150, pattern=r"^[\w.@+-]+$"),
        says("Give a username of letters, digits and @ . + - _ (at most 150)."),
    ]
    password: Annotated[str, msgspec.Meta(min_length=1), says("Give a password.")]


class InvitationUnusable(Conflict):
    """The invitation was accepted, revoked or has expired."""

    code = "invitation_unusable"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def invitation_path(raw: str) -> str:
    return f"/invite/{raw}/"


def invitation_create(*, project: Project, data: object, actor: Actor, base_url: str = "") -> tuple[Invitation, str]:
    """Create an invitation (``data``: ``{"role", "days", "email"}``); returns the row and the link's
    token, which is never stored. ``base_url`` (scheme and host) makes the mailed link absolute."""
    parsed, errors = struct_errors(data, InvitationIn)
    if errors or parsed is None:
        raise ValidationFailed(errors, "The invitation could not be created.")
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    raw = f"inv_{prefix}_{secret}"
    with transaction.atomic():
        invitation = Invitation.objects.create(
            project=project,
            role=parsed.role,
            email=parsed.email.strip(),
            prefix=prefix,
            secret_hash=_hash(secret),
            created_by=signed_in(actor),
            expires_at=timezone.now() + timedelta(days=parsed.days),
        )
        audit_record(
            actor=actor,
            action="invitation.create",
            target=invitation,
            project=project,
            data={"role": invitation.role, "email": invitation.email, "expires_at": invitation.expires_at.isoformat()},
        )
        if invitation.email and getattr(settings, "EMAIL_ENABLED", False):
            link = f"{base_url.rstrip('/')}{invitation_path(raw)}"
            transaction.on_commit(lambda: _mail(invitation, link))
    return invitation, raw


def _mail(invitation: Invitation, link: str) -> None:
    """Best effort: the inviter has the link on screen anyway, so a mail failure is logged, not raised."""
    try:
        send_mail(
            subject=f"You are invited to review on {invitation.project.name}",
            message=(
                f"You are invited to join {invitation.project.name} on Reviewdesk as {invitation.role}.\n\n"
                f"Open this link to accept (it works once, until {invitation.expires_at:%Y-%m-%d %H:%M} UTC):\n{link}\n"
            ),
            from_email=None,
            recipient_list=[invitation.email],
        )
    except Exception:  # any transport error: the link is still valid, and shown to the inviter
        log.warning("Could not mail invitation %s", invitation.pk, exc_info=True)


def invitation_revoke(*, invitation: Invitation, actor: Actor) -> Invitation:
    with transaction.atomic():
        locked = Invitation.objects.select_for_update().get(pk=invitation.pk)
        if locked.accepted_at is None and locked.revoked_at is None:
            locked.revoked_at = timezone.now()
            locked.save(update_fields=["revoked_at"])
            audit_record(actor=actor, action="invitation.revoke", target=locked, project=locked.project)
    return locked


def invitation_find(*, raw: str) -> Invitation | None:
    """The invitation a link names (whatever its status), or None when the link is not one of ours."""
    parts = (raw or "").split("_", 2)
    if len(parts) != 3 or parts[0] != "inv":
        return None
    _, prefix, secret = parts
    invitation = Invitation.objects.select_related("project").filter(prefix=prefix).first()
    if invitation is None or not hmac.compare_digest(invitation.secret_hash, _hash(secret)):
        return None
    return invitation


def _usable(invitation: Invitation) -> None:
    status = invitation.status
    if status != "pending":
        raise InvitationUnusable(f"This invitation was {status}; ask a project admin for a new one.")


def invitation_accept(*, raw: str, user: User) -> Membership:
    """``user`` joins the project with the invitation's role; an existing member keeps a higher role."""
    found = invitation_find(raw=raw)
    if found is None:
        raise InvitationUnusable("This invitation link is not valid.")
    with transaction.atomic():
        invitation = Invitation.objects.select_for_update().select_related("project").get(pk=found.pk)
        _usable(invitation)
        return _accept(invitation, user)


def _accept(invitation: Invitation, user: User) -> Membership:
    """Inside the transaction holding the invitation's lock."""
    order = list(Role.values)
    membership = Membership.objects.filter(project=invitation.project, user=user).first()
    if membership is None:
        membership = Membership.objects.create(project=invitation.project, user=user, role=invitation.role)
    elif order.index(invitation.role) > order.index(membership.role):
        membership.role = invitation.role
        membership.save(update_fields=["role"])
    invitation.accepted_at = timezone.now()
    invitation.accepted_by = user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    audit_record(
        actor=user,
        action="invitation.accept",
        target=invitation,
        project=invitation.project,
        data={"user": user.pk, "username": user.username, "role": membership.role},
    )
    return membership


def invitation_accept_new_account(*, raw: str, data: object) -> Membership:
    """An anonymous visitor makes an account (``data``: ``{"username", "password"}``, the password
    checked by Django's validators) and joins with the invitation's role, in one transaction."""
    if not sso_config.local_passwords():
        # Accounts come from single sign-on: the invitee signs in there, then accepts as a signed-in user.
        raise NotAllowed("Accounts here are made by single sign-on: sign in with it, then open the link again.")
    found = invitation_find(raw=raw)
    if found is None:
        raise InvitationUnusable("This invitation link is not valid.")
    parsed, errors = struct_errors(data, AccountIn)
    if parsed is not None and not errors:
        User = get_user_model()
        if User.objects.filter(username__iexact=parsed.username).exists():
            errors.append(field_error("username", "This username is taken; sign in if it is yours."))
        try:
            validate_password(parsed.password, user=User(username=parsed.username, email=found.email))
        except ValidationError as exc:
            errors.extend(field_error("password", message) for message in exc.messages)
    if errors or parsed is None:
        raise ValidationFailed(errors, "The account could not be created.")
    try:
        with transaction.atomic():
            invitation = Invitation.objects.select_for_update().select_related("project").get(pk=found.pk)
            _usable(invitation)
            user = get_user_model().objects.create_user(
                username=parsed.username, password=parsed.password, email=invitation.email
            )
            audit_record(
                actor=user, action="user.create", target=user, data={"via": "invitation", "username": user.username}
            )
            return _accept(invitation, user)
    except IntegrityError:  # the same username taken a moment ago
        raise ValidationFailed([field_error("username", "This username is taken.")]) from None
