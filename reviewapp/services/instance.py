"""The instance's people, for instance admins: deactivate and reactivate users, grant and revoke
instance admin (Django's ``is_superuser``, with ``is_staff`` so the operator's admin site opens).

A deactivated user is refused at once everywhere: session sign-in resolves users through Django's
ModelBackend, which returns no user whose ``is_active`` is false, and API tokens are refused in
``api_token_authenticate``. Their sessions are also deleted so nothing lingers.
There is always at least one active instance admin.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.db import transaction
from django.utils import timezone

from reviewapp.errors import Conflict, NotAllowed
from reviewapp.services.audit import audit_record

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from reviewapp.usertypes import Actor


class LastInstanceAdmin(Conflict):
    code = "last_instance_admin"


def _lock_admins() -> int:
    """Lock the active instance admins' rows and count them (serialises concurrent revocations)."""
    return len(list(get_user_model().objects.select_for_update().filter(is_superuser=True, is_active=True)))


def user_set_active(*, user: User, active: bool, actor: Actor) -> User:
    if not active and getattr(actor, "pk", None) == user.pk:
        raise NotAllowed("You cannot deactivate yourself.")
    with transaction.atomic():
        if not active and user.is_superuser and user.is_active and _lock_admins() <= 1:
            raise LastInstanceAdmin("This is the last active instance admin; make another one first.")
        user.refresh_from_db(fields=["is_active"])
        if user.is_active == active:
            return user
        user.is_active = active
        user.save(update_fields=["is_active"])
        ended = _end_sessions(user) if not active else 0
        audit_record(
            actor=actor,
            action="user.reactivate" if active else "user.deactivate",
            target=user,
            data={"username": user.username, "sessions_ended": ended},
        )
    return user


def _end_sessions(user: User) -> int:
    """Delete the user's stored sessions (belt and braces: an inactive user is refused anyway).
    Sessions are signed blobs keyed by id, so this reads the unexpired ones."""
    ended = []
    for session in Session.objects.filter(expire_date__gt=timezone.now()).iterator():
        if str(session.get_decoded().get("_auth_user_id")) == str(user.pk):
            ended.append(session.pk)
    Session.objects.filter(pk__in=ended).delete()
    return len(ended)


def instance_admin_set(*, user: User, admin: bool, actor: Actor) -> User:
    with transaction.atomic():
        if not admin and user.is_superuser and user.is_active and _lock_admins() <= 1:
            raise LastInstanceAdmin("This is the last instance admin; make another one first.")
        user.refresh_from_db(fields=["is_superuser", "is_staff"])
        if user.is_superuser == admin:
            return user
        if admin and not user.is_active:
            raise NotAllowed("Reactivate the user before making them an instance admin.")
        user.is_superuser = admin
        user.is_staff = admin
        user.save(update_fields=["is_superuser", "is_staff"])
        audit_record(
            actor=actor,
            action="user.admin_grant" if admin else "user.admin_revoke",
            target=user,
            data={"username": user.username},
        )
    return user
