"""The provider's endpoints, from ``{issuer}/.well-known/openid-configuration`` (OpenID Connect
Discovery 1.0), fetched once per issuer with a short timeout. An endpoint set in the environment
(``OIDC_OP_*``) wins over the discovered one."""

from __future__ import annotations

import threading
from typing import Any

import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

_cache: dict[str, dict[str, Any]] = {}
_lock = threading.Lock()

ENDPOINTS = {
    "OIDC_OP_AUTHORIZATION_ENDPOINT": "authorization_endpoint",
    "OIDC_OP_TOKEN_ENDPOINT": "token_endpoint",
    "OIDC_OP_USER_ENDPOINT": "userinfo_endpoint",
    "OIDC_OP_JWKS_ENDPOINT": "jwks_uri",
}


class DiscoveryFailed(Exception):
    """The provider could not be reached or answered something that is not its configuration."""


def discovery_fetch(issuer: str) -> dict[str, Any]:
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        response = requests.get(url, timeout=getattr(settings, "OIDC_TIMEOUT", 5))
        response.raise_for_status()
        document = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise DiscoveryFailed(f"{url}: {exc}") from exc
    if not isinstance(document, dict):
        raise DiscoveryFailed(f"{url}: not a JSON object")
    # The issuer in the document must be the one configured (OpenID Discovery §4.3): otherwise
    # tokens would be checked against the wrong issuer.
    if str(document.get("issuer", "")).rstrip("/") != issuer.rstrip("/"):
        raise DiscoveryFailed(f"{url}: says issuer {document.get('issuer')!r}, expected {issuer!r}")
    return document


def endpoints() -> dict[str, str]:
    """The four endpoints, keyed by mozilla-django-oidc's setting names."""
    issuer = str(getattr(settings, "OIDC_ISSUER", "") or "")
    if not issuer:
        raise ImproperlyConfigured("OIDC_ISSUER is not set")
    configured = {name: str(getattr(settings, name, "") or "") for name in ENDPOINTS}
    if all(configured.values()):
        return configured
    with _lock:
        document = _cache.get(issuer)
    if document is None:
        document = discovery_fetch(issuer)
        with _lock:
            _cache[issuer] = document
    found = {name: configured[name] or str(document.get(key) or "") for name, key in ENDPOINTS.items()}
    missing = [ENDPOINTS[name] for name, value in found.items() if not value]
    if missing:
        raise DiscoveryFailed(f"the provider's configuration lacks {', '.join(missing)}")
    return found


def discovery_forget() -> None:
    """Fetch again at next use (a test's provider moved, or an operator rotated the provider)."""
    with _lock:
        _cache.clear()
