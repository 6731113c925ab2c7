"""Evaluation pages for engineers (Capability.EVALUATE): suites, starting runs, the live run page,
comparison. Function views; access is checked by the selectors' getters, never in templates.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling, trigger_client_event

from evaluations.models import Run, Suite
from evaluations.scorers.registry import scorer_list
from evaluations.selectors import (
    mlflow_run_url,
    projects_for_evaluation,
    run_chunks,
    run_get_for_user,
    run_get_pair_for_user,
    run_item_ids,
    run_item_rows,
    run_list,
    run_metrics,
    runs_comparable_with,
    suite_get_for_user,
    suite_list,
    suite_version_for_project,
    suite_version_list,
    suite_versions,
)
from evaluations.services.alignment import alignment_compute, disagreements_send_to_review
from evaluations.services.compare import runs_compare
from evaluations.services.runs import run_cancel, run_start
from evaluations.services.suites import suite_create, suite_version_create
from pipelines.selectors.assessments import dataset_version_for_run, dataset_version_list_for_runs
from reviewapp.errors import Conflict, FieldError, ValidationFailed
from reviewapp.jsoninput import JsonInputError, json_decode
from reviewapp.models import Project, Question
from reviewapp.permissions import Capability
from reviewapp.selectors.items import item_model_version_list
from reviewapp.selectors.projects import project_get_for_user, questions_for_project
from reviewapp.typed_input import field_error
from reviewapp.views.http import AuthedHtmxRequest, Notice, partial

RUN_TEMPLATE = "evaluations/run_detail.html"
ROWS_PER_PAGE = 25


# --- form parsing (the scorer table and the start-run form) -----------------------------------


def _scorer_table(selected: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Every registered scorer, with what the form shows for it (ticked, threshold, params)."""
    chosen = {e["scorer"]: e for e in selected or []}
    rows = []
    for spec in scorer_list():
        entry = chosen.get(spec.name)
        threshold = entry["threshold"] if entry else spec.default_threshold
        params = entry["params"] if entry else spec.params
        rows.append(
            {
                "spec": spec,
                "checked": entry is not None,
                "threshold": "" if threshold is None else threshold,
                "params": json.dumps(params) if params else "",
            }
        )
    return rows


def _scorers_from_post(post: Any) -> tuple[list[dict[str, Any]], list[FieldError]]:
    entries: list[dict[str, Any]] = []
    errors: list[FieldError] = []
    for name in post.getlist("scorer"):
        entry: dict[str, Any] = {"scorer": name}
        threshold = (post.get(f"threshold:{name}") or "").strip()
        if threshold:
            try:
                entry["threshold"] = float(threshold)
            except ValueError:
                errors.append(field_error(f"{name} · threshold", "Give a number."))
        params = (post.get(f"params:{name}") or "").strip()
        if params:
            try:
                entry["params"] = json_decode(params)
            except JsonInputError as exc:
                errors.append(field_error(f"{name} · params", exc.message))
        entries.append(entry)
    return entries, errors


def _config_from_post(post: Any) -> dict[str, Any]:
    config: dict[str, Any] = {"human_question": post.get("human_question", "")}
    rate = (post.get("max_error_rate") or "").strip()
    if rate:
        try:
            config["max_error_rate"] = float(rate) / 100
        except ValueError:
            config["max_error_rate"] = rate  # the service names the field
    size = (post.get("chunk_size") or "").strip()
    if size:
        config["chunk_size"] = int(size) if size.isdigit() else size
    return config


def _readable(errors: list[FieldError], entries: list[dict[str, Any]]) -> list[FieldError]:
    """``scorers[2].threshold`` reads as ``token_f1 · threshold`` on the page."""
    out: list[FieldError] = []
    for e in errors:
        field = e["field"]
        if field.startswith("scorers[") and e["index"] is not None and e["index"] < len(entries):
            rest = field.split("]", 1)[1].lstrip(".")
            field = f"{entries[e['index']].get('scorer', '?')} · {rest}" if rest else str(entries[e["index"]])
        out.append({**e, "field": field})
    return out


def _dataset_from_post(post: Any) -> dict[str, Any]:
    dataset: dict[str, Any] = {}
    for key in ("model_version", "source"):
        if (post.get(key) or "").strip():
            dataset[key] = post[key].strip()
    metadata = (post.get("metadata") or "").strip()
    if metadata:
        pairs = [p.partition("=") for p in metadata.split(",") if p.strip()]
        dataset["metadata"] = {k.strip(): v.strip() for k, _, v in pairs}
    ids = (post.get("ids") or "").replace(",", " ").split()
    if ids:
        dataset["ids"] = [int(i) if i.isdigit() else i for i in ids]
    if post.get("curated_only"):
        dataset["curated_only"] = True
    limit = (post.get("limit") or "").strip()
    if limit:
        dataset["limit"] = int(limit) if limit.isdigit() else limit
    return dataset


def _target_from_post(post: Any) -> dict[str, Any]:
    kind = post.get("target_kind") or "stored"
    if kind == "mlflow_model":
        return {"kind": kind, "model_uri": (post.get("model_uri") or "").strip()}
    if kind == "endpoint":
        return {"kind": kind, "endpoint": (post.get("endpoint") or "").strip()}
    return {"kind": kind}


def _start_context(project: Project, suites: list[Suite]) -> dict[str, Any]:
    return {
        "start_versions": list(suite_version_list(suites=suites)),
        "model_versions": item_model_version_list(project=project),
        "dataset_versions": list(dataset_version_list_for_runs(project=project)),
    }


def _pass_fail_questions(project: Project) -> list[Question]:
    return [q for q in questions_for_project(project=project) if q.kind == Question.Kind.PASS_FAIL]


# --- pages -------------------------------------------------------------------------------------


@login_required
@require_GET
def evaluations_home(request: AuthedHtmxRequest) -> HttpResponse:
    projects = projects_for_evaluation(user=request.user)
    runs = run_list(projects=projects)[:20]
    return render(request, "evaluations/home.html", {"projects": projects, "runs": runs})


def _project_page(
    request: AuthedHtmxRequest, project: Project, *, errors: list[FieldError] | None = None, status: int = 200
) -> HttpResponse:
    suites = list(suite_list(project=project))
    posted = request.POST if request.method == "POST" else None
    context = {
        "project": project,
        "suites": suites,
        "runs": run_list(projects=[project])[:30],
        "scorer_rows": _scorer_table(),
        "pass_fail": _pass_fail_questions(project),
        "errors": errors or [],
        "posted": posted,
        **_start_context(project, suites),
    }
    return render(request, "evaluations/project.html", context, status=status)


@login_required
@require_GET
def project_evaluations(request: AuthedHtmxRequest, slug: str) -> HttpResponse:
    project = project_get_for_user(user=request.user, slug=slug, capability=Capability.EVALUATE)
    return _project_page(request, project)


@login_required
@require_POST
def suite_create_view(request: AuthedHtmxRequest, slug: str) -> HttpResponse:
    project = project_get_for_user(user=request.user, slug=slug, capability=Capability.EVALUATE)
    entries, errors = _scorers_from_post(request.POST)
    if not errors:
        try:
            suite = suite_create(
                project=project,
                name=request.POST.get("name", ""),
                description=request.POST.get("description", ""),
                scorers=entries,
                config=_config_from_post(request.POST),
                actor=request.user,
            )
        except ValidationFailed as exc:
            errors = _readable(exc.errors, entries)
        else:
            messages.success(request, f"Suite “{suite.name}” created (version 1).")
            return redirect("evaluations-suite", slug=project.slug, pk=suite.pk)
    return _project_page(request, project, errors=errors, status=422)


def _suite_page(
    request: AuthedHtmxRequest, suite: Suite, *, errors: list[FieldError] | None = None, status: int = 200
) -> HttpResponse:
    versions = list(suite_versions(suite=suite))
    latest = versions[0] if versions else None
    context = {
        "project": suite.project,
        "suite": suite,
        "versions": versions,
        "scorer_rows": _scorer_table(latest.scorers if latest else None),
        "pass_fail": _pass_fail_questions(suite.project),
        "latest": latest,
        "errors": errors or [],
        "runs": run_list(projects=[suite.project]).filter(suite_version__suite=suite)[:30],
        **_start_context(suite.project, [suite]),
    }
    return render(request, "evaluations/suite_detail.html", context, status=status)


@login_required
@require_GET
def suite_detail(request: AuthedHtmxRequest, slug: str, pk: int) -> HttpResponse:
    return _suite_page(request, suite_get_for_user(user=request.user, pk=pk, slug=slug))


@login_required
@require_POST
def suite_version_create_view(request: AuthedHtmxRequest, slug: str, pk: int) -> HttpResponse:
    suite = suite_get_for_user(user=request.user, pk=pk, slug=slug)
    entries, errors = _scorers_from_post(request.POST)
    if not errors:
        try:
            version = suite_version_create(
                suite=suite, scorers=entries, config=_config_from_post(request.POST), actor=request.user
            )
        except ValidationFailed as exc:
            errors = _readable(exc.errors, entries)
        else:
            messages.success(request, f"Version {version.number} of “{suite.name}” saved.")
            return redirect("evaluations-suite", slug=suite.project.slug, pk=suite.pk)
    return _suite_page(request, suite, errors=errors, status=422)


@login_required
@require_POST
def run_start_view(request: AuthedHtmxRequest, slug: str) -> HttpResponse:
    project = project_get_for_user(user=request.user, slug=slug, capability=Capability.EVALUATE)
    back = request.POST.get("back") or ""
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        back = reverse("evaluations-project", args=[project.slug])
    try:
        version_id = int(request.POST.get("suite_version") or 0)
        version = suite_version_for_project(project=project, pk=version_id)
        if version is None:
            raise ValidationFailed([field_error("suite_version", "Pick a suite version.")])
        picked = (request.POST.get("dataset_version") or "").strip()
        snapshot = dataset_version_for_run(project=project, pk=picked) if picked else None
        run = run_start(
            project=project,
            suite_version=version,
            dataset=_dataset_from_post(request.POST),
            dataset_version=snapshot,
            target=_target_from_post(request.POST),
            actor=request.user,
        )
    except (ValueError, ValidationFailed) as exc:
        problems = exc.errors if isinstance(exc, ValidationFailed) else []
        text = "; ".join(f"{e['field']}: {e['message']}" for e in problems) or "The run could not start."
        messages.error(request, f"The run could not start. {text}")
        return redirect(back)
    return redirect("evaluations-run", pk=run.pk)


# --- the run page ------------------------------------------------------------------------------


def _metric_rows(run: Run) -> list[dict[str, Any]]:
    alignment = alignment_compute(run=run)
    entries = {e["name"]: e for e in run.suite_version.scorers}
    return [
        {"name": name, "entry": entries.get(name, {}), **figures, "alignment": alignment.get(name)}
        for name, figures in run_metrics(run=run).items()
    ]


def _status_context(run: Run) -> dict[str, Any]:
    return {"run": run, "mlflow_url": mlflow_run_url(run=run)}


@login_required
@require_GET
def run_detail(request: AuthedHtmxRequest, pk: int) -> HttpResponse:
    run = run_get_for_user(user=request.user, pk=pk)
    names = run.suite_version.scorer_names
    scorer = request.GET.get("scorer", "")
    scorer = scorer if scorer in names else ""
    verdict = request.GET.get("verdict", "")
    verdict = verdict if verdict in ("failed", "errored") else ""
    page = Paginator(run_item_ids(run=run, scorer=scorer or None, verdict=verdict), ROWS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    context = {
        **_status_context(run),
        "project": run.project,
        "metrics": _metric_rows(run),
        "names": names,
        "page": page,
        "rows": run_item_rows(run=run, item_ids=list(page.object_list)),
        "scorer": scorer,
        "verdict": verdict,
        "others": runs_comparable_with(run=run),
        "chunks": run_chunks(run=run),
    }
    # htmx asks for the rows again when the run finishes (they fill in as chunks close).
    return render(request, partial(RUN_TEMPLATE, request, "run-rows"), context)


@login_required
@require_GET
def run_status(request: AuthedHtmxRequest, pk: int) -> HttpResponse:
    """The ``run-status`` fragment, polled every 2 s; polling stops once the run is finished."""
    run = run_get_for_user(user=request.user, pk=pk)
    html = render_to_string(f"{RUN_TEMPLATE}#run-status", _status_context(run), request=request)
    if run.is_finished:
        # 286 stops htmx polling; the event makes the metrics panel fetch its final figures.
        return trigger_client_event(HttpResponseStopPolling(html), "run-finished")
    return HttpResponse(html)


@login_required
@require_GET
def run_metrics_view(request: AuthedHtmxRequest, pk: int) -> HttpResponse:
    run = run_get_for_user(user=request.user, pk=pk)
    return render(request, f"{RUN_TEMPLATE}#run-metrics", {"run": run, "metrics": _metric_rows(run)})


@login_required
@require_POST
def run_cancel_view(request: AuthedHtmxRequest, pk: int) -> HttpResponse:
    run = run_get_for_user(user=request.user, pk=pk)
    notice: Notice | None
    try:
        run = run_cancel(run=run, actor=request.user)
        notice = Notice("success", "Run cancelled. Results scored so far are kept.")
    except Conflict as exc:
        run = run_get_for_user(user=request.user, pk=pk)
        notice = Notice("warning", exc.message)
    if request.htmx:
        context = {**_status_context(run), "notice": notice}
        html = render_to_string(f"{RUN_TEMPLATE}#run-status", context, request=request)
        return trigger_client_event(HttpResponseStopPolling(html), "run-finished")
    messages.add_message(request, messages.SUCCESS if notice.level == "success" else messages.WARNING, notice.text)
    return redirect("evaluations-run", pk=run.pk)


@login_required
@require_POST
def run_disagreements_send_view(request: AuthedHtmxRequest, pk: int) -> HttpResponse:
    run = run_get_for_user(user=request.user, pk=pk)
    scorers = [s for s in request.POST.getlist("scorer") if s in run.suite_version.scorer_names]
    result = disagreements_send_to_review(run=run, actor=request.user, scorers=scorers or None)
    if result.items:
        text = (
            f"{result.items} item{'s' if result.items != 1 else ''} with disagreements: {result.prioritised} moved up "
            f"the review queue, {result.flagged} curated one{'s' if result.flagged != 1 else ''} flagged for curators."
        )
        notice = Notice("success", text)
    else:
        notice = Notice("info", "No disagreement between judges and curated labels (or between judges) in this run.")
    if request.htmx:
        return render(request, "reviewapp/partials/notice.html", {"notice": notice})
    messages.add_message(request, messages.SUCCESS if result.items else messages.INFO, notice.text)
    return redirect("evaluations-run", pk=run.pk)


@login_required
@require_GET
def runs_compare_view(request: AuthedHtmxRequest) -> HttpResponse:
    a, b = request.GET.get("a"), request.GET.get("b")
    if not a or not b:
        raise Http404("Give two runs to compare: ?a=..&b=..")
    run_a, run_b = run_get_pair_for_user(user=request.user, a=a, b=b)
    comparison = runs_compare(a=run_a, b=run_b)
    return render(request, "evaluations/compare.html", {"comparison": comparison, "project": run_a.project})
