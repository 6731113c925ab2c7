"""Page: monitoring per project, quality per model version over time.

Curators, engineers and admins (``Capability.EXPORT``); reviewers get 403, non-members 404. One
server-rendered SVG time series per metric (no JavaScript: the page has no script at all), with
promotions and rollbacks marked on the time axis, the newest buckets as a table and every bucket
as CSV (``?format=csv&metric=...`` with the same filters). Reads only precomputed buckets.
"""

# ruff: noqa: RUF001 - text for people: en dashes are intended

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import URLPattern, path, reverse
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_GET, require_POST

from pipelines.models import AlertEvent, AlertRule, Environment
from pipelines.sources.alerts import alert_rule_create, alert_rule_delete, alert_rule_update
from pipelines.sources.monitoring import (
    COUNT,
    DEFAULT_DAYS,
    INTERVALS,
    RATE,
    Metric,
    MonitoringQuery,
    Point,
    ReleaseMark,
    metrics_of,
    model_versions_monitored,
    monitoring_csv,
    monitoring_query_parse,
    monitoring_refresh_status,
    monitoring_series,
    project_for_monitoring,
    release_marks,
)
from reviewapp.charts import PALETTE
from reviewapp.errors import FieldError, ValidationFailed
from reviewapp.models import Project
from reviewapp.permissions import Capability, role_allows
from reviewapp.selectors.projects import project_get_for_user, role_for
from reviewapp.views.http import AuthedHtmxRequest

TABLE_ROWS = 30  # newest buckets shown as a table beside each chart; the CSV has them all
DOTS_UP_TO = 120  # points per version drawn as dots (with their interval); above, the line and band only

WIDTH, HEIGHT = 640, 230
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 22, 36


@dataclass(frozen=True)
class SeriesChart:
    metric: Metric
    svg: SafeString
    points: int
    rows_html: SafeString  # the newest buckets (at most TABLE_ROWS) as table rows
    table_len: int
    interval: str


def _fmt(value: float, kind: str) -> str:
    if kind == RATE:
        return f"{value * 100:.0f}%"
    if abs(value) >= 100 or float(value).is_integer():
        return f"{value:.0f}"
    return f"{value:.2f}"


def _label(at: datetime, granularity: str) -> str:
    return at.strftime("%m-%d %H:00" if granularity == "hour" else "%Y-%m-%d")


def series_svg(
    *,
    metric: Metric,
    points: list[Point],
    marks: list[ReleaseMark],
    query: MonitoringQuery,
    versions: list[str],
) -> SafeString:
    """One metric over time: a line per model version (with its 95% band), release marks as dashed lines."""
    t0, t1 = query.since.timestamp(), query.until.timestamp()
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    highs = [p.high if p.high is not None else p.value for p in points if p.value is not None]
    top = 1.0 if metric.kind == RATE else max([*(h for h in highs if h is not None), 0.0]) * 1.1 or 1.0
    values = [p.value for p in points if p.value is not None]
    bottom_value = 0.0 if metric.kind in (RATE, COUNT) else min([0.0, *values])

    def sx(at: datetime) -> float:
        return LEFT + plot_w * (at.timestamp() - t0) / max(1.0, t1 - t0)

    def sy(value: float) -> float:
        clipped = min(max(value, bottom_value), top)
        return TOP + plot_h * (1 - (clipped - bottom_value) / ((top - bottom_value) or 1.0))

    step = (query.until - query.since) / max(1, round((t1 - t0) / (3600 if query.granularity == "hour" else 86400)))
    half = step / 2  # a bucket's point sits in its middle
    name = escape(metric.name)
    body: list[str] = []
    for tick in (bottom_value, (bottom_value + top) / 2, top):
        y = sy(tick)
        body.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="#eef0f3"/>')
        body.append(
            f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end" class="chart-label">'
            f"{_fmt(tick, metric.kind)}</text>"
        )
    for at, anchor in (
        (query.since, "start"),
        (query.since + (query.until - query.since) / 2, "middle"),
        (query.until, "end"),
    ):
        body.append(
            f'<text x="{sx(at):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="{anchor}" class="chart-label">'
            f"{escape(_label(at, query.granularity))}</text>"
        )
    body.append(f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" y2="{TOP + plot_h}" stroke="#c4cad3"/>')
    by_version: dict[str, list[Point]] = {}
    for p in points:
        if p.value is not None:
            by_version.setdefault(p.model_version, []).append(p)
    for version, own in by_version.items():
        colour = PALETTE[versions.index(version) % len(PALETTE)] if version in versions else PALETTE[-1]
        segments: list[list[Point]] = []
        for p in own:  # a missing bucket breaks the line
            if segments and p.start - segments[-1][-1].start <= step:
                segments[-1].append(p)
            else:
                segments.append([p])
        for seg in segments:
            band = [p for p in seg if p.low is not None and p.high is not None]
            if len(band) > 1:
                upper = " ".join(f"{sx(p.start + half):.1f},{sy(p.high):.1f}" for p in band)  # type: ignore[arg-type]
                lower = " ".join(f"{sx(p.start + half):.1f},{sy(p.low):.1f}" for p in reversed(band))  # type: ignore[arg-type]
                body.append(f'<polygon points="{upper} {lower}" fill="{colour}" fill-opacity="0.12" stroke="none"/>')
            if len(seg) > 1:
                line = " ".join(f"{sx(p.start + half):.1f},{sy(p.value):.1f}" for p in seg)  # type: ignore[arg-type]
                body.append(f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="2"/>')
        if len(own) <= DOTS_UP_TO:
            for p in own:
                tip = f"v{version} {_label(p.start, query.granularity)}: {_fmt(p.value, metric.kind)} (n={p.n})"  # type: ignore[arg-type]
                if p.low is not None and p.high is not None:
                    tip += f", 95% {_fmt(p.low, metric.kind)} to {_fmt(p.high, metric.kind)}"
                body.append(
                    f'<circle cx="{sx(p.start + half):.1f}" cy="{sy(p.value):.1f}" r="3" fill="{colour}">'  # type: ignore[arg-type]
                    f"<title>{escape(tip)}</title></circle>"
                )
    for i, version in enumerate(v for v in versions if v in by_version):
        colour = PALETTE[versions.index(version) % len(PALETTE)]
        key_x = LEFT + i * 70
        body.append(f'<rect x="{key_x}" y="4" width="10" height="10" fill="{colour}"/>')
        body.append(f'<text x="{key_x + 14}" y="13" class="chart-label">v{escape(version[:12])}</text>')
    for mark in marks:
        x = sx(mark.at)
        colour = "#c2312b" if mark.kind == "rollback" else "#5f6878"  # grey: not a version colour
        body.append(
            f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{TOP + plot_h}" stroke="{colour}" stroke-dasharray="4 3" '
            f'data-mark="{mark.kind}"><title>{escape(mark.kind)}: {escape(mark.label)} '
            f"({mark.at:%Y-%m-%d %H:%M} UTC)</title></line>"
        )
        body.append(
            f'<text x="{x + 2:.1f}" y="{TOP + 10}" class="chart-label" fill="{colour}">'
            f"{'↩' if mark.kind == 'rollback' else '▲'}</text>"
        )
    tid, did = f"mon-{name}-title", f"mon-{name}-desc"
    n_total = sum(p.n for p in points)
    desc = (
        f"{metric.title} per {query.granularity} and model version from {_label(query.since, query.granularity)} "
        f"to {_label(query.until, query.granularity)}: {len(points)} buckets over {n_total} items; "
        f"{len(marks)} promotions or rollbacks marked."
    )
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="100%" aria-labelledby="{tid} {did}" data-monitoring-chart="{name}">'
        f'<title id="{tid}">{escape(metric.title)}</title><desc id="{did}">{escape(desc)}</desc>'
    )
    return mark_safe(head + "".join(body) + "</svg>")  # noqa: S308 - every text part is escaped above


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}".rstrip("0").rstrip(".")


def table_rows(points: list[Point], granularity: str) -> SafeString:
    """The newest buckets first, as escaped table rows (built here: a template loop costs ~10 ms a table)."""
    rows = []
    for p in reversed(points):
        interval = "–" if p.low is None or p.high is None else f"{_cell(p.low)} to {_cell(p.high)}"
        rows.append(
            f'<tr><th scope="row">{p.start:%Y-%m-%d %H:%M}</th><td>v{escape(p.model_version)}</td><td>{p.n}</td>'
            f'<td>{_cell(p.value)}</td><td class="nowrap">{interval}</td></tr>'
        )
    return mark_safe("".join(rows))  # noqa: S308 - the only text (the version) is escaped


def _csv(project_slug: str, metric: Metric, points: list[Point]) -> HttpResponse:
    response = HttpResponse(monitoring_csv(metric=metric, points=points), content_type="text/csv; charset=utf-8")
    safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in metric.name)
    response["Content-Disposition"] = f'attachment; filename="{project_slug}-monitoring-{safe}.csv"'
    return response


@login_required
@require_GET
def monitoring_page(request: AuthedHtmxRequest, slug: str) -> HttpResponse:
    project = project_for_monitoring(user=request.user, slug=slug)
    want_csv = request.GET.get("format") == "csv"
    errors: list[FieldError] = []
    try:
        query = monitoring_query_parse(request.GET.dict(), metric_required=want_csv)
    except ValidationFailed as exc:
        if want_csv:
            return HttpResponse(
                "\n".join(f"{e['field']}: {e['message']}" for e in exc.errors), status=400, content_type="text/plain"
            )
        errors = exc.errors
        query = monitoring_query_parse({}, metric_required=False)  # the defaults, beside the errors
    metrics = [query.metric] if query.metric else metrics_of(project=project)
    series = monitoring_series(
        project=project,
        granularity=query.granularity,
        since=query.since,
        until=query.until,
        metrics=metrics,
        model_version=query.model_version,
    )
    if want_csv and query.metric is not None:
        return _csv(project.slug, query.metric, series[query.metric.name])
    versions = model_versions_monitored(project=project)
    marks = release_marks(project=project, since=query.since, until=query.until)
    charts = [
        SeriesChart(
            metric=m,
            svg=series_svg(metric=m, points=series[m.name], marks=marks, query=query, versions=versions),
            points=len(series[m.name]),
            rows_html=table_rows(series[m.name][-TABLE_ROWS:], query.granularity),
            table_len=min(TABLE_ROWS, len(series[m.name])),
            interval=INTERVALS[m.kind],
        )
        for m in metrics
    ]
    filters = {
        "bucket": query.granularity,
        "since": query.since.date().isoformat(),
        "until": (query.until - timedelta(microseconds=1)).date().isoformat(),  # until is exclusive
        "model_version": query.model_version or "",
    }
    return render(
        request,
        "pipelines/monitoring.html",
        {
            "project": project,
            "charts": charts,
            "marks": marks,
            "versions": versions,
            "filters": filters,
            "query": query,
            "errors": errors,
            "refresh": monitoring_refresh_status(project=project),
            "default_days": DEFAULT_DAYS,
            "table_rows": TABLE_ROWS,
            **alerts_context(project=project, user=request.user),
        },
        status=400 if errors else 200,
    )


# --- alert rules: the page's section (create, edit, delete; engineers and admins) -------------------

INT_FIELDS = ("window_hours", "min_n")
FLOAT_FIELDS = ("threshold", "delta")
BOOL_FIELDS = ("rollback", "enabled")
TEXT_FIELDS = ("name", "metric", "comparison", "scope", "model_version", "environment")


def _rule_values(post: QueryDict) -> dict[str, Any]:
    """The posted form as the rule's typed input: numbers as numbers (a bad one is kept as text, so its
    field is named in the error), unchecked boxes false, empty optional fields left out."""
    values: dict[str, Any] = {k: post.get(k, "").strip() for k in TEXT_FIELDS if post.get(k, "").strip()}
    for key in (*INT_FIELDS, *FLOAT_FIELDS):
        raw = post.get(key, "").strip()
        if not raw:
            continue
        try:
            values[key] = int(raw) if key in INT_FIELDS else float(raw)
        except ValueError:
            values[key] = raw
    for key in BOOL_FIELDS:
        values[key] = post.get(key) == "on"
    return values


def _rule_project(request: AuthedHtmxRequest, slug: str) -> Project:
    return project_get_for_user(user=request.user, slug=slug, capability=Capability.PROMOTE)


def _said(exc: ValidationFailed) -> str:
    return "; ".join(f"{e['field'] or 'rule'}: {e['message']}" for e in exc.errors)


@login_required
@require_POST
def alert_rule_save_view(request: AuthedHtmxRequest, slug: str, pk: int | None = None) -> HttpResponse:
    project = _rule_project(request, slug)
    values = _rule_values(request.POST)
    try:
        if pk is None:
            rule = alert_rule_create(project=project, actor=request.user, values=values)
        else:
            found = AlertRule.objects.filter(project=project, pk=pk).first()
            if found is None:
                raise Http404("No such alert rule.")
            rule = alert_rule_update(rule=found, actor=request.user, values=values)
    except ValidationFailed as exc:
        messages.error(request, f"The alert rule was not saved: {_said(exc)}")
        return redirect(reverse("monitoring", args=[slug]) + "#alerts")
    messages.success(request, f"Alert rule {rule.name} saved.")
    return redirect(reverse("monitoring", args=[slug]) + "#alerts")


@login_required
@require_POST
def alert_rule_delete_view(request: AuthedHtmxRequest, slug: str, pk: int) -> HttpResponse:
    project = _rule_project(request, slug)
    rule = AlertRule.objects.filter(project=project, pk=pk).first()
    if rule is None:
        raise Http404("No such alert rule.")
    alert_rule_delete(rule=rule, actor=request.user)
    messages.success(request, f"Alert rule {rule.name} deleted.")
    return redirect(reverse("monitoring", args=[slug]) + "#alerts")


def alerts_context(*, project: Project, user: Any) -> dict[str, Any]:
    rules = list(AlertRule.objects.filter(project=project).select_related("environment").order_by("name"))
    events = AlertEvent.objects.filter(rule__project=project).select_related("rule").order_by("-at", "-id")[:30]
    return {
        "alert_rules": rules,
        "alerts_firing": [r for r in rules if r.enabled and r.state == AlertRule.State.FIRING],
        "alert_events": list(events),
        "alert_environments": list(Environment.objects.filter(project=project).order_by("name")),
        "alerts_editable": role_allows(role_for(user=user, project=project), Capability.PROMOTE)
        or bool(getattr(user, "is_superuser", False)),
        "alert_comparisons": AlertRule.Comparison.choices,
        "alert_scopes": AlertRule.Scope.choices,
    }


urlpatterns: list[URLPattern] = [
    path("projects/<slug:slug>/monitoring/", monitoring_page, name="monitoring"),
    path("projects/<slug:slug>/monitoring/alerts/", alert_rule_save_view, name="monitoring-alert-create"),
    path("projects/<slug:slug>/monitoring/alerts/<int:pk>/", alert_rule_save_view, name="monitoring-alert-edit"),
    path(
        "projects/<slug:slug>/monitoring/alerts/<int:pk>/delete/",
        alert_rule_delete_view,
        name="monitoring-alert-delete",
    ),
]
