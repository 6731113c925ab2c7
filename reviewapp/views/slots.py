"""The queue page of every kind of leased slot (review, pairwise): what the two pages share.

One leased slot at a time, answered from the keyboard. Submit and skip save, lease the next slot and
render it in the same response (a reviewer holds one lease at a time, so the next one cannot be shown
earlier); the heartbeat renews the lease and stops once it is lost. One page template
(``reviewapp/queue.html``) with the kind's partials (``reviewapp/partials/<kind>_slot.html``). A
``QueueKind`` says what differs per kind; the page, skip and heartbeat views here serve every kind,
and ``views.review`` and ``views.pairwise`` keep only what their kind shows and records.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import URLPattern, path, reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from reviewapp.errors import AlreadySubmitted, Conflict, ItemRemoved
from reviewapp.models import Project
from reviewapp.models.slots import LeasedSlot
from reviewapp.permissions import Capability
from reviewapp.selectors.projects import project_get_for_user
from reviewapp.services.slots import SlotKind, slot_renew, slot_skip
from reviewapp.views.http import AuthedHtmxRequest, Notice, partial

TEMPLATE = "reviewapp/queue.html"
HEARTBEAT_MAX_SECONDS = 60
MESSAGE_LEVELS = {"success": messages.SUCCESS, "info": messages.INFO, "warning": messages.WARNING}
S = TypeVar("S", bound=LeasedSlot)


@dataclass(frozen=True)
class QueueKind(Generic[S]):
    """One kind of queue page: ``kind`` names its panel (``#<kind>-panel``), partials and URLs (``<kind>-page``)."""

    kind: str
    title: str  # of the page
    noun: str  # what a slot holds: "item", "pair"
    done_by_you: str  # the progress bar's tooltip, after the count
    work: str  # what the reviewer does: "Your answers", "Your choice"
    unsaved: str  # said when a submit was refused: "Your answers were not saved."
    conflict_text: dict[type[Conflict], str]
    slots: SlotKind[S]  # the slot engine's kind: renew and skip
    get: Callable[..., S]  # (user=, pk=): a slot the user may act on, Http404 when gone
    next: Callable[..., S | None]  # (project=, user=): the reviewer's lease (renewed), else a new one
    shown: Callable[..., dict[str, Any]]  # (request, project, slot, **kind's own): what the partials show
    skipped: Callable[[S], str]  # the notice after a skip
    keys: str = ""  # the shortcut sheet's keys (a template), when not the review form's
    # A double submit: what to say instead of showing the next slot, with a link (url name, text).
    submitted_hint: tuple[str, str, str] | None = None


def queue_urls(queue: QueueKind[Any], submit: Callable[..., HttpResponse]) -> list[URLPattern]:
    """The kind's page, submit, skip and heartbeat: ``<kind>-page``, ``<kind>-submit``, ``-skip``, ``-renew``."""
    base, extra = f"projects/<slug:slug>/{queue.kind}/", {"queue": queue}  # extra: the shared views' kwargs
    return [
        path(base, queue_page, extra, name=f"{queue.kind}-page"),
        path(f"{base}<int:slot_id>/submit/", submit, name=f"{queue.kind}-submit"),
        path(f"{base}<int:slot_id>/skip/", queue_skip, extra, name=f"{queue.kind}-skip"),
        path(f"{base}<int:slot_id>/renew/", queue_renew, extra, name=f"{queue.kind}-renew"),
    ]


def heartbeat_seconds(project: Project) -> int:
    # Renew well before the lease runs out, even on projects with short leases.
    return max(10, min(HEARTBEAT_MAX_SECONDS, project.lease_seconds // 3))


def queue_project(request: AuthedHtmxRequest, slug: str) -> Project:
    return project_get_for_user(user=request.user, slug=slug, capability=Capability.REVIEW)


def own_slot(queue: QueueKind[S], request: AuthedHtmxRequest, project: Project, pk: int) -> S:
    """The posted lease; ItemRemoved when its slot is gone (or out of reach), Http404 when another project's."""
    try:
        slot = queue.get(user=request.user, pk=pk)
    except Http404:
        raise ItemRemoved(queue.conflict_text[ItemRemoved]) from None
    if slot.project_id != project.pk:  # type: ignore[attr-defined]
        raise Http404(f"No such {queue.noun} in this project.")
    return slot


def conflict_notice(queue: QueueKind[Any], exc: Conflict, *, unsaved: bool) -> Notice:
    # Wording by kind of conflict; one the page has no words for (a stale page's lease) keeps the service's.
    text = queue.conflict_text.get(type(exc), exc.message)
    if isinstance(exc, AlreadySubmitted):
        if queue.submitted_hint is not None:
            hint, url_name, link_text = queue.submitted_hint
            return Notice("warning", f"{text} {hint}", reverse(url_name), link_text)
    elif unsaved:
        text += f" {queue.unsaved}"
    return Notice("warning", f"{text} Here is the next {queue.noun}.")


def queue_render(
    request: AuthedHtmxRequest,
    queue: QueueKind[S],
    project: Project,
    slot: S | None,
    *,
    notice: Notice | None = None,
    status: int = 200,
    **shown: Any,
) -> HttpResponse:
    """The page (or, for htmx, its panel) showing ``slot``; ``shown`` goes to the kind's ``shown``."""
    context = {
        "project": project,
        "slot": slot,
        "kind": queue.kind,
        "title": queue.title,
        "noun": queue.noun,
        "parts": f"reviewapp/partials/{queue.kind}_slot.html",
        "done_by_you": queue.done_by_you,
        "keys": queue.keys,
        "notice": notice,
        "heartbeat_seconds": heartbeat_seconds(project),
        **queue.shown(request, project, slot, **shown),
    }
    return render(request, partial(TEMPLATE, request, "queue-panel"), context, status=status)


def queue_after_post(
    request: AuthedHtmxRequest, queue: QueueKind[Any], project: Project, *, notice: Notice | None, status: int = 200
) -> HttpResponse:
    """After a POST: the next slot in the same response (htmx), or a redirect to it (plain form)."""
    if not request.htmx:
        if notice is not None:
            messages.add_message(request, MESSAGE_LEVELS[notice.level], notice.text)
        return redirect(f"{queue.kind}-page", slug=project.slug)
    slot = queue.next(project=project, user=request.user)
    return queue_render(request, queue, project, slot, notice=notice, status=status)


def queue_refused(
    request: AuthedHtmxRequest, queue: QueueKind[Any], project: Project, exc: Conflict, *, unsaved: bool
) -> HttpResponse:
    """A submit or skip the slot engine refused: say why (409), with the next slot."""
    return queue_after_post(request, queue, project, notice=conflict_notice(queue, exc, unsaved=unsaved), status=409)


@login_required
@require_GET
def queue_page(request: AuthedHtmxRequest, slug: str, queue: QueueKind[Any]) -> HttpResponse:
    """The reviewer's current lease, or the next free slot; 'All done' when none is left."""
    project = queue_project(request, slug)
    return queue_render(request, queue, project, queue.next(project=project, user=request.user))


@login_required
@require_POST
def queue_skip(request: AuthedHtmxRequest, slug: str, slot_id: int, queue: QueueKind[Any]) -> HttpResponse:
    """Give the slot back for good (with an optional reason) and show the next one."""
    project = queue_project(request, slug)
    try:
        slot = own_slot(queue, request, project, slot_id)
        slot_skip(queue.slots, slot=slot, user=request.user, reason=request.POST.get("reason", ""))
    except Conflict as exc:
        return queue_refused(request, queue, project, exc, unsaved=False)
    return queue_after_post(request, queue, project, notice=Notice("info", queue.skipped(slot)))


@login_required
@require_POST
def queue_renew(request: AuthedHtmxRequest, slug: str, slot_id: int, queue: QueueKind[Any]) -> HttpResponse:
    """The heartbeat: keep the lease while the reviewer works; say so, and stop, once it is lost."""
    project = queue_project(request, slug)
    try:
        slot_renew(queue.slots, slot=own_slot(queue, request, project, slot_id), user=request.user)
    except Conflict as exc:
        text = f"{queue.conflict_text.get(type(exc), exc.message)} {queue.work} can no longer be saved."
        context = {"text": text, "project": project, "kind": queue.kind, "noun": queue.noun}
        return HttpResponseStopPolling(render_to_string(f"{TEMPLATE}#lease-lost", context, request=request))
    return HttpResponse(status=204)
