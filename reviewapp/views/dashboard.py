"""Dashboards: the project's progress, answers and agreement; the reviewers' record (curators)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from reviewapp.charts import Chart, project_charts, reviewer_charts
from reviewapp.permissions import Capability, role_allows
from reviewapp.selectors.projects import project_get_for_user
from reviewapp.selectors.stats import project_stats_cached, reviewer_stats
from reviewapp.views.http import AuthedHtmxRequest


def _csv_response(request: AuthedHtmxRequest, charts: list[Chart], slug: str) -> HttpResponse | None:
    """The numbers of one chart as CSV when asked (``?format=csv&chart=<name>``)."""
    if request.GET.get("format") != "csv":
        return None
    name = request.GET.get("chart", "")
    chart = next((c for c in charts if c.name == name), None)
    if chart is None:
        raise Http404("No such chart.")
    response = HttpResponse(chart.csv(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{slug}-{chart.name}.csv"'
    return response


@login_required
@require_GET
def project_dashboard(request: AuthedHtmxRequest, slug: str) -> HttpResponse:
    project = project_get_for_user(user=request.user, slug=slug, capability=Capability.VIEW)
    # Reviewers see progress only: the answers of others are not theirs to see.
    full = role_allows(project.user_role, Capability.EXPORT)  # type: ignore[attr-defined]
    stats = project_stats_cached(project=project, full=full)
    charts = project_charts(stats)
    csv_response = _csv_response(request, charts, project.slug)
    if csv_response is not None:
        return csv_response
    context = {
        "project": project,
        "stats": stats,
        "charts": charts,
        "full": full,
        "may_curate": role_allows(project.user_role, Capability.CURATE),  # type: ignore[attr-defined]
    }
    return render(request, "reviewapp/dashboard.html", context)


@login_required
@require_GET
def reviewer_dashboard(request: AuthedHtmxRequest, slug: str) -> HttpResponse:
    project = project_get_for_user(user=request.user, slug=slug, capability=Capability.CURATE)
    rows = reviewer_stats(project=project)
    charts = reviewer_charts(rows)
    csv_response = _csv_response(request, charts, project.slug)
    if csv_response is not None:
        return csv_response
    return render(request, "reviewapp/reviewer_dashboard.html", {"project": project, "rows": rows, "charts": charts})
