"""Pages: registered model versions, evidence and promotion gates.

Engineers and admins (``Capability.PROMOTE``) see the Models page, version pages and the gates
page; only admins (``Capability.MANAGE``) change gates. Everything read from the registry
(descriptions, params, prompt templates) is untrusted text: templates autoescape it, never |safe.
"""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.template import TemplateDoesNotExist
from django.template.loader import get_template
from django.urls import URLPattern, path
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from pipelines.adapters.errors import PipelineError
from pipelines.models import PromotionGate
from pipelines.releases.evidence import evidence_compare, versions_summary
from pipelines.releases.gates import (
    GateReport,
    figures_display,
    gate_create,
    gate_delete,
    gate_title,
    gate_update,
    gates_evaluate_all,
)
from pipelines.releases.registry import registry_sync, registry_sync_status
from pipelines.selectors.model_versions import (
    environment_list,
    environments_serving,
    gate_get_for_user,
    gate_list,
    model_version_get_for_user,
    model_version_list,
    params_compare,
    project_for_models,
    template_diff,
)
from reviewapp.errors import ValidationFailed
from reviewapp.jsoninput import JsonInputError, json_decode
from reviewapp.permissions import Capability, role_allows
from reviewapp.typed_input import error_from
from reviewapp.views.http import AuthedHtmxRequest

PROMOTIONS_PARTIAL = "pipelines/partials/version_promotions.html"
PAGE_SIZE = 100


def _template_exists(name: str) -> bool:
    try:
        get_template(name)
    except TemplateDoesNotExist:
        return False
    return True


def _report_view(environment: object, report: GateReport) -> dict[str, object]:
    lines = [{"line": line, "figures": figures_display(line.figures)} for line in report.lines]
    return {"environment": environment, "passed": report.passed, "lines": lines}


@login_required
@require_GET
def model_versions_list(request: AuthedHtmxRequest, slug: str) -> HttpResponse:
    project = project_for_models(user=request.user, slug=slug)
    versions = list(model_version_list(project=project).order_by("-id")[:PAGE_SIZE])
    serving = environments_serving(project=project)
    summaries = versions_summary(project=project, versions=versions)
    rows = [{"v": v, "environments": serving.get(v.pk, []), "summary": summaries[v.pk]} for v in versions]
    return render(
        request,
        "pipelines/model_versions.html",
        {
            "project": project,
            "rows": rows,
            "sync": registry_sync_status(project=project),
            "can_manage": role_allows(project.user_role, Capability.MANAGE),  # type: ignore[attr-defined]
        },
    )


@login_required
@require_POST
def model_versions_sync_view(request: AuthedHtmxRequest, slug: str) -> HttpResponse:
    project = project_for_models(user=request.user, slug=slug)
    try:
        result = registry_sync(project=project)
    except PipelineError as exc:
        messages.error(request, f"Sync failed, nothing changed: {exc.message}")
    else:
        messages.success(
            request,
            f"Synced {project.mlflow_registered_model}: {len(result.created)} new, {len(result.updated)} updated, "
            f"{len(result.unchanged)} unchanged, {len(result.deleted)} marked deleted.",
        )
    return redirect("model-versions-list", slug=project.slug)


@login_required
@require_GET
def model_version_detail_view(request: AuthedHtmxRequest, slug: str, version: str) -> HttpResponse:
    model_version = model_version_get_for_user(user=request.user, slug=slug, version=version)
    project = model_version.project
    comparison = evidence_compare(model_version=model_version)
    champion = comparison.champion_version
    compare_with = champion if champion is not None and not comparison.is_champion else None
    diff = template_diff(old=compare_with.prompt_template, new=model_version.prompt_template) if compare_with else []
    return render(
        request,
        "pipelines/model_version_detail.html",
        {
            "project": project,
            "mv": model_version,
            "comparison": comparison,
            "champion": champion,
            "compare_with": compare_with,
            "params": params_compare(
                params=model_version.params, champion_params=compare_with.params if compare_with else None
            ),
            "diff": diff,
            "diff_changed": any(line.kind != "same" for line in diff),
            "suite_rows": comparison.suite_rows(),
            "reports": [_report_view(env, report) for env, report in gates_evaluate_all(model_version=model_version)],
            "environments": environments_serving(project=project).get(model_version.pk, []),
            "promotions_partial": PROMOTIONS_PARTIAL if _template_exists(PROMOTIONS_PARTIAL) else "",
        },
    )


# --- gates ------------------------------------------------------------------------------------

PARAM_EXAMPLES = {
    PromotionGate.Kind.SUITE_METRIC: {"suite_id": 1, "metric": "correctness", "op": ">=", "threshold": 0.8},
    PromotionGate.Kind.MIN_ITEMS: {"count": 30},
    PromotionGate.Kind.MIN_PASS_RATE: {"threshold": 0.8, "confidence": 0.95},
    PromotionGate.Kind.NOT_WORSE: {
        "metric": "human_pass_rate",
        "margin": 0.02,
        "confidence": 0.95,
        "min_shared_items": 20,
    },
}


def _gates_context(request: AuthedHtmxRequest, project: object, **extra: object) -> dict[str, object]:
    gates = list(gate_list(project=project))  # type: ignore[arg-type]
    return {
        "project": project,
        "gates": [{"gate": g, "title": gate_title(g)} for g in gates],
        "environments": environment_list(project=project),  # type: ignore[arg-type]
        "kinds": PromotionGate.Kind.choices,
        "examples": {kind: json.dumps(example) for kind, example in PARAM_EXAMPLES.items()},
        "can_manage": role_allows(project.user_role, Capability.MANAGE),  # type: ignore[attr-defined]
        **extra,
    }


@login_required
@require_http_methods(["GET", "POST"])
def gates_page(request: AuthedHtmxRequest, slug: str) -> HttpResponse:
    if request.method == "GET":
        project = project_for_models(user=request.user, slug=slug)
        return render(request, "pipelines/gates.html", _gates_context(request, project))
    project = project_for_models(user=request.user, slug=slug, manage=True)
    posted = {key: request.POST.get(key, "") for key in ("kind", "params", "environment")}
    try:
        try:
            params = json_decode(posted["params"] or "{}")
        except JsonInputError as exc:
            raise ValidationFailed([error_from(exc, field="params")]) from None
        environment = int(posted["environment"]) if posted["environment"].isdigit() else None
        gate_create(project=project, kind=posted["kind"], params=params, environment=environment, actor=request.user)
    except ValidationFailed as exc:
        context = _gates_context(request, project, errors=exc.errors, error_message=exc.message, posted=posted)
        return render(request, "pipelines/gates.html", context, status=422)
    messages.success(request, "Gate added.")
    return redirect("promotion-gates", slug=project.slug)


@login_required
@require_POST
def gate_toggle_view(request: AuthedHtmxRequest, slug: str, pk: int) -> HttpResponse:
    gate = gate_get_for_user(user=request.user, slug=slug, pk=pk, manage=True)
    gate_update(gate=gate, enabled=not gate.enabled, actor=request.user)
    messages.success(request, f"Gate {'enabled' if gate.enabled else 'disabled'}.")
    return redirect("promotion-gates", slug=slug)


@login_required
@require_POST
def gate_delete_view(request: AuthedHtmxRequest, slug: str, pk: int) -> HttpResponse:
    gate = gate_get_for_user(user=request.user, slug=slug, pk=pk, manage=True)
    gate_delete(gate=gate, actor=request.user)
    messages.success(request, "Gate removed.")
    return redirect("promotion-gates", slug=slug)


urlpatterns: list[URLPattern] = [
    path("projects/<slug:slug>/models/", model_versions_list, name="model-versions-list"),
    path("projects/<slug:slug>/models/sync/", model_versions_sync_view, name="model-versions-sync"),
    path("projects/<slug:slug>/models/<str:version>/", model_version_detail_view, name="model-version-detail"),
    path("projects/<slug:slug>/gates/", gates_page, name="promotion-gates"),
    path("projects/<slug:slug>/gates/<int:pk>/toggle/", gate_toggle_view, name="promotion-gate-toggle"),
    path("projects/<slug:slug>/gates/<int:pk>/delete/", gate_delete_view, name="promotion-gate-delete"),
]
