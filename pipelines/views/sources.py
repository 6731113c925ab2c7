"""Pages: a project's sources (what production traffic enters the review queue) and their pulls."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import URLPattern, path
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from pipelines.models import Source, SourceKind, SourcePull
from pipelines.sources.config import ColumnMapping
from pipelines.sources.pulls import source_pull_request
from pipelines.sources.sampling import RULE_KINDS
from pipelines.sources.selectors import (
    source_get_for_user,
    source_list,
    source_online,
    source_pull_latest,
    source_rule_counts,
    source_volume,
    suite_choices,
)
from pipelines.sources.services import source_create, source_delete, source_update
from reviewapp.errors import ValidationFailed
from reviewapp.permissions import Capability
from reviewapp.selectors.projects import project_get_for_user
from reviewapp.views.http import AuthedHtmxRequest

TEMPLATE = "pipelines/sources.html"
RULE_ROWS = 6  # rule lines on the form
PULLS_SHOWN = 30
MAPPED = [name for name in ColumnMapping.__struct_fields__ if name != "metadata"]
SETTING_FIELDS = {
    SourceKind.MLFLOW_TRACES: ("experiment", "filter", "since"),
    SourceKind.DELTA_TABLE: ("uri",),
    SourceKind.UC_TABLE: ("table", "warehouse_id", "watermark_column"),
    SourceKind.REST: (),
}


def _rules_form(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The form's rule lines: (kind, parameter, value, caps, label), stored rules first."""
    lines = []
    for rule in rules[:RULE_ROWS]:
        kind = rule.get("kind", "")
        param = {"percent": rule.get("percent"), "score_below": rule.get("name"), "match": rule.get("key")}.get(kind)
        value = {"score_below": rule.get("threshold"), "match": rule.get("value")}.get(kind)
        lines.append(
            {
                "kind": kind,
                "param": "" if param is None else param,
                "value": "" if value is None else value,
                "hour": rule.get("max_per_hour") or "",
                "day": rule.get("max_per_day") or "",
                "label": rule.get("label", ""),
            }
        )
    while len(lines) < RULE_ROWS:
        lines.append({"kind": "", "param": "", "value": "", "hour": "", "day": "", "label": ""})
    return lines


def _number(text: str) -> Any:
    """A form number as a number when it reads as one; else the text (the service names the field)."""
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def _rules_from(post: QueryDict) -> list[dict[str, Any]]:
    rules = []
    for n in range(RULE_ROWS):
        kind = post.get(f"rule_kind_{n}", "").strip()
        if not kind:
            continue
        param, value = post.get(f"rule_param_{n}", "").strip(), post.get(f"rule_value_{n}", "").strip()
        rule: dict[str, Any] = {"kind": kind}
        if kind == "percent":
            rule["percent"] = _number(param)
        elif kind == "score_below":
            rule["name"], rule["threshold"] = param, _number(value)
        elif kind == "match":
            rule["key"], rule["value"] = param, value
        for key, name in (("max_per_hour", "hour"), ("max_per_day", "day")):
            cap = post.get(f"rule_{name}_{n}", "").strip()
            if cap:
                rule[key] = _number(cap)
        label = post.get(f"rule_label_{n}", "").strip()
        if label:
            rule["label"] = label
        rules.append(rule)
    return rules


def _values_from(post: QueryDict, kind: str) -> dict[str, Any]:
    """The form as the service's values (the service validates; errors name the fields)."""
    settings = {}
    for name in SETTING_FIELDS.get(kind, ()):  # type: ignore[call-overload]
        value = post.get(f"setting_{name}", "").strip()
        if value:
            settings[name] = value
    mapping = {name: post.get(f"map_{name}", "").strip() for name in MAPPED}
    mapping = {k: v for k, v in mapping.items() if v}
    interval = post.get("interval_seconds", "").strip()
    values: dict[str, Any] = {
        "name": post.get("name", ""),
        "settings": settings,
        "rules": _rules_from(post),
        "interval_seconds": _number(interval) if interval else 300,
        "enabled": post.get("enabled") == "on",
    }
    if "suite" in post:  # the online evaluation fields (absent for a REST source's form)
        suite = post.get("suite", "").strip()
        values["suite"] = _number(suite) if suite else None
        budget = post.get("judge_calls_per_hour", "").strip()
        values["judge_calls_per_hour"] = _number(budget) if budget else 100
    if kind in (SourceKind.DELTA_TABLE, SourceKind.UC_TABLE):
        values["column_mapping"] = mapping
    return values


def _form_of(source: Source) -> dict[str, Any]:
    return {
        "id": source.pk,
        "name": source.name,
        "kind": source.kind,
        "interval_seconds": source.interval_seconds,
        "enabled": source.enabled,
        "settings": source.settings,
        "mapping": source.column_mapping,
        "rules": _rules_form(source.rules),
        "suite": source.suite_id,
        "judge_calls_per_hour": source.judge_calls_per_hour,
    }


def _blank_form() -> dict[str, Any]:
    return {
        "id": None,
        "name": "",
        "kind": SourceKind.MLFLOW_TRACES,
        "interval_seconds": 300,
        "enabled": True,
        "settings": {},
        "mapping": {},
        "rules": _rules_form([{"kind": "thumbs_down"}, {"kind": "error"}, {"kind": "percent", "percent": 5}]),
        "suite": None,
        "judge_calls_per_hour": 100,
    }


def _posted_form(post: QueryDict, source: Source | None) -> dict[str, Any]:
    kind = source.kind if source else post.get("kind", "")
    values = _values_from(post, kind)
    return {
        "id": source.pk if source else None,
        "name": values["name"],
        "kind": kind,
        "interval_seconds": post.get("interval_seconds", ""),
        "enabled": values["enabled"],
        "settings": {name: post.get(f"setting_{name}", "") for names in SETTING_FIELDS.values() for name in names},
        "mapping": {name: post.get(f"map_{name}", "") for name in MAPPED},
        "rules": _rules_form(values["rules"]),
        "suite": values.get("suite"),
        "judge_calls_per_hour": post.get("judge_calls_per_hour", ""),
    }


def _context(project: Any, **extra: Any) -> dict[str, Any]:
    sources = list(source_list(project=project))
    latest = source_pull_latest(project=project)
    rows = []
    for source in sources:
        rows.append(
            {
                "source": source,
                "pull": latest.get(source.pk),
                "volume": source_volume(source=source),
                "rules": source_rule_counts(source=source),
                "online": source_online(source=source, runs=5) if source.suite_id is not None else None,
            }
        )
    pulls = list(
        SourcePull.objects.filter(project=project)
        .select_related("source", "created_by")
        .prefetch_related("runs__run")
        .order_by("-id")[:PULLS_SHOWN]
    )
    return {
        "project": project,
        "rows": rows,
        "pulls": pulls,
        # Poll while a pull runs, or while a run a pull started is still scoring.
        "active": any(p.is_active for p in pulls)
        or any(sr.run.status in ("queued", "running") for p in pulls for sr in p.runs.all()),
        "kinds": SourceKind.choices,
        "suites": suite_choices(project=project),
        "rule_kinds": list(RULE_KINDS),
        "mapped": MAPPED,
        "form": extra.pop("form", None) or _blank_form(),
        **extra,
    }


def _errors(exc: ValidationFailed) -> list[str]:
    return [f"{e['field'] or 'source'}: {e['message']}" for e in exc.errors]


@login_required
@require_GET
def sources_list(request: AuthedHtmxRequest, slug: str) -> HttpResponse:
    """The sources, their last pulls and the form; the live part polls while a pull is queued or running."""
    project = project_get_for_user(user=request.user, slug=slug, capability=Capability.INGEST)
    edit = request.GET.get("edit", "")
    form = None
    if edit.isdigit():
        source = source_get_for_user(user=request.user, pk=int(edit))
        if source.project_id != project.pk:
            raise Http404("No such source.")
        form = _form_of(source)
    context = _context(project, form=form)
    if request.htmx:
        response = render(request, f"{TEMPLATE}#sources-live", context)
        return response if context["active"] else HttpResponseStopPolling(response.content)
    return render(request, TEMPLATE, context)


@login_required
@require_POST
def source_create_view(request: AuthedHtmxRequest, slug: str) -> HttpResponse:
    project = project_get_for_user(user=request.user, slug=slug, capability=Capability.INGEST)
    kind = request.POST.get("kind", "")
    try:
        source = source_create(
            project=project, values={"kind": kind, **_values_from(request.POST, kind)}, actor=request.user
        )
    except ValidationFailed as exc:
        context = _context(project, form=_posted_form(request.POST, None), errors=_errors(exc))
        return render(request, TEMPLATE, context, status=400)
    messages.success(request, f"Source {source.name} added.")
    return redirect("sources-list", slug=project.slug)


def _own_source(request: AuthedHtmxRequest, slug: str, pk: int) -> Source:
    source = source_get_for_user(user=request.user, pk=pk)
    if source.project.slug != slug:
        raise Http404("No such source.")
    return source


@login_required
@require_POST
def source_edit_view(request: AuthedHtmxRequest, slug: str, pk: int) -> HttpResponse:
    source = _own_source(request, slug, pk)
    values = _values_from(request.POST, source.kind)
    if request.POST.get("reset_watermark") == "on":
        values["reset_watermark"] = True
    try:
        source_update(source=source, values=values, actor=request.user)
    except ValidationFailed as exc:
        context = _context(source.project, form=_posted_form(request.POST, source), errors=_errors(exc))
        return render(request, TEMPLATE, context, status=400)
    messages.success(request, f"Source {source.name} saved.")
    return redirect("sources-list", slug=slug)


@login_required
@require_POST
def source_delete_view(request: AuthedHtmxRequest, slug: str, pk: int) -> HttpResponse:
    source = _own_source(request, slug, pk)
    source_delete(source=source, actor=request.user)
    messages.success(request, f"Source {source.name} deleted (its items stay).")
    return redirect("sources-list", slug=slug)


@login_required
@require_POST
def source_pull_view(request: AuthedHtmxRequest, slug: str, pk: int) -> HttpResponse:
    source = _own_source(request, slug, pk)
    try:
        pull = source_pull_request(source=source, actor=request.user)
    except ValidationFailed as exc:
        return render(request, TEMPLATE, _context(source.project, errors=_errors(exc)), status=400)
    messages.success(
        request, f"Pull {pull.pk} of {source.name} {'queued' if pull.status == 'queued' else pull.status}."
    )
    return redirect("sources-list", slug=slug)


urlpatterns: list[URLPattern] = [
    path("projects/<slug:slug>/sources/", sources_list, name="sources-list"),
    path("projects/<slug:slug>/sources/new/", source_create_view, name="source-create"),
    path("projects/<slug:slug>/sources/<int:pk>/edit/", source_edit_view, name="source-edit"),
    path("projects/<slug:slug>/sources/<int:pk>/delete/", source_delete_view, name="source-delete"),
    path("projects/<slug:slug>/sources/<int:pk>/pull/", source_pull_view, name="source-pull"),
]
