"""The SSO settings, read at use (tests and operators change them without re-importing anything)."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

ROLES = ("reviewer", "curator", "engineer", "admin")


@dataclass(frozen=True)
class RoleMapEntry:
    claim_value: str
    project_slug: str
    role: str


def role_map_parse(raw: str) -> list[RoleMapEntry]:
    """``support-curators=support:curator,support-reviewers=support:reviewer`` -> entries.
    A claim value may appear several times (one group, several projects)."""
    entries: list[RoleMapEntry] = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        value, sep, target = part.rpartition("=")
        slug, colon, role = target.partition(":")
        if not sep or not colon or not value.strip() or not slug.strip():
            raise ImproperlyConfigured(f"OIDC_ROLE_MAP entry {part!r} must read CLAIM_VALUE=PROJECT_SLUG:ROLE")
        if role.strip() not in ROLES:
            raise ImproperlyConfigured(f"OIDC_ROLE_MAP entry {part!r}: role must be one of {', '.join(ROLES)}")
        entries.append(RoleMapEntry(value.strip(), slug.strip(), role.strip()))
    return entries


def sso_enabled() -> bool:
    return bool(getattr(settings, "OIDC_ISSUER", "") and getattr(settings, "OIDC_RP_CLIENT_ID", ""))


def provider_name() -> str:
    return str(getattr(settings, "OIDC_PROVIDER_NAME", "") or "single sign-on")


def local_passwords() -> bool:
    return bool(getattr(settings, "LOCAL_PASSWORDS", True))


def break_glass() -> bool:
    """With local passwords off, superusers may still sign in with a password (when the provider is down)."""
    return bool(getattr(settings, "LOCAL_PASSWORDS_BREAK_GLASS", False))


def role_map() -> list[RoleMapEntry]:
    return role_map_parse(str(getattr(settings, "OIDC_ROLE_MAP", "") or ""))


def role_claim() -> str:
    return str(getattr(settings, "OIDC_ROLE_CLAIM", "") or "")
