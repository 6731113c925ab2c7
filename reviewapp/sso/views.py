"""The sign-in page, the start of an SSO sign-in, its callback, and the page that says why it failed."""

from __future__ import annotations

import logging
from typing import Any

import requests
from django.contrib.auth import views as auth_views
from django.core.exceptions import SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from reviewapp.forms import LoginForm
from reviewapp.sso import config
from reviewapp.sso.discovery import DiscoveryFailed, endpoints

log = logging.getLogger(__name__)


def _refused(request: HttpRequest, reason: str, *, status: int = 403) -> HttpResponse:
    return render(
        request,
        "registration/sso_refused.html",
        {"reason": reason, "provider_name": config.provider_name(), "sso_enabled": config.sso_enabled()},
        status=status,
    )


class SignInView(auth_views.LoginView):
    """Django's login view, plus "Sign in with <provider>" and local passwords that can be off."""

    authentication_form = LoginForm
    redirect_authenticated_user = True

    def passwords_offered(self) -> bool:
        return config.local_passwords() or config.break_glass()

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context.update(
            sso_enabled=config.sso_enabled(),
            sso_provider_name=config.provider_name(),
            local_passwords=config.local_passwords(),
            break_glass=not config.local_passwords() and config.break_glass(),
        )
        return context

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not self.passwords_offered():
            return _refused(
                request,
                "Signing in with a password is switched off on this Reviewdesk."
                + (f" Use “Sign in with {config.provider_name()}”." if config.sso_enabled() else ""),
            )
        return super().post(request, *args, **kwargs)


class SsoStartView(OIDCAuthenticationRequestView):
    """Redirect to the provider with state, nonce and a PKCE challenge (kept in the session)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Not the library's __init__: it reads the endpoint from settings, which here come from discovery.
        super(OIDCAuthenticationRequestView, self).__init__(*args, **kwargs)

    def get(self, request: HttpRequest) -> HttpResponse:
        if not config.sso_enabled():
            raise Http404("Single sign-on is not configured.")
        try:
            self.OIDC_OP_AUTH_ENDPOINT = endpoints()["OIDC_OP_AUTHORIZATION_ENDPOINT"]
        except DiscoveryFailed as exc:
            log.warning("OpenID discovery failed: %s", exc)
            return _refused(
                request, f"{config.provider_name()} cannot be reached right now; try again soon.", status=502
            )
        self.OIDC_RP_CLIENT_ID = self.get_settings("OIDC_RP_CLIENT_ID")
        response: HttpResponse = super().get(request)
        return response


class SsoCallbackView(OIDCAuthenticationCallbackView):
    """The provider sends the browser back here with a code; the backend turns it into a user."""

    def get(self, request: HttpRequest) -> HttpResponse:
        if not config.sso_enabled():
            raise Http404("Single sign-on is not configured.")
        if request.GET.get("error"):
            log.info("provider answered error=%s", request.GET.get("error"))
        try:
            response: HttpResponse = super().get(request)
        except SuspiciousOperation as exc:
            log.warning("SSO sign-in refused: %s", exc)
            return _refused(request, f"The answer from {config.provider_name()} could not be trusted ({exc}).")
        except (requests.RequestException, DiscoveryFailed) as exc:
            log.warning("SSO sign-in failed talking to the provider: %s", exc)
            return _refused(request, f"{config.provider_name()} could not be reached to finish signing in.", status=502)
        return response

    def login_failure(self) -> HttpResponse:
        reason = getattr(self.request, "sso_refusal", None)
        if reason is None:
            error = self.request.GET.get("error_description") or self.request.GET.get("error")
            reason = f"{config.provider_name()} did not sign you in" + (f" ({error})." if error else ".")
        return _refused(self.request, reason)
