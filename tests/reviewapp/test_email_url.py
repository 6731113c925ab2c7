"""EMAIL_URL as Django's mail settings."""

from __future__ import annotations

import pytest

from reviewapp.email_url import email_settings


def test_smtp_with_starttls_and_encoded_password():
    config = email_settings("smtp+tls://bot%40example.com:p%2Fss%3Aword@mail.example.com:2525?from=rd@example.com")
    assert config == {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "mail.example.com",
        "EMAIL_PORT": 2525,
        "EMAIL_HOST_USER": "bot@example.com",
        "EMAIL_HOST_PASSWORD": "p/ss:word",
        "EMAIL_USE_SSL": False,
        "EMAIL_USE_TLS": True,
        "EMAIL_TIMEOUT": 10,
        "DEFAULT_FROM_EMAIL": "rd@example.com",
    }


def test_default_ports_and_other_backends():
    assert email_settings("smtp+ssl://mail.example.com")["EMAIL_PORT"] == 465
    assert email_settings("smtp+ssl://mail.example.com")["EMAIL_USE_SSL"] is True
    plain = email_settings("smtp://relay")
    assert (plain["EMAIL_PORT"], plain["EMAIL_USE_TLS"]) == (25, False)
    assert email_settings("smtp://relay:587")["EMAIL_USE_TLS"] is True
    assert email_settings("console://")["EMAIL_BACKEND"].endswith("console.EmailBackend")


@pytest.mark.parametrize("url", ["http://mail.example.com", "smtp://", "mailto:x@example.com"])
def test_bad_urls_say_why(url):
    with pytest.raises(ValueError, match="EMAIL_URL"):
        email_settings(url)
