"""The schema editor: a project's questions, edited as a draft with a live preview of the review form.

The draft travels in the page's one form (``reviewapp/schema_editor.py``): a change of any field
re-renders the preview (htmx, ``#schema-preview``); add, move and remove re-render the editor
(``#schema-page``); Save applies the whole draft through ``services.schema`` (the same path as the
REST API and the ``schema`` command), so an edit after reviews exist starts a new version. Without
JavaScript every button posts the form and the page comes back whole. Everything needs CURATE.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from reviewapp.errors import ValidationFailed
from reviewapp.forms import ReviewAnswersForm
from reviewapp.models import Project, Question
from reviewapp.permissions import Capability
from reviewapp.schema_editor import (
    DraftQuestion,
    draft_add_errors,
    draft_apply_op,
    draft_document,
    draft_from_post,
    draft_from_questions,
    preview_questions,
    sample_item,
)
from reviewapp.selectors.items import item_list
from reviewapp.selectors.projects import project_get_for_user, questions_for_project
from reviewapp.selectors.schema import VersionRow, schema_versions
from reviewapp.services.schema import schema_apply, schema_diff
from reviewapp.views.http import AuthedHtmxRequest, Notice

TEMPLATE = "reviewapp/schema_editor.html"


def _diff_context(versions: list[VersionRow], data: Any) -> dict[str, Any]:
    by_number = {v.version: v for v in versions}
    numbers = sorted(by_number)
    try:
        new = int(data.get("to", numbers[-1]))
        old = int(data.get("from", numbers[-2] if len(numbers) > 1 else numbers[-1]))
    except (TypeError, ValueError):
        new, old = numbers[-1], numbers[max(0, len(numbers) - 2)]
    if old not in by_number or new not in by_number:
        return {"diff": None, "diff_from": old, "diff_to": new}
    return {
        "diff": schema_diff(by_number[old].questions, by_number[new].questions),
        "diff_from": old,
        "diff_to": new,
    }


def _render(
    request: AuthedHtmxRequest,
    project: Project,
    draft: list[DraftQuestion],
    *,
    fragment: str = "",
    notice: Notice | None = None,
    general_errors: list[str] | None = None,
    status: int = 200,
    focus: str = "",
) -> HttpResponse:
    name, _, at = focus.partition(":")
    if at.isdigit() and int(at) < len(draft):
        draft[int(at)].focus = name
    versions = schema_versions(project=project)
    item = item_list(project=project).order_by("pk").first() or sample_item()
    form = ReviewAnswersForm(questions=preview_questions(draft), item=item)
    current = versions[-1] if versions else None
    context = {
        "project": project,
        "draft": draft,
        "count": len(draft),
        "kinds": Question.Kind.choices,
        "assessment_types": Question.AssessmentType.choices,
        "form": form,
        "item": item,
        "versions": list(reversed(versions)),
        "current_has_reviews": bool(current and current.reviews),
        "notice": notice,
        "general_errors": general_errors or [],
        "focus": focus,
        "editor_url": reverse("schema-editor", args=[project.slug]),
        **_diff_context(versions, request.GET),
    }
    template = f"{TEMPLATE}#{fragment}" if fragment and request.htmx else TEMPLATE
    return render(request, template, context, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def schema_editor(request: AuthedHtmxRequest, slug: str) -> HttpResponse:
    project = project_get_for_user(user=request.user, slug=slug, capability=Capability.CURATE)
    saved = questions_for_project(project=project)
    if request.method == "GET":
        return _render(request, project, draft_from_questions(saved))
    draft = draft_from_post(request.POST, saved_keys={q.key for q in saved})
    op = request.POST.get("op", "preview")
    if op == "save":
        try:
            result = schema_apply(project=project, raw=draft_document(draft), actor=request.user)
        except ValidationFailed as exc:
            general = draft_add_errors(draft, exc.errors)
            return _render(
                request,
                project,
                draft,
                fragment="schema-page",
                notice=Notice("error", f"{exc.message} Nothing was saved; fix the questions marked below."),
                general_errors=general,
                status=422,
            )
        if result.unchanged:
            text = "No changes to save."
        elif result.new_version:
            text = (
                f"Saved as schema version {result.version_after}: reviews of version {result.version_before} "
                "keep the questions they answered."
            )
        else:
            text = f"Saved (schema version {result.version_after})."
        if not request.htmx:
            messages.success(request, text)
            return redirect("schema-editor", slug=project.slug)
        draft = draft_from_questions(questions_for_project(project=project))
        return _render(request, project, draft, fragment="schema-page", notice=Notice("success", text))
    if op == "preview":
        return _render(request, project, draft, fragment="schema-preview")
    draft = draft_apply_op(draft, op, request.POST.get("add_kind", ""))
    return _render(request, project, draft, fragment="schema-page", focus=_focus_after(op, len(draft)))


def _focus_after(op: str, count: int) -> str:
    """Where the keyboard goes after a structural change: the moved question's same button, the new
    question's title, or the question that took a removed one's place."""
    name, _, arg = op.partition(":")
    if name == "add":
        return f"title:{count - 1}"
    try:
        i = int(arg)
    except ValueError:
        return ""
    if name == "up":
        return f"up:{max(i - 1, 0)}" if i > 1 else f"down:{max(i - 1, 0)}"
    if name == "down":
        return f"down:{i + 1}" if i + 2 < count else f"up:{min(i + 1, count - 1)}"
    if name == "remove":
        return f"remove:{min(i, count - 1)}" if count else "add"
    if name == "refresh":
        return f"kind:{i}"
    return ""


@login_required
@require_GET
def schema_version_diff(request: AuthedHtmxRequest, slug: str) -> HttpResponse:
    """Compare two versions (``?from=&to=``): the diff fragment for htmx, the editor page otherwise."""
    project = project_get_for_user(user=request.user, slug=slug, capability=Capability.CURATE)
    draft = draft_from_questions(questions_for_project(project=project))
    return _render(request, project, draft, fragment="schema-diff")
