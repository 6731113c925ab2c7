"""Settings: the user's API tokens. A new token's secret is shown once, in the creating response."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from reviewapp.errors import ValidationFailed
from reviewapp.forms import ApiTokenForm
from reviewapp.permissions import Capability
from reviewapp.selectors.projects import project_get_for_user, project_list_for_user
from reviewapp.selectors.tokens import api_token_get_for_user, api_token_list_for_user
from reviewapp.services.tokens import api_token_create, api_token_revoke
from reviewapp.views.http import AuthedHtmxRequest

TEMPLATE = "reviewapp/token_list.html"


@never_cache  # the response that carries a new secret must not be stored anywhere
@login_required
@require_http_methods(["GET", "POST"])
def token_list(request: AuthedHtmxRequest) -> HttpResponse:
    projects = [(p.project.slug, p.project.name) for p in project_list_for_user(user=request.user)]
    form = ApiTokenForm(request.POST or None, projects=projects)
    created, secret = None, None
    status = 200
    if request.method == "POST":
        if form.is_valid():
            slug = form.cleaned_data["project"]
            project = project_get_for_user(user=request.user, slug=slug, capability=Capability.VIEW) if slug else None
            try:
                created, secret = api_token_create(
                    user=request.user,
                    name=form.cleaned_data["name"],
                    scopes=form.cleaned_data["scopes"],
                    project=project,
                )
            except ValidationFailed as exc:
                for error in exc.errors:
                    form.add_error(error["field"] if error["field"] in form.fields else None, error["message"])
            else:
                form = ApiTokenForm(projects=projects)
                status = 201
        if created is None:
            status = 422
    context = {
        "tokens": api_token_list_for_user(user=request.user),
        "form": form,
        "created": created,
        "secret": secret,
    }
    return render(request, TEMPLATE, context, status=status)


@login_required
@require_POST
def token_revoke(request: AuthedHtmxRequest, pk: int) -> HttpResponse:
    token = api_token_get_for_user(user=request.user, pk=pk)
    api_token_revoke(token=token, user=request.user)
    messages.success(request, f"Token “{token.name}” ({token.prefix}…) was revoked; it no longer works.")
    return redirect("token-list")
