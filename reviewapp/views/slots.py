"""The queue page of every kind of leased slot (review, pairwise): what the two pages share.

One leased slot at a time, answered from the keyboard. Submit and skip save, lease the next slot and
render it in the same response (a reviewer holds one lease at a time, so the next one cannot be shown
earlier); the heartbeat renews the lease and stops once it is lost. One page template
(``reviewapp/queue.html``) with the kind's partials (``reviewapp/partials/<kind>_slot.html``);
``views.review`` and ``views.pairwise`` add what their kind shows and records.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django_htmx.http import HttpResponseStopPolling

from reviewapp.errors import AlreadySubmitted, Conflict, ItemRemoved
from reviewapp.models import Project
from reviewapp.views.http import AuthedHtmxRequest, Notice, partial

TEMPLATE = "reviewapp/queue.html"
HEARTBEAT_MAX_SECONDS = 60
MESSAGE_LEVELS = {"success": messages.SUCCESS, "info": messages.INFO, "warning": messages.WARNING}
S = TypeVar("S")


@dataclass(frozen=True)
class QueueKind:
    """One kind of queue page. ``kind`` names its panel (``#<kind>-panel``), partials and URLs (``<kind>-page``)."""

    kind: str
    title: str  # of the page
    noun: str  # what a slot holds: "item", "pair"
    done_by_you: str  # the progress bar's tooltip, after the count
    work: str  # what the reviewer does: "Your answers", "Your choice"
    unsaved: str  # said when a submit was refused: "Your answers were not saved."
    conflict_text: dict[type[Conflict], str]
    keys: str = ""  # the shortcut sheet's keys (a template), when not the review form's
    # A double submit: what to say instead of showing the next slot, with a link (url name, text).
    submitted_hint: tuple[str, str, str] | None = None


def heartbeat_seconds(project: Project) -> int:
    # Renew well before the lease runs out, even on projects with short leases.
    return max(10, min(HEARTBEAT_MAX_SECONDS, project.lease_seconds // 3))


def own_slot(
    queue: QueueKind, get: Callable[..., S], request: AuthedHtmxRequest, project: Project, pk: int
) -> S | None:
    """The posted lease, or None when its slot is gone (the services then say ItemRemoved)."""
    try:
        slot = get(user=request.user, pk=pk)
    except Http404:
        return None
    if slot.project_id != project.pk:  # type: ignore[attr-defined]
        raise Http404(f"No such {queue.noun} in this project.")
    return slot


def removed(queue: QueueKind) -> ItemRemoved:
    return ItemRemoved(queue.conflict_text[ItemRemoved])


def conflict_notice(queue: QueueKind, exc: Conflict, *, unsaved: bool) -> Notice:
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
    queue: QueueKind,
    project: Project,
    slot: Any,
    context: dict[str, Any],
    *,
    notice: Notice | None = None,
    status: int = 200,
) -> HttpResponse:
    """The page (or, for htmx, its panel) showing ``slot``; ``context`` is what the kind's partials show."""
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
        **context,
    }
    return render(request, partial(TEMPLATE, request, "queue-panel"), context, status=status)


def queue_after_post(
    request: AuthedHtmxRequest,
    queue: QueueKind,
    project: Project,
    show_next: Callable[[], HttpResponse],
    *,
    notice: Notice | None,
) -> HttpResponse:
    """After a POST: the next slot in the same response (htmx), or a redirect to it (plain form)."""
    if not request.htmx:
        if notice is not None:
            messages.add_message(request, MESSAGE_LEVELS[notice.level], notice.text)
        return redirect(f"{queue.kind}-page", slug=project.slug)
    return show_next()


def queue_renew(
    request: AuthedHtmxRequest, queue: QueueKind, project: Project, slot: Any, renew: Callable[..., Any]
) -> HttpResponse:
    """The heartbeat: keep the lease while the reviewer works; say so, and stop, once it is lost."""
    try:
        if slot is None:
            raise removed(queue)
        renew(slot, user=request.user)
    except Conflict as exc:
        text = f"{queue.conflict_text.get(type(exc), exc.message)} {queue.work} can no longer be saved."
        context = {"text": text, "project": project, "kind": queue.kind, "noun": queue.noun}
        return HttpResponseStopPolling(render_to_string(f"{TEMPLATE}#lease-lost", context, request=request))
    return HttpResponse(status=204)
