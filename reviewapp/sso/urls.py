from __future__ import annotations

from django.urls import path

from reviewapp.sso import views

urlpatterns = [
    path("authenticate/", views.SsoStartView.as_view(), name="oidc_authentication_init"),
    path("callback/", views.SsoCallbackView.as_view(), name="oidc_authentication_callback"),
]
