"""The curators' adjudication queue, and the deciding page: every review side by side, the final
answer per question prefilled with the majority/median, keyboard-first like the review page.

After a decision the same response shows the next open item (htmx, with its URL pushed), so a
curator works through the queue without page loads; a plain form POST redirects to it instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import push_url

from reviewapp.errors import Conflict, NotAllowed, ValidationFailed
from reviewapp.forms import QuestionField, ReviewAnswersForm, raw_from_answer
from reviewapp.models import Adjudication, Project, Question
from reviewapp.permissions import Capability, role_allows
from reviewapp.selectors.curation import (
    AdjudicationDetail,
    ComparisonRow,
    adjudication_counts,
    adjudication_detail,
    adjudication_get_for_user,
    adjudication_list,
    adjudication_next,
)
from reviewapp.selectors.projects import project_get_for_user, questions_for_project
from reviewapp.services.curation import SELF_ADJUDICATION_REFUSED, adjudication_decide, curator_reviewed_item
from reviewapp.services.projects import project_set_self_adjudication
from reviewapp.views.http import AuthedHtmxRequest, Notice, partial

TEMPLATE = "reviewapp/adjudicate.html"
PAGE_SIZE = 50
Kind = Question.Kind
PICK_KINDS = {Kind.TEXT, Kind.EXPECTED_RESPONSE, Kind.EXPECTED_FACTS}


@dataclass
class Pick:
    """A reviewer's text answer the curator can copy into the decision with one click."""

    name: str
    value: str


@dataclass
class DecisionField:
    field: QuestionField
    row: ComparisonRow | None
    picks: list[Pick] = field(default_factory=list)


@login_required
@require_GET
def adjudication_queue(request: AuthedHtmxRequest, slug: str) -> HttpResponse:
    project = project_get_for_user(user=request.user, slug=slug, capability=Capability.CURATE)
    status = request.GET.get("status", Adjudication.Status.OPEN)
    if status not in Adjudication.Status.values:
        status = Adjudication.Status.OPEN
    page = Paginator(adjudication_list(project=project, status=status, user=request.user), PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    titles = {q.key: q.title for q in questions_for_project(project=project)}
    rows = [
        (
            adjudication,
            [(titles.get(d.get("key", ""), d.get("key", "")), d.get("reason", "")) for d in adjudication.disagreements],
        )
        for adjudication in page
    ]
    context = {
        "project": project,
        "page": page,
        "rows": rows,
        "status": status,
        "counts": adjudication_counts(project=project),
        "first": adjudication_next(project=project, user=request.user),
        "may_manage": role_allows(project.user_role, Capability.MANAGE),
    }
    return render(request, "reviewapp/adjudication_queue.html", context)


@login_required
@require_POST
def adjudication_settings(request: AuthedHtmxRequest, slug: str) -> HttpResponse:
    """Project admins: allow or forbid self-adjudication (curators deciding items they reviewed)."""
    project = project_get_for_user(user=request.user, slug=slug, capability=Capability.MANAGE)
    allowed = request.POST.get("self_adjudication") == "on"
    project_set_self_adjudication(project=project, allowed=allowed, actor=request.user)
    messages.success(
        request,
        "Curators may now decide items they reviewed (marked self-adjudicated)."
        if allowed
        else "Items a curator reviewed are now decided by another curator.",
    )
    return redirect("adjudication-queue", project.slug)


@login_required
@require_http_methods(["GET", "POST"])
def adjudication_item(request: AuthedHtmxRequest, slug: str, item_id: int) -> HttpResponse:
    adjudication = adjudication_get_for_user(user=request.user, slug=slug, item_id=item_id)
    project = adjudication.project
    if request.method == "GET":
        return _render_panel(request, project, adjudication)
    questions = questions_for_project(project=project)
    form = ReviewAnswersForm(questions=questions, item=adjudication.item, data=request.POST)
    try:
        adjudication_decide(
            item=adjudication.item,
            user=request.user,
            expected_version=_int(request.POST.get("version")),
            answers=form.answers,
            expected_response=request.POST.get("expected_response"),
            expected_facts=request.POST.get("expected_facts"),
            rationale=form.comment,
        )
    except NotAllowed as exc:
        # htmx swaps only 409/422 panels (base.html); a plain POST gets the honest 403.
        status = 422 if request.htmx else 403
        return _render_panel(
            request, project, adjudication, form=form, notice=Notice("error", exc.message), status=status
        )
    except ValidationFailed as exc:
        form.add_errors(exc.errors)
        notice = Notice("error", exc.message)
        return _render_panel(request, project, adjudication, form=form, notice=notice, status=422, keep_post=True)
    except Conflict as exc:
        try:  # fresh reviews and version; the curator's answers stay in the form
            fresh: Adjudication | None = adjudication_get_for_user(user=request.user, slug=slug, item_id=item_id)
        except Http404:
            fresh, form = None, None
        text = f"{exc.message} Your answers are kept below: save again to replace it." if fresh else exc.message
        notice = Notice("warning", text)
        return _render_panel(request, project, fresh, form=form, notice=notice, status=409, keep_post=True)
    text = f"Saved your decision on “{_short(adjudication.item.request_text)}”."
    link = reverse("adjudication-item", args=[project.slug, adjudication.item_id])
    following = adjudication_next(project=project, after=adjudication, user=request.user)
    next_url = (
        reverse("adjudication-item", args=[project.slug, following.item_id])
        if following is not None
        else reverse("adjudication-queue", args=[project.slug])
    )
    if not request.htmx:
        messages.success(request, text)
        return redirect(next_url)
    response = _render_panel(request, project, following, notice=Notice("success", text, link, "Change it"))
    return push_url(response, next_url)


def _render_panel(
    request: AuthedHtmxRequest,
    project: Project,
    adjudication: Adjudication | None,
    *,
    form: ReviewAnswersForm | None = None,
    notice: Notice | None = None,
    status: int = 200,
    keep_post: bool = False,
) -> HttpResponse:
    """The deciding panel of ``adjudication`` (the empty queue when None); ``keep_post`` re-shows what was posted."""
    context: dict[str, Any] = {
        "project": project,
        "adjudication": adjudication,
        "notice": notice,
        "counts": adjudication_counts(project=project),
    }
    if adjudication is not None:
        detail = adjudication_detail(adjudication=adjudication)
        label = detail.label
        if form is None:
            form = ReviewAnswersForm(
                questions=detail.questions,
                item=detail.item,
                answers=detail.prefill,
                comment=label.rationale if label is not None else "",
            )
        kinds = {q.kind for q in detail.questions}
        own = curator_reviewed_item(item=detail.item, user=request.user)
        if own and not project.self_adjudication and notice is None:
            context["notice"] = Notice("warning", SELF_ADJUDICATION_REFUSED)
        later = adjudication_next(project=project, after=adjudication, user=request.user)
        context.update(
            later_url=reverse("adjudication-item", args=[project.slug, later.item_id])
            if later is not None
            else reverse("adjudication-queue", args=[project.slug]),
            detail=detail,
            item=detail.item,
            reviewed_by_you=own,
            decidable=not own or project.self_adjudication,
            form=form,
            decision_fields=_decision_fields(form, detail),
            chunk_rows=_chunk_rows(form, detail),
            loose_response=Kind.EXPECTED_RESPONSE not in kinds,
            loose_facts=Kind.EXPECTED_FACTS not in kinds,
            loose_response_text=_loose(
                request, keep_post, "expected_response", label.expected_response if label else ""
            ),
            loose_facts_text=_loose(
                request, keep_post, "expected_facts", "\n".join(label.expected_facts) if label else ""
            ),
        )
    return render(request, partial(TEMPLATE, request, "adjudication-panel"), context, status=status)


def _decision_fields(form: ReviewAnswersForm, detail: AdjudicationDetail) -> list[DecisionField]:
    """The form's questions, each with its row of the comparison and how many reviewers chose each option."""
    rows = detail.rows_by_key
    out = []
    for f in form.fields:
        row = rows.get(f.key)
        cells = [c for c in row.cells if c.asked] if row is not None else []
        for option in f.options:
            voters = [
                c.review.reviewer.get_username()
                for c in cells
                if option.value in _as_list(raw_from_answer(f.question, c.value))
            ]
            option.votes = len(voters)  # type: ignore[attr-defined]
            option.voters = ", ".join(voters)  # type: ignore[attr-defined]
        picks = []
        if f.kind in PICK_KINDS:
            seen: set[str] = set()
            for c in cells:
                text = raw_from_answer(f.question, c.value)
                if isinstance(text, str) and text.strip() and text not in seen:
                    seen.add(text)
                    picks.append(Pick(name=c.review.reviewer.get_username(), value=text))
        out.append(DecisionField(field=f, row=row, picks=picks))
    return out


def _chunk_rows(form: ReviewAnswersForm, detail: AdjudicationDetail) -> list[tuple[Any, list[tuple[str, Any]], bool]]:
    """Per retrieved chunk: each reviewer's relevance rating, and whether they disagree on it."""
    question = next((q for q in detail.questions if q.kind == Kind.CONTEXT_RELEVANCE), None)
    row = detail.rows_by_key.get(question.key) if question is not None else None
    out = []
    for chunk in form.chunks:
        ratings: list[tuple[str, Any]] = []
        if row is not None:
            for cell in row.cells:
                values = cell.value if isinstance(cell.value, list) else []
                ratings.append(
                    (cell.review.reviewer.get_username(), values[chunk.index] if chunk.index < len(values) else None)
                )
        given = [r for _, r in ratings if isinstance(r, int)]
        disagree = (
            bool(ratings)
            and question is not None
            and (len(given) not in (0, len(ratings)) or (bool(given) and max(given) - min(given) > question.max_spread))
        )
        for option in chunk.relevance:
            option.votes = sum(1 for _, r in ratings if str(r) == option.value)  # type: ignore[attr-defined]
        out.append((chunk, ratings, disagree))
    return out


def _as_list(raw: Any) -> list[str]:
    if raw is None:
        return []
    return [str(v) for v in raw] if isinstance(raw, list) else [str(raw)]


def _loose(request: AuthedHtmxRequest, keep_post: bool, name: str, default: str) -> str:
    value = request.POST.get(name) if keep_post else None
    return default if value is None else value


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
