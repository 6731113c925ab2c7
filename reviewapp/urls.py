from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from reviewapp.api.docs import ApiDocsView, ApiSchemaView
from reviewapp.sso.views import SignInView
from reviewapp.views import health

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("login/", SignInView.as_view(), name="login"),
    path("oidc/", include("reviewapp.sso.urls")),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/schema/", ApiSchemaView.as_view(), name="api-schema"),
    path("api/docs/", ApiDocsView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/v1/", include("reviewapp.api.urls")),
    path("api/v1/", include("evaluations.api_urls")),
    path("api/v1/", include("pipelines.api.urls")),
    path("evaluations/", include("evaluations.urls")),
    path("", include("reviewapp.views.urls")),
    path("", include("pipelines.views.urls")),
]
