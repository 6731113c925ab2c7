"""Project members: add an existing user, change a role, remove; a project always keeps an admin.

The last-admin guard locks the project row first, so two admins demoting each other at the same
moment cannot both succeed (on SQLite, writes are serialised anyway).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import msgspec
from django.contrib.auth import get_user_model
from django.db import transaction

from reviewapp.errors import Conflict, ValidationFailed
from reviewapp.models import Assignment, Membership, Project, ReviewerGroup, Role
from reviewapp.services.audit import audit_record
from reviewapp.services.projects import RoleName
from reviewapp.typed_input import TypedInput, refusal, says, struct_errors

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from reviewapp.usertypes import Actor


class MemberIn(TypedInput):
    """A new member: an existing user's username and a role."""

    username: Annotated[str, msgspec.Meta(pattern=r"\S"), says("Give the username of an existing user.")]
    role: RoleName = Role.REVIEWER.value


class RoleIn(TypedInput):
    role: RoleName


class LastAdmin(Conflict):
    """The change would leave the project without an admin."""

    code = "last_admin"


def _lock_project(project: Project) -> None:
    Project.objects.select_for_update().filter(pk=project.pk).values_list("pk", flat=True).first()


def _other_admins(*, project: Project, membership: Membership) -> int:
    return Membership.objects.filter(project=project, role=Role.ADMIN).exclude(pk=membership.pk).count()


def member_add(*, project: Project, data: object, actor: Actor) -> Membership:
    """Make an existing, active user a member (``data``: ``{"username", "role"}``)."""
    parsed, errors = struct_errors(data, MemberIn)
    if errors or parsed is None:
        raise ValidationFailed(errors, "The member could not be added.")
    user = get_user_model().objects.filter(username=parsed.username.strip()).first()
    if user is None or not user.is_active:
        raise refusal("username", "No active user has this username.")
    with transaction.atomic():
        if Membership.objects.filter(project=project, user=user).exists():
            raise refusal("username", f"{user.username} is already a member; change their role instead.")
        membership = Membership.objects.create(project=project, user=user, role=parsed.role)
        audit_record(
            actor=actor,
            action="member.add",
            target=membership,
            project=project,
            data={"user": user.pk, "username": user.username, "role": parsed.role},
        )
    return membership


def member_role_change(*, membership: Membership, data: object, actor: Actor) -> Membership:
    """Change a member's role (``data``: ``{"role"}``); the last admin cannot be demoted."""
    parsed, errors = struct_errors(data, RoleIn)
    if errors or parsed is None:
        raise ValidationFailed(errors, "The role could not be changed.")
    project = membership.project
    with transaction.atomic():
        _lock_project(project)
        membership.refresh_from_db(fields=["role"])
        old = membership.role
        if old == parsed.role:
            return membership
        if old == Role.ADMIN and not _other_admins(project=project, membership=membership):
            raise LastAdmin(
                f"{membership.user.username} is the last admin of {project.name}; make someone else admin first."
            )
        membership.role = parsed.role
        membership.save(update_fields=["role"])
        audit_record(
            actor=actor,
            action="member.role",
            target=membership,
            project=project,
            data={"user": membership.user_id, "username": membership.user.username, "from": old, "to": parsed.role},
        )
    return membership


def member_remove(*, membership: Membership, actor: Actor, reason: str = "") -> None:
    """Remove a member: out of the project's reviewer groups, their open slots assigned to nobody.
    Their reviews stay (they are the project's data). The last admin cannot be removed.
    ``reason`` goes into the audit entry (single sign-on names the claim that stopped granting it)."""
    project = membership.project
    user: User = membership.user
    with transaction.atomic():
        _lock_project(project)
        if membership.role == Role.ADMIN and not _other_admins(project=project, membership=membership):
            raise LastAdmin(f"{user.username} is the last admin of {project.name}; make someone else admin first.")
        for group in ReviewerGroup.objects.filter(project=project, members=user):
            group.members.remove(user)
        unassigned = Assignment.objects.filter(project=project, assigned_to=user, submitted_at__isnull=True).update(
            assigned_to=None
        )
        audit_record(
            actor=actor,
            action="member.remove",
            target=membership,
            project=project,
            data={
                "user": user.pk,
                "username": user.username,
                "role": membership.role,
                "slots_unassigned": unassigned,
                **({"reason": reason} if reason else {}),
            },
        )
        membership.delete()
