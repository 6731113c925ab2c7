"""Each role finds the pipelines pages it may use from My projects, and only those."""

from __future__ import annotations

import pytest
from django.test import Client

LINKS = ("data-datasets-link", "data-deliveries-link", "data-models-link", "data-promotions-link")


def page_for(user) -> str:  # type: ignore[no-untyped-def]
    client = Client()
    client.force_login(user)
    response = client.get("/")
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.parametrize(
    ("persona", "expected"),
    [
        ("reviewer", set()),
        ("curator", {"data-datasets-link", "data-deliveries-link"}),
        ("engineer", set(LINKS)),
    ],
)
def test_project_card_links_follow_the_role(request, project, persona, expected) -> None:  # type: ignore[no-untyped-def]
    html = page_for(request.getfixturevalue(persona))
    assert {link for link in LINKS if link in html} == expected


def test_every_linked_page_opens_for_the_roles_that_see_the_link(project, curator, engineer) -> None:  # type: ignore[no-untyped-def]
    for user, paths in (
        (curator, ["datasets", "deliveries"]),
        (engineer, ["datasets", "deliveries", "models", "promotions"]),
    ):
        client = Client()
        client.force_login(user)
        for path in paths:
            assert client.get(f"/projects/{project.slug}/{path}/").status_code == 200, (user, path)
