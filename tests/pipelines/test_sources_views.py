"""The Sources page: list, create and edit with rules, pull now, live pulls (htmx polling), failures, access."""

from __future__ import annotations

import pytest

from pipelines.models import Source, SourcePull
from pipelines.sources.pulls import source_pull_execute, source_pull_request
from pipelines.sources.services import source_create
from tests.pipelines.datasets_helpers import session

pytestmark = pytest.mark.django_db

PAGE = "/projects/support/sources/"


def form(**overrides: str) -> dict[str, str]:
    data = {
        "name": "prod traces",
        "kind": "mlflow_traces",
        "interval_seconds": "120",
        "enabled": "on",
        "setting_experiment": "support-bot",
        "rule_kind_0": "thumbs_down",
        "rule_kind_1": "score_below",
        "rule_param_1": "groundedness",
        "rule_value_1": "0.5",
        "rule_kind_2": "percent",
        "rule_param_2": "5",
        "rule_hour_2": "100",
    }
    data.update(overrides)
    return data


def test_a_curator_adds_a_source_with_rules_from_the_page(project, curator) -> None:
    client = session(curator)
    page = client.get(PAGE)
    assert page.status_code == 200 and b"data-source-form" in page.content and b"No sources yet" in page.content

    response = client.post(f"{PAGE}new/", form())
    assert response.status_code == 302
    source = Source.objects.get()
    assert (source.kind, source.interval_seconds, source.enabled, source.settings["experiment"]) == (
        "mlflow_traces",
        120,
        True,
        "support-bot",
    )
    assert [r["label"] for r in source.rules] == ["thumbs_down", "score_below:groundedness", "percent:5"]
    assert source.rules[2]["max_per_hour"] == 100 and source.rules[1]["threshold"] == 0.5

    listed = client.get(PAGE).content.decode()
    assert f'data-source="{source.pk}"' in listed and "never pulled" in listed and "Pull now" in listed


def test_a_bad_form_says_what_is_wrong_and_keeps_what_was_typed(project, curator) -> None:
    response = session(curator).post(f"{PAGE}new/", form(setting_experiment="", rule_param_2="500", name="keep me"))
    assert response.status_code == 400
    text = response.content.decode()
    assert "settings.experiment" in text and "rules[2].percent" in text
    assert 'value="keep me"' in text and 'value="500"' in text
    assert not Source.objects.exists()


def test_edit_prefills_the_form_and_saves(project, curator) -> None:
    source = source_create(
        project=project,
        values={
            "name": "log",
            "kind": "delta_table",
            "settings": {"uri": "/data/log"},
            "column_mapping": {"request": "q", "response": "a"},
            "rules": [{"kind": "error", "label": "errors"}],
        },
        actor=curator,
    )
    client = session(curator)
    page = client.get(f"{PAGE}?edit={source.pk}").content.decode()
    assert "Edit source log" in page and 'value="/data/log"' in page and 'value="errors"' in page
    assert 'name="map_request" value="q"' in page

    saved = client.post(
        f"{PAGE}{source.pk}/edit/",
        {
            "name": "log",
            "interval_seconds": "600",
            "setting_uri": "/data/log2",
            "map_request": "q",
            "map_response": "a",
            "rule_kind_0": "match",
            "rule_param_0": "env",
            "rule_value_0": "prod",
        },
    )
    assert saved.status_code == 302
    source.refresh_from_db()
    assert (source.settings["uri"], source.interval_seconds, source.enabled) == ("/data/log2", 600, False)
    assert source.rules == [{"kind": "match", "key": "env", "value": "prod", "label": "match:env"}]


def test_pull_now_shows_progress_polls_while_active_and_shows_a_failure(project, curator) -> None:
    source = source_create(
        project=project,
        values={"name": "gone", "kind": "mlflow_traces", "settings": {"experiment": "no-such-experiment"}},
        actor=curator,
    )
    client = session(curator)
    assert client.post(f"{PAGE}{source.pk}/pull/").status_code == 302
    pull = SourcePull.objects.get()
    live = client.get(PAGE, headers={"HX-Request": "true"})
    assert live.status_code == 200 and f'data-pull="{pull.pk}" data-status="queued"'.encode() in live.content
    assert b'hx-trigger="every 2s"' in live.content

    source_pull_execute(pull_id=pull.pk)  # MLflow has no such experiment: the pull fails, and says why
    done = client.get(PAGE, headers={"HX-Request": "true"})
    assert done.status_code == 286  # htmx: stop polling
    assert b'data-status="failed"' in done.content and b"no-such-experiment" in done.content
    assert b"data-source-error" in client.get(PAGE).content


def test_rest_sources_have_no_pull_button_and_delete_keeps_items(project, curator) -> None:
    rest = source_create(project=project, values={"name": "web", "kind": "rest"}, actor=curator)
    client = session(curator)
    page = client.get(PAGE).content.decode()
    assert "pushed over REST" in page and f'data-pull-now="{rest.pk}"' not in page
    assert client.post(f"{PAGE}{rest.pk}/delete/").status_code == 302
    assert not Source.objects.exists()


def test_reviewers_and_outsiders_cannot_see_or_change_sources(project, curator, reviewer, outsider) -> None:
    source = source_create(project=project, values={"name": "web", "kind": "rest"}, actor=curator)
    pull_source = source_create(
        project=project, values={"name": "t", "kind": "mlflow_traces", "settings": {"experiment": "e"}}, actor=curator
    )
    for user, expected in ((reviewer, 403), (outsider, 404)):
        client = session(user)
        assert client.get(PAGE).status_code == expected
        assert client.post(f"{PAGE}new/", form(name="x")).status_code == expected
        assert client.post(f"{PAGE}{source.pk}/edit/", form()).status_code == expected
        assert client.post(f"{PAGE}{source.pk}/delete/").status_code == expected
        assert client.post(f"{PAGE}{pull_source.pk}/pull/").status_code == expected
    assert Source.objects.count() == 2 and not SourcePull.objects.exists()
    assert source_pull_request(source=pull_source, actor=curator)  # still pullable by a curator


def test_my_projects_links_the_sources_page_for_those_who_may_use_it(project, curator, engineer, reviewer) -> None:
    for user, shown in ((curator, True), (engineer, True), (reviewer, False)):
        assert ("data-sources-link" in session(user).get("/").content.decode()) is shown, user
