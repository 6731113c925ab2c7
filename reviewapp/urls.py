from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from reviewapp.api.docs import ApiDocsView, ApiSchemaView
from reviewapp.forms import LoginForm
from reviewapp.views import health

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path(
        "login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True, authentication_form=LoginForm),
        name="login",
    ),
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

handler403 = "reviewapp.views.errors.forbidden"
handler404 = "reviewapp.views.errors.not_found"
handler500 = "reviewapp.views.errors.server_error"
