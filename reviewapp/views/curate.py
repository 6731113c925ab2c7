"""Curator actions in the browser: create pairwise tasks (with a live count of the pairs), mark and
unmark gold items, send an item back for re-review, and resolve or dismiss reviewers' flags.

Every page needs CURATE (curators and admins; anyone else gets the project's 404/403 like the rest
of the app). The views only read the form and call the services, which validate and audit.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from reviewapp.errors import ValidationFailed
from reviewapp.forms import ReviewAnswersForm
from reviewapp.models import Flag, GoldAnswer, Item, Project
from reviewapp.models.gold import SCORABLE_KINDS
from reviewapp.permissions import Capability
from reviewapp.selectors.gold import gold_answer_get, gold_answer_list
from reviewapp.selectors.items import flag_get, flag_list, item_get_for_user, item_model_version_list
from reviewapp.selectors.pairwise import pairwise_task_count
from reviewapp.selectors.projects import project_get_for_user, questions_for_project
from reviewapp.services.assignments import item_send_back
from reviewapp.services.curation import item_current_reviews
from reviewapp.services.flags import flag_close
from reviewapp.services.gold import gold_answer_delete, gold_answer_set
from reviewapp.services.pairwise import (
    MAX_PREFERENCES_PER_TASK,
    PairingFilter,
    PairingResult,
    pairwise_tasks_create,
    pairwise_tasks_preview,
)
from reviewapp.views.http import AuthedHtmxRequest

PAIRS_TEMPLATE = "reviewapp/pairwise_create.html"


def _curated(request: AuthedHtmxRequest, slug: str) -> Project:
    return project_get_for_user(user=request.user, slug=slug, capability=Capability.CURATE)


def _errors(exc: ValidationFailed) -> dict[str, str]:
    return {e["field"]: e["message"] for e in exc.errors}


# --- pairs ---------------------------------------------------------------------------------------


def _pairing_input(data: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """The form's fields in the services' terms; the errors of fields that are not numbers."""
    errors: dict[str, str] = {}

    def number(name: str, default: int | None) -> int | None:
        raw = (data.get(name) or "").strip()
        if not raw:
            return default
        try:
            return int(raw)
        except ValueError:
            errors[name] = "Give a whole number."
            return default

    values = {
        "version_a": data.get("version_a", ""),
        "version_b": data.get("version_b", ""),
        "source": (data.get("source") or "").strip(),
        "model_name": (data.get("model_name") or "").strip(),
        "preferences_per_task": number("preferences_per_task", 1) or 1,
        "limit": number("limit", None),
    }
    return values, errors


def _preview(project: Project, values: dict[str, Any]) -> tuple[PairingResult | None, dict[str, str]]:
    where = PairingFilter(source=values["source"], model_name=values["model_name"])
    try:
        result = pairwise_tasks_preview(
            project=project,
            version_a=values["version_a"],
            version_b=values["version_b"],
            preferences_per_task=values["preferences_per_task"],
            limit=values["limit"],
            where=where,
        )
    except ValidationFailed as exc:
        return None, _errors(exc)
    return result, {}


def _pairs_context(project: Project, values: dict[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    return {
        "project": project,
        "versions": item_model_version_list(project=project),
        "values": values,
        "errors": errors,
        "max_judges": MAX_PREFERENCES_PER_TASK,
        "task_count": pairwise_task_count(project=project),
    }


@login_required
@require_http_methods(["GET", "POST"])
def pairwise_create(request: AuthedHtmxRequest, slug: str) -> HttpResponse:
    """The form: two versions, a filter, judges per pair and a cap; POST creates the pairs."""
    project = _curated(request, slug)
    if request.method == "POST":
        values, errors = _pairing_input(request.POST)
        if not errors:
            try:
                result = pairwise_tasks_create(project=project, actor=request.user, **values)
            except ValidationFailed as exc:
                errors = _errors(exc)
            else:
                if result.created:
                    messages.success(
                        request,
                        f"Created {result.created} pair{'s' if result.created != 1 else ''} of "
                        f"{values['version_a'].strip()} and {values['version_b'].strip()}.",
                    )
                else:
                    messages.info(request, "No new pairs: every matching item is already paired.")
                return redirect("pairwise-create", slug=project.slug)
        context = _pairs_context(project, values, errors)
        context["preview"], _ = (None, {}) if errors else _preview(project, values)
        return render(request, PAIRS_TEMPLATE, context, status=422)
    versions = item_model_version_list(project=project)
    values = {
        "version_a": versions[0] if versions else "",
        "version_b": versions[1] if len(versions) > 1 else "",
        "source": "",
        "model_name": "",
        "preferences_per_task": 1,
        "limit": None,
    }
    context = _pairs_context(project, values, {})
    context["preview"], context["preview_errors"] = _preview(project, values) if len(versions) > 1 else (None, {})
    return render(request, PAIRS_TEMPLATE, context)


@login_required
@require_GET
def pairwise_create_preview(request: AuthedHtmxRequest, slug: str) -> HttpResponse:
    """How many pairs the form would create now (htmx swaps it in as the form changes)."""
    project = _curated(request, slug)
    values, errors = _pairing_input(request.GET)
    preview, preview_errors = (None, {}) if errors else _preview(project, values)
    context = {"project": project, "preview": preview, "preview_errors": {**errors, **preview_errors}}
    return render(request, f"{PAIRS_TEMPLATE}#preview", context)


# --- the curation page and an item's page ---------------------------------------------------------


@login_required
@require_GET
def curate_page(request: AuthedHtmxRequest, slug: str) -> HttpResponse:
    """Open flags, gold items, and a way to open any item by id."""
    project = _curated(request, slug)
    item_id = (request.GET.get("item") or "").strip()
    if item_id.isdigit():
        return redirect("curate-item", slug=project.slug, item_id=int(item_id))
    return _curate_render(request, project)


def _flags_with_errors(flags: Any, errors: dict[int, dict[str, str]] | None) -> list[Flag]:
    """The flags, each with the errors of its close form (shown under it)."""
    listed = list(flags)
    for flag in listed:
        flag.form_errors = (errors or {}).get(flag.pk, {})  # for the template only
    return listed


def _curate_render(
    request: AuthedHtmxRequest, project: Project, *, flag_errors: dict[int, dict[str, str]] | None = None
) -> HttpResponse:
    show = request.GET.get("flags", "open")
    flags = flag_list(project=project)
    if show != "all":
        # A flag whose close was refused stays in view (closed meanwhile by someone else), with the reason.
        flags = flags.filter(Q(status=Flag.Status.OPEN) | Q(pk__in=list(flag_errors or {})))
    context = {
        "project": project,
        "flags": _flags_with_errors(flags[:200], flag_errors),
        "show": show,
        "golds": list(gold_answer_list(project=project)[:200]),
        "lookup_error": "Give an item id (a number)." if request.GET.get("item") else "",
        "task_count": pairwise_task_count(project=project),
    }
    return render(request, "reviewapp/curate.html", context, status=422 if flag_errors else 200)


def _gold_form(project: Project, item: Item, data: Any = None, answers: Any = None) -> ReviewAnswersForm:
    questions = [q for q in questions_for_project(project=project) if q.kind in SCORABLE_KINDS]
    return ReviewAnswersForm(questions=questions, item=item, data=data, answers=answers)


def _item_render(
    request: AuthedHtmxRequest,
    project: Project,
    item: Item,
    *,
    gold_form: ReviewAnswersForm | None = None,
    send_back_errors: dict[str, str] | None = None,
    reason: str = "",
    flag_errors: dict[int, dict[str, str]] | None = None,
    status: int = 200,
) -> HttpResponse:
    gold: GoldAnswer | None = GoldAnswer.objects.filter(item=item).first()
    context = {
        "project": project,
        "item": item,
        "reviews": item_current_reviews(item),
        "gold": gold,
        "gold_form": gold_form or _gold_form(project, item, answers=gold.answers if gold else None),
        "gold_note": gold.note if gold else "",
        "send_back_errors": send_back_errors or {},
        "reason": reason,
        "flags": _flags_with_errors(flag_list(project=project).filter(item=item), flag_errors),
    }
    return render(request, "reviewapp/curate_item.html", context, status=status)


@login_required
@require_GET
def curate_item(request: AuthedHtmxRequest, slug: str, item_id: int) -> HttpResponse:
    project = _curated(request, slug)
    return _item_render(request, project, item_get_for_user(user=request.user, project=project, pk=item_id))


@login_required
@require_POST
def curate_send_back(request: AuthedHtmxRequest, slug: str, item_id: int) -> HttpResponse:
    project = _curated(request, slug)
    item = item_get_for_user(user=request.user, project=project, pk=item_id)
    reason = request.POST.get("reason", "")
    try:
        result = item_send_back(item=item, actor=request.user, reason=reason, reason_required=True)
    except ValidationFailed as exc:
        return _item_render(request, project, item, send_back_errors=_errors(exc), reason=reason, status=422)
    n = len(result.returned)
    messages.success(request, f"Sent back {n} review{'s' if n != 1 else ''}: another reviewer will review this item.")
    return redirect("curate-item", slug=project.slug, item_id=item.pk)


@login_required
@require_POST
def curate_gold_set(request: AuthedHtmxRequest, slug: str, item_id: int) -> HttpResponse:
    project = _curated(request, slug)
    item = item_get_for_user(user=request.user, project=project, pk=item_id)
    form = _gold_form(project, item, data=request.POST)
    try:
        gold_answer_set(
            project=project, item=item, answers=form.answers, note=request.POST.get("note", ""), actor=request.user
        )
    except ValidationFailed as exc:
        form.add_errors(exc.errors)
        return _item_render(request, project, item, gold_form=form, status=422)
    messages.success(request, "Saved the gold answers: reviewers will meet this item unannounced.")
    return redirect("curate-item", slug=project.slug, item_id=item.pk)


@login_required
@require_POST
def curate_gold_delete(request: AuthedHtmxRequest, slug: str, item_id: int) -> HttpResponse:
    project = _curated(request, slug)
    gold_answer_delete(gold=gold_answer_get(project=project, item_id=item_id), actor=request.user)
    messages.success(request, "This item is an ordinary item again; reviews made while it was gold are kept.")
    return redirect("curate-item", slug=project.slug, item_id=item_id)


@login_required
@require_POST
def curate_flag_close(request: AuthedHtmxRequest, slug: str, flag_id: int) -> HttpResponse:
    project = _curated(request, slug)
    flag = flag_get(project=project, pk=flag_id)
    back_to_item = request.POST.get("back") == "item"
    try:
        flag_close(
            flag=flag,
            actor=request.user,
            status=request.POST.get("status", ""),
            comment=request.POST.get("comment", ""),
        )
    except ValidationFailed as exc:
        errors = {flag.pk: _errors(exc)}
        if back_to_item:
            return _item_render(request, project, flag.item, flag_errors=errors, status=422)
        return _curate_render(request, project, flag_errors=errors)
    messages.success(request, f"Flag {'resolved' if request.POST.get('status') == 'resolved' else 'dismissed'}.")
    if back_to_item:
        return redirect("curate-item", slug=project.slug, item_id=flag.item_id)
    return redirect(reverse("curate-page", args=[project.slug]))
