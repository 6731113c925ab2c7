"""The user types that services and selectors take. The project's user model is Django's ``User``."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias, TypeGuard, cast

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User

# What a request carries: a signed-in user or an anonymous one (getters answer 404 to the latter).
AnyUser: TypeAlias = "User | AnonymousUser"
# Who an audit event names: a user, or nobody when a command or a task acted (anonymous counts as nobody).
Actor: TypeAlias = "User | AnonymousUser | None"


def is_signed_in(user: Actor) -> TypeGuard[User]:
    """Whether ``user`` is signed in, told to the type checker: past this check, ``user`` is a ``User``."""
    return bool(getattr(user, "is_authenticated", False))


def signed_in(user: Actor) -> User | None:
    """``user`` when signed in, else None: what a ``created_by`` or an audit ``actor`` column stores."""
    return cast("User", user) if getattr(user, "is_authenticated", False) else None
