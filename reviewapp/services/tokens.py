"""API tokens: shown once, stored as SHA-256, scoped, revocable.

Format: ``rd_<prefix>_<secret>``. The prefix finds the row; the secret's hash must match.
The secret carries 256 bits of randomness, so a fast hash is enough (no password stretching).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated

import msgspec
from django.utils import timezone

from reviewapp.errors import ValidationFailed
from reviewapp.models import ApiToken, Membership, Project
from reviewapp.permissions import ROLE_CAPABILITIES, SCOPE_FOR_CAPABILITY
from reviewapp.services.audit import audit_record
from reviewapp.typed_input import TypedInput, field_error, says, struct_errors

if TYPE_CHECKING:
    from django.contrib.auth.models import User

SCOPES = [choice.value for choice in ApiToken.Scope]
LAST_USED_RESOLUTION = timedelta(minutes=1)  # write last_used_at at most once a minute


class TokenIn(TypedInput):
    """A new token's name and scopes (the project is a row, checked on its own)."""

    name: Annotated[str, msgspec.Meta(pattern=r"\S"), says("Give the token a name.")]
    scopes: Annotated[list[str], msgspec.Meta(min_length=1), says(f"Pick at least one of: {', '.join(SCOPES)}.")]


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def api_token_scopes_allowed(*, user: User, project: Project | None = None) -> set[str]:
    """The scopes ``user``'s roles allow: on ``project`` when the token is pinned to it, else on any
    of their projects. A token never grants more than its user could do, but a scope the roles lack
    would still be a lie on the tokens page and a surprise the day the user's role changes."""
    if user.is_superuser:
        return set(SCOPES)
    memberships = Membership.objects.filter(user=user)
    if project is not None:
        memberships = memberships.filter(project=project)
    allowed: set[str] = set()
    for role in set(memberships.values_list("role", flat=True)):
        for capability in ROLE_CAPABILITIES.get(role, frozenset()):
            scope = SCOPE_FOR_CAPABILITY.get(capability)
            if scope:
                allowed.add(scope)
    return allowed


def api_token_create(
    *, user: User, name: str, scopes: list[str], project: Project | None = None
) -> tuple[ApiToken, str]:
    """Create a token; returns the row and the plaintext token, which is never stored."""
    name = (name or "").strip()
    _, errors = struct_errors({"name": name, "scopes": scopes}, TokenIn)
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        errors.append(field_error("scopes", f"Unknown scope(s): {', '.join(unknown)}."))
    if (
        project is not None
        and not user.is_superuser
        and not Membership.objects.filter(project=project, user=user).exists()
    ):
        errors.append(field_error("project", "You are not a member of that project."))
    elif not unknown:
        beyond = sorted(set(scopes) - api_token_scopes_allowed(user=user, project=project))
        if beyond:
            where = f"on {project.name}" if project is not None else "on any of your projects"
            errors.append(field_error("scopes", f"Your roles {where} do not allow the scope(s): {', '.join(beyond)}."))
    if errors:
        raise ValidationFailed(errors, "The token could not be created.")
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        name=name[:100],
        prefix=prefix,
        secret_hash=_hash(secret),
        scopes=sorted(set(scopes)),
        project=project,
    )
    audit_record(
        actor=user,
        action="token.create",
        target=token,
        project=project,
        data={"scopes": token.scopes, "name": token.name},
    )
    return token, f"rd_{prefix}_{secret}"


def api_token_revoke(*, token: ApiToken, user: User | None) -> None:
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit_record(actor=user, action="token.revoke", target=token, project=token.project)


def api_token_authenticate(*, raw: str) -> ApiToken | None:
    """The active token matching ``raw``, or None. Records when it was last used."""
    parts = raw.split("_", 2)
    if len(parts) != 3 or parts[0] != "rd":
        return None
    _, prefix, secret = parts
    token = ApiToken.objects.select_related("user").filter(prefix=prefix, revoked_at__isnull=True).first()
    if token is None or not hmac.compare_digest(token.secret_hash, _hash(secret)):
        return None
    if not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
    return token
