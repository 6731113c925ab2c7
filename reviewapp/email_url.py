"""``EMAIL_URL`` as Django's email settings (read by settings.py; no Django import here).

    smtp://user:password@host:587        SMTP with STARTTLS when the port is 587
    smtp+tls://user:password@host:587    SMTP with STARTTLS
    smtp+ssl://user:password@host:465    SMTP over TLS
    console://                           print mails to the log (development)
    locmem://                            keep mails in memory (tests)

Unset or empty: no mail is sent (invitation links are copied by hand). Add ``?from=addr`` to set
the sender. User and password are percent-decoded, so a password may hold any character.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

BACKENDS = {
    "smtp": "django.core.mail.backends.smtp.EmailBackend",
    "smtp+tls": "django.core.mail.backends.smtp.EmailBackend",
    "smtp+ssl": "django.core.mail.backends.smtp.EmailBackend",
    "console": "django.core.mail.backends.console.EmailBackend",
    "locmem": "django.core.mail.backends.locmem.EmailBackend",
}


def email_settings(url: str) -> dict[str, Any]:
    """Django settings for ``url``; ValueError says what is wrong with it."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in BACKENDS:
        raise ValueError(f"EMAIL_URL scheme {scheme!r} is not one of: {', '.join(BACKENDS)}")
    config: dict[str, Any] = {"EMAIL_BACKEND": BACKENDS[scheme]}
    if scheme.startswith("smtp"):
        if not parts.hostname:
            raise ValueError("EMAIL_URL needs a host, e.g. smtp+tls://user:password@mail.example.com:587")
        port = parts.port or (465 if scheme == "smtp+ssl" else 587 if scheme == "smtp+tls" else 25)
        config.update(
            EMAIL_HOST=parts.hostname,
            EMAIL_PORT=port,
            EMAIL_HOST_USER=unquote(parts.username or ""),
            EMAIL_HOST_PASSWORD=unquote(parts.password or ""),
            EMAIL_USE_SSL=scheme == "smtp+ssl",
            EMAIL_USE_TLS=scheme == "smtp+tls" or (scheme == "smtp" and port == 587),
            EMAIL_TIMEOUT=10,
        )
    sender = parse_qs(parts.query).get("from")
    if sender:
        config["DEFAULT_FROM_EMAIL"] = sender[0]
    return config
