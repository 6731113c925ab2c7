"""The pairwise pages through the Django test client: responses and database together."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from reviewapp.models import AuditEvent, PairwiseSkip, PairwiseSlot, Preference
from reviewapp.services.pairwise import pairwise_next, pairwise_submit, pairwise_tasks_create
from tests.factories import make_items
from tests.reviewapp.test_pairwise_services import CANDIDATE, CHAMPION, make_pairs, sides

HTMX = {"HX-Request": "true"}


@pytest.fixture
def pairs(project):
    make_pairs(project, 3, response_a="**Alpha answer {n}**", response_b="**Beta answer {n}**")
    pairwise_tasks_create(project=project, version_a=CHAMPION, version_b=CANDIDATE)


@pytest.fixture
def rita(client, reviewer):
    client.force_login(reviewer)
    return client


def page_url(project) -> str:
    return reverse("pairwise-page", args=[project.slug])


def lease_of(project, user) -> PairwiseSlot:
    return PairwiseSlot.objects.get(project=project, reviewer=user, submitted_at__isnull=True)


def shown(html: str) -> tuple[str, str]:
    """The response texts on the left and right, as rendered."""
    found = re.findall(r'data-side="(left|right)".*?<strong>(\w+ answer \d+)</strong>', html, re.S)
    assert [side for side, _ in found] == ["left", "right"], found
    return found[0][1], found[1][1]


def post(client, project, slot, action: str, data: dict[str, str], **headers):
    return client.post(reverse(f"pairwise-{action}", args=[project.slug, slot.pk]), data, headers=headers)


# --- the page ----------------------------------------------------------------------------------


def test_the_page_shows_a_blind_pair_and_leases_it(rita, reviewer, project, pairs):
    response = rita.get(page_url(project))
    assert response.status_code == 200
    html = response.content.decode()
    slot = lease_of(project, reviewer)
    left, right = sides(slot)
    assert shown(html) == (
        left.response.strip("*"),
        right.response.strip("*"),
    )
    assert f'<div class="text question" data-request>{slot.task.item_a.request}</div>' in html  # A's, always
    assert CHAMPION not in html and CANDIDATE not in html and "support-bot" not in html  # blind
    assert left.external_id not in html and right.external_id not in html
    assert f'name="token" value="{slot.lease_token}"' in html
    assert 'id="pairwise-panel"' in html and "0</strong> done" in html and "3</strong> left" in html
    assert "Results" not in html  # a reviewer does not see the results link
    # A reload shows the same pair on the same sides.
    assert shown(rita.get(page_url(project)).content.decode()) == shown(html)
    assert PairwiseSlot.objects.filter(reviewer=reviewer).count() == 1


def test_retrieved_context_is_shown_folded(rita, project, pairs):
    html = rita.get(page_url(project)).content.decode()
    assert html.count('<details class="pair-context" data-context>') == 2
    assert "Passwords are reset from Settings." in html


def test_outsiders_get_404_and_take_no_lease(client, outsider, project, pairs):
    client.force_login(outsider)
    assert client.get(page_url(project)).status_code == 404
    assert not PairwiseSlot.objects.filter(reviewer__isnull=False).exists()


def test_the_page_needs_login(client, project):
    response = client.get(page_url(project))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_htmx_gets_only_the_panel(rita, project, pairs):
    html = rita.get(page_url(project), headers=HTMX).content.decode()
    assert html.lstrip().startswith('<section id="pairwise-panel"')
    assert "<html" not in html


def test_no_pairs_and_all_done_are_told_apart(rita, reviewer, project):
    assert "No pairs yet" in rita.get(page_url(project)).content.decode()
    make_pairs(project, 1)
    pairwise_tasks_create(project=project, version_a=CHAMPION, version_b=CANDIDATE)
    lease = pairwise_next(project=project, user=reviewer)
    pairwise_submit(slot_id=lease.pk, user=reviewer, lease_token=lease.lease_token, choice="a")
    html = rita.get(page_url(project)).content.decode()
    assert "All done" in html and "data-all-done" in html


# --- submit ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("choice", "side"), [("a", 0), ("b", 1)])
def test_submit_records_the_side_shown_and_swaps_in_the_next_pair(rita, reviewer, project, pairs, choice, side):
    html = rita.get(page_url(project)).content.decode()
    chosen_text = shown(html)[side]
    slot = lease_of(project, reviewer)
    data = {"choice": choice, "reason": " more complete ", "token": slot.lease_token, "time_on_task_ms": "1500"}
    response = post(rita, project, slot, "submit", data, **HTMX)
    assert response.status_code == 200
    body = response.content.decode()
    assert "Saved your choice." in body and body.lstrip().startswith('<section id="pairwise-panel"')
    assert "1</strong> done" in body and "2</strong> left" in body
    preference = Preference.objects.select_related("winner_item").get(reviewer=reviewer)
    assert preference.winner_item.response.strip("*") == chosen_text
    expected_version = CHAMPION if chosen_text.startswith("Alpha") else CANDIDATE
    assert preference.winner_model_version == expected_version
    assert preference.loser_model_version == ({CHAMPION, CANDIDATE} - {expected_version}).pop()
    assert (preference.reason, preference.time_on_task_ms) == ("more complete", 1500)
    assert lease_of(project, reviewer).task_id != slot.task_id  # the next pair is leased already
    assert AuditEvent.objects.filter(action="pairwise.submit", actor=reviewer).count() == 1


def test_a_plain_form_post_redirects_back(rita, reviewer, project, pairs):
    rita.get(page_url(project))
    slot = lease_of(project, reviewer)
    response = post(rita, project, slot, "submit", {"choice": "tie", "token": slot.lease_token})
    assert response.status_code == 302 and response["Location"] == page_url(project)
    assert Preference.objects.get(reviewer=reviewer).outcome == "tie"


def test_submit_without_a_choice_shows_the_error_and_keeps_the_pair(rita, reviewer, project, pairs):
    html = rita.get(page_url(project)).content.decode()
    slot = lease_of(project, reviewer)
    response = post(rita, project, slot, "submit", {"reason": "hmm", "token": slot.lease_token}, **HTMX)
    assert response.status_code == 422
    body = response.content.decode()
    assert "Pick A, B, tie or both bad." in body
    assert ">hmm</textarea>" in body  # the reason is kept
    assert shown(body) == shown(html)  # same pair, same sides
    assert not Preference.objects.exists()
    assert lease_of(project, reviewer).pk == slot.pk


def test_a_lost_lease_says_so_and_shows_the_next_pair(rita, reviewer, reviewer2, project, pairs):
    rita.get(page_url(project))
    slot = lease_of(project, reviewer)
    token = slot.lease_token
    PairwiseSlot.objects.filter(pk=slot.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert pairwise_next(project=project, user=reviewer2).pk == slot.pk
    response = post(rita, project, slot, "submit", {"choice": "a", "token": token}, **HTMX)
    assert response.status_code == 409
    body = response.content.decode()
    assert "another reviewer has it now" in body and "Your choice was not saved." in body
    assert not Preference.objects.exists()
    assert lease_of(project, reviewer).task_id != slot.task_id


def test_a_double_submit_is_409_and_keeps_the_first(rita, reviewer, project, pairs):
    rita.get(page_url(project))
    slot = lease_of(project, reviewer)
    data = {"choice": "a", "token": slot.lease_token}
    assert post(rita, project, slot, "submit", data, **HTMX).status_code == 200
    response = post(rita, project, slot, "submit", data | {"choice": "b"}, **HTMX)
    assert response.status_code == 409 and "You already judged this pair." in response.content.decode()
    assert list(Preference.objects.values_list("choice", flat=True)) == ["a"]


def test_another_project_slot_is_404(rita, reviewer, project, pairs):
    from tests.factories import ProjectFactory, member

    other = ProjectFactory(slug="other")
    member(other, "reviewer", username="rita")
    rita.get(page_url(project))
    slot = lease_of(project, reviewer)
    response = rita.post(reverse("pairwise-submit", args=[other.slug, slot.pk]), {"choice": "a"})
    assert response.status_code == 404
    assert not Preference.objects.exists()


# --- skip and renew ----------------------------------------------------------------------------


def test_skip_records_it_and_shows_the_next_pair(rita, reviewer, project, pairs):
    rita.get(page_url(project))
    slot = lease_of(project, reviewer)
    response = post(rita, project, slot, "skip", {"reason": "unreadable"}, **HTMX)
    assert response.status_code == 200 and "Skipped that pair." in response.content.decode()
    assert PairwiseSkip.objects.get(reviewer=reviewer).task_id == slot.task_id
    assert lease_of(project, reviewer).task_id != slot.task_id


def test_renew_keeps_the_lease_and_stops_polling_once_it_is_lost(rita, reviewer, reviewer2, project, pairs):
    rita.get(page_url(project))
    slot = lease_of(project, reviewer)
    assert post(rita, project, slot, "renew", {}, **HTMX).status_code == 204
    PairwiseSlot.objects.filter(pk=slot.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    pairwise_next(project=project, user=reviewer2)
    response = post(rita, project, slot, "renew", {}, **HTMX)
    assert response.status_code == 286
    assert "another reviewer has it now" in response.content.decode()


# --- results and the project card --------------------------------------------------------------


def test_results_page_is_for_curators_and_shows_the_table(client, rita, reviewer, curator, project, pairs):
    for _ in range(3):
        lease = pairwise_next(project=project, user=reviewer)
        left, _ = sides(lease)
        choice = "a" if left.model_version == CANDIDATE else "b"  # the candidate always wins
        pairwise_submit(slot_id=lease.pk, user=reviewer, lease_token=lease.lease_token, choice=choice)
    url = reverse("pairwise-results", args=[project.slug])
    assert rita.get(url).status_code == 403
    client.force_login(curator)
    response = client.get(url)
    assert response.status_code == 200
    html = response.content.decode()
    row = re.search(r'<tr data-versions="champion-7\|candidate-8">.*?</tr>', html, re.S).group(0)
    assert re.search(r"data-wins>0<", row) and re.search(r"data-losses>3<", row) and re.search(r"data-n>3<", row)
    assert "<strong>0%</strong>" in row and "(0.00\N{EN DASH}0.56)" in row
    assert "Results" in client.get(page_url(project)).content.decode()  # curators get the link on the page


def test_the_project_card_links_to_pairwise_only_when_there_are_pairs(rita, project):
    make_items(project, 1)
    assert "data-pairwise-link" not in rita.get(reverse("project-list")).content.decode()
    make_pairs(project, 1)
    pairwise_tasks_create(project=project, version_a=CHAMPION, version_b=CANDIDATE)
    html = rita.get(reverse("project-list")).content.decode()
    assert f'href="{page_url(project)}" data-pairwise-link' in html
