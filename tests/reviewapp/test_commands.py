"""Management commands: ingest from files, and API tokens for scripts."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from reviewapp.models import ApiToken, Assignment, AuditEvent, Item
from tests.factories import item_row

CHAT = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "How do I export?"}]}
CONTEXT = [{"doc_uri": "docs/export.md", "content": "Export from Settings → Data."}]


def run(*args: Any) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


# --- ingest ------------------------------------------------------------------------------------


def test_ingest_jsonl_then_rerun_updates_without_duplicates(project, tmp_path):
    rows = [item_row(1, request=CHAT, retrieved_context=CONTEXT), item_row(2), item_row(3)]
    path = write_jsonl(tmp_path / "items.jsonl", rows)
    out, err = run("ingest", str(path), "--project", "support", "--batch-size", "2")
    assert out == "support: 3 items created, 0 updated from items.jsonl.\n"
    assert "3/3" in err  # the progress bar goes to stderr
    item = Item.objects.get(external_id="ext-1")
    assert item.request == CHAT and item.retrieved_context == CONTEXT and item.request_text == "How do I export?"
    assert Assignment.objects.filter(project=project).count() == 3

    write_jsonl(path, [item_row(1, request=CHAT, retrieved_context=CONTEXT, response="New."), item_row(2), item_row(3)])
    out, _ = run("ingest", str(path), "--project", "support")
    assert out == "support: 0 items created, 3 updated from items.jsonl.\n"
    assert Item.objects.filter(project=project).count() == 3
    assert Assignment.objects.filter(project=project).count() == 3
    assert Item.objects.get(external_id="ext-1").response == "New."


def test_ingest_csv_decodes_json_columns(project, tmp_path):
    path = tmp_path / "items.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["external_id", "request", "response", "retrieved_context", "metadata", "priority", "source"])
        writer.writerow(
            ["c1", json.dumps(CHAT), "Go to *Settings*.\nThen **Data**.", json.dumps(CONTEXT), '{"a": 1}', "3", ""]
        )
        writer.writerow(["c2", "Plain question?", "Plain answer.", "", "", "", "csv"])
    out, _ = run("ingest", str(path), "--project", "support")
    assert out == "support: 2 items created, 0 updated from items.csv.\n"
    chat = Item.objects.get(external_id="c1")
    assert chat.request == CHAT and chat.retrieved_context == CONTEXT
    assert chat.response == "Go to *Settings*.\nThen **Data**."
    assert chat.metadata == {"a": 1} and chat.priority == 3 and chat.source == ""
    plain = Item.objects.get(external_id="c2")
    assert plain.request == "Plain question?" and plain.retrieved_context == [] and plain.source == "csv"


def test_ingest_parquet_maps_nested_columns(project, tmp_path):
    table = pa.Table.from_pylist(
        [
            {
                "request_id": "p1",
                "request": CHAT,
                "response": "A",
                "retrieved_context": CONTEXT,
                "metadata": {"k": "v"},
            },
            {"request_id": "p2", "request": CHAT, "response": "B", "retrieved_context": [], "metadata": None},
        ]
    )
    path = tmp_path / "items.parquet"
    pq.write_table(table, path)
    out, _ = run("ingest", str(path), "--project", "support")
    assert out == "support: 2 items created, 0 updated from items.parquet.\n"
    first = Item.objects.get(external_id="p1")  # request_id is Agent Evaluation's name for the id
    assert first.request == CHAT and first.retrieved_context == CONTEXT and first.metadata == {"k": "v"}
    assert Item.objects.get(external_id="p2").metadata == {}
    out, _ = run("ingest", str(path), "--project", "support", "--format", "parquet")
    assert out == "support: 0 items created, 2 updated from items.parquet.\n"
    assert Item.objects.count() == 2


def test_a_bad_jsonl_file_reports_every_row_and_writes_nothing(project, tmp_path):
    path = write_jsonl(
        tmp_path / "bad.jsonl",
        [
            item_row(1),
            item_row(2, retrieved_context=[{"content": 5}]),
            item_row(1),  # same external_id as line 1, in another batch
            '{"request": "cut off',
            item_row(5, request={"messages": [{"role": "system", "content": "no user turn"}]}),
        ],
    )
    with pytest.raises(CommandError) as exc:
        run("ingest", str(path), "--project", "support", "--batch-size", "2")
    report = str(exc.value).splitlines()
    assert report[0] == "bad.jsonl: 4 problem(s) in 5 rows; nothing was written."
    assert report[1] == "  line 2: retrieved_context[0].content: Expected `str`, got `int`"
    assert report[2] == "  line 3: external_id: Duplicate of line 1 (same external_id)."
    assert report[3].startswith("  line 4: (row): Invalid JSON: ")
    assert report[4] == "  line 5: request.messages: A chat request needs at least one user message."
    assert Item.objects.count() == 0
    assert AuditEvent.objects.filter(action="items.ingest").count() == 0


def test_a_bad_csv_names_the_line_and_column(project, tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text('external_id,request,metadata\nok,Fine?,\nbad,Broken?,"{oops"\nshort\n')
    with pytest.raises(CommandError) as exc:
        run("ingest", str(path), "--project", "support")
    lines = str(exc.value).splitlines()
    assert lines[1].startswith("  line 3: metadata: Invalid JSON: ")
    assert lines[2] == "  line 4: (row): Expected 3 cells, found 1."
    unknown = tmp_path / "unknown.csv"
    unknown.write_text("external_id,request,colour\nx,Hi?,red\n")
    with pytest.raises(CommandError, match=r"line 1: colour: Unknown column"):
        run("ingest", str(unknown), "--project", "support")
    assert Item.objects.count() == 0


def test_a_bad_parquet_row_is_reported_by_row_index(project, tmp_path):
    path = tmp_path / "bad.parquet"
    pq.write_table(
        pa.Table.from_pylist([{"external_id": "a", "request": "Hi?"}, {"external_id": "b", "request": None}]), path
    )
    with pytest.raises(CommandError) as exc:
        run("ingest", str(path), "--project", "support")
    assert "  row 1: (row): Object missing required field `request`" in str(exc.value)
    assert Item.objects.count() == 0


def test_ingest_refuses_unknown_projects_formats_and_batch_sizes(project, tmp_path):
    path = write_jsonl(tmp_path / "items.txt", [item_row(1)])
    with pytest.raises(CommandError, match="No project with slug 'nope'"):
        run("ingest", str(path), "--project", "nope")
    with pytest.raises(CommandError, match=r"Cannot tell the format of 'items\.txt'"):
        run("ingest", str(path), "--project", "support")
    with pytest.raises(CommandError, match="--batch-size must be from 1 to"):
        run("ingest", str(path), "--project", "support", "--format", "jsonl", "--batch-size", "0")
    out, _ = run("ingest", str(path), "--project", "support", "--format", "jsonl")
    assert out.startswith("support: 1 items created")


# --- tokens --------------------------------------------------------------------------------------


def test_create_api_token_prints_only_a_working_token(project, engineer):
    out, err = run("create_api_token", "--user", "eddie", "--scopes", "ingest,export", "--project", "support")
    raw = out.strip()
    assert out == f"{raw}\n" and raw.startswith("rd_")
    token = ApiToken.objects.get()
    assert token.scopes == ["export", "ingest"] and token.project == project and token.name == "cli"
    assert token.prefix in err and raw not in err
    client = Client(headers={"authorization": f"Bearer {raw}"})
    response = client.post("/api/v1/projects/support/items/", [item_row(1)], "application/json")
    assert response.status_code == 201


def test_create_api_token_refuses_bad_input(project, engineer, outsider):
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        run("create_api_token", "--user", "nobody", "--scopes", "ingest")
    with pytest.raises(CommandError, match="scopes: Unknown scope"):
        run("create_api_token", "--user", "eddie", "--scopes", "ingest,admin")
    with pytest.raises(CommandError, match="not a member"):
        run("create_api_token", "--user", "otto", "--scopes", "ingest", "--project", "support")
    assert ApiToken.objects.count() == 0


def test_revoke_api_token_by_prefix_or_whole_token(project, engineer):
    raw = run("create_api_token", "--user", "eddie", "--scopes", "review")[0].strip()
    token = ApiToken.objects.get()
    out, _ = run("revoke_api_token", raw)  # the whole token works as well as the prefix
    assert out == f"Revoked token 'cli' ({token.prefix}) of eddie.\n"
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert Client(headers={"authorization": f"Bearer {raw}"}).get("/api/v1/projects/").status_code == 401
    assert "already revoked" in run("revoke_api_token", token.prefix)[0]
    with pytest.raises(CommandError, match="No API token with prefix 'abc'"):
        run("revoke_api_token", "abc")


# --- the real command line -----------------------------------------------------------------------


def _database_url() -> str:
    db = settings.DATABASES["default"]
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def _manage(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": _database_url()}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_the_command_line_contract(project, engineer, tmp_path):
    created = _manage("create_api_token", "--user", "eddie", "--scopes", "ingest")
    assert created.returncode == 0, created.stderr
    assert created.stdout.count("\n") == 1 and created.stdout.startswith("rd_")  # TOKEN=$(...) captures it
    client = Client(headers={"authorization": f"Bearer {created.stdout.strip()}"})
    assert client.get("/api/v1/projects/").status_code == 200

    bad = write_jsonl(tmp_path / "bad.jsonl", [item_row(1), {"response": "no request"}])
    failed = _manage("ingest", str(bad), "--project", "support")
    assert failed.returncode == 1
    assert "line 2: (row): Object missing required field `request`" in failed.stderr
    assert failed.stdout == ""
    assert Item.objects.count() == 0
