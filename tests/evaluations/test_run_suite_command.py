"""``manage.py run_suite``: start a run from the command line, follow it, report."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from evaluations.models import Run
from evaluations.services.suites import suite_create, suite_version_create
from tests.evaluations.conftest import ingest, rag_row


@pytest.fixture
def suite(project):  # type: ignore[no-untyped-def]
    ingest(project, [rag_row(n, model_version=str(1 + n % 2)) for n in range(6)])
    suite = suite_create(project=project, name="Core", scorers=["pii"], actor=None)
    suite_version_create(suite=suite, scorers=["pii", "latency"], actor=None)
    return suite


def test_inline_run_of_the_latest_version_with_a_dataset(suite) -> None:
    out = StringIO()
    call_command(
        "run_suite", "Core", "--project", "support", "--dataset", "model_version=2,limit=2", "--inline", stdout=out
    )
    run = Run.objects.get()
    assert run.status == Run.Status.SUCCEEDED and run.suite_version.number == 2
    assert run.dataset == {"model_version": "2", "limit": 2} and run.rows_done == 2
    text = out.getvalue()
    assert f"Run {run.pk}: Core v2 over 2 items in 1 chunks." in text and "succeeded" in text
    assert "latency" in text and "mean  800.000" in text


def test_version_id_shortcut_and_target(suite) -> None:
    call_command(
        "run_suite",
        str(suite.pk),
        "--project",
        "support",
        "--version",
        "1",
        "--model-version",
        "1",
        "--target",
        "stored",
        "--inline",
        stdout=StringIO(),
    )
    run = Run.objects.get()
    assert run.suite_version.number == 1 and run.dataset == {"model_version": "1"} and run.items_total == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Nope", "--project", "support"], "No suite 'Nope' in support (suites: Core)"),
        (["Core", "--project", "nope"], "No project 'nope'"),
        (["Core", "--project", "support", "--version", "7"], "no version 7"),
        (["Core", "--project", "support", "--dataset", "colour=red"], "dataset.colour"),
        (["Core", "--project", "support", "--target", "somewhere"], "use stored, models:/NAME/VERSION"),
        (["Core", "--project", "support", "--target", "models:/x"], "target.model_uri"),
    ],
)
def test_bad_arguments_are_clear_errors(suite, args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call_command("run_suite", *args, stdout=StringIO())
    assert not Run.objects.exists()


def test_a_failed_run_exits_non_zero(project) -> None:
    ingest(project, [rag_row(n, metadata={"explode": True}) for n in range(3)])
    suite_create(project=project, name="Bad", scorers=["test_explode"], actor=None)
    with pytest.raises(CommandError, match="failed: 3 of 3 rows errored"):
        call_command("run_suite", "Bad", "--project", "support", "--inline", stdout=StringIO())
