"""``manage.py run_suite SUITE --project SLUG [--version N] [--dataset k=v,...] [--target ...] [--wait]``.

Starts a run of a suite (by name or id) the same way the UI and the API do: the run's chunks go
to the Celery workers. With ``--wait`` a progress bar follows the Run row until the run finishes,
then the metrics are printed; the exit status is non-zero when the run failed or was cancelled.
``--inline`` executes the chunks in this process instead (no worker needed; handy on a laptop).

Datasets: ``--dataset model_version=2,source=demo,metadata.channel=chat,curated_only=true,ids=1;2``
(``--model-version 2`` is a shortcut); ``--dataset-version ID`` runs over a curated dataset version
(its items in row order, scored against the expectations it snapshotted; ``--dataset`` then narrows
it). Targets: ``stored`` (default), ``models:/name/3`` or
``endpoint:NAME``.
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from evaluations.models import Run, RunChunk, Suite
from evaluations.selectors import run_metrics, suite_version_get
from evaluations.services.chunks import run_chunk_execute
from evaluations.services.datasets import dataset_parse
from evaluations.services.runs import run_start
from pipelines.selectors.assessments import dataset_version_for_run
from reviewapp.errors import ValidationFailed
from reviewapp.selectors.projects import project_get_by_slug


def target_parse(text: str) -> dict[str, Any]:
    text = (text or "stored").strip()
    if text == "stored":
        return {"kind": "stored"}
    if text.startswith("models:/"):
        return {"kind": "mlflow_model", "model_uri": text}
    if text.startswith("endpoint:"):
        return {"kind": "endpoint", "endpoint": text.removeprefix("endpoint:")}
    raise CommandError(f"--target {text!r}: use stored, models:/NAME/VERSION or endpoint:NAME.")


class Command(BaseCommand):
    help = "Run an evaluation suite over a project's items (on the Celery workers, or --inline)."

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        # ``--version N`` is the suite version here; Django's own --version (its release) makes way.
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("suite", help="The suite's name or id.")
        parser.add_argument("--project", required=True, help="The project's slug.")
        parser.add_argument("--version", type=int, default=None, help="Suite version (default: the latest).")
        parser.add_argument("--dataset", default="", help="Filters: model_version=2,source=demo,metadata.k=v,...")
        parser.add_argument("--model-version", default=None, help="Shortcut for --dataset model_version=...")
        parser.add_argument(
            "--dataset-version", type=int, default=None, help="A curated dataset version's id: run over its rows."
        )
        parser.add_argument("--target", default="stored", help="stored | models:/NAME/VERSION | endpoint:NAME")
        parser.add_argument("--wait", action="store_true", help="Follow the run with a progress bar until it ends.")
        parser.add_argument("--inline", action="store_true", help="Execute the chunks here instead of on workers.")
        parser.add_argument("--timeout", type=float, default=0, help="With --wait: give up after this many seconds.")

    def handle(self, *args: Any, **options: Any) -> None:
        project = project_get_by_slug(slug=options["project"])
        if project is None:
            raise CommandError(f"No project {options['project']!r}.")
        suites = Suite.objects.filter(project=project)
        ref = options["suite"]
        suite = (suites.filter(pk=int(ref)).first() if ref.isdigit() else None) or suites.filter(name=ref).first()
        if suite is None:
            names = ", ".join(suites.values_list("name", flat=True)) or "none"
            raise CommandError(f"No suite {ref!r} in {project.slug} (suites: {names}).")
        try:
            version = suite_version_get(suite=suite, number=options["version"])
        except Exception as exc:
            raise CommandError(str(exc)) from None
        try:
            dataset = dataset_parse(options["dataset"])
            if options["model_version"]:
                dataset["model_version"] = options["model_version"]
            snapshot = None
            if options["dataset_version"] is not None:
                snapshot = dataset_version_for_run(project=project, pk=options["dataset_version"])
            run = run_start(
                project=project,
                suite_version=version,
                dataset=dataset,
                dataset_version=snapshot,
                target=target_parse(options["target"]),
                actor=None,
            )
        except ValidationFailed as exc:
            details = "; ".join(f"{e['field']}: {e['message']}" for e in exc.errors)
            raise CommandError(f"{exc.message} {details}") from None
        over = f" of dataset {run.dataset_version_label}" if run.dataset_version else ""
        self.stdout.write(
            f"Run {run.pk}: {suite.name} v{version.number} over {run.items_total} items{over} "
            f"in {run.chunks_total} chunks."
        )
        if options["inline"]:
            for chunk_id in RunChunk.objects.filter(run=run).order_by("index").values_list("pk", flat=True):
                run_chunk_execute(chunk_id=chunk_id)
        if options["wait"] or options["inline"]:
            run = self._follow(run, timeout=options["timeout"])
            self._report(run)
            if run.status != Run.Status.SUCCEEDED:
                raise CommandError(f"Run {run.pk} {run.status}: {run.error}")

    def _follow(self, run: Run, *, timeout: float) -> Run:
        started = time.monotonic()
        with tqdm(total=run.items_total, unit="item", desc=f"run {run.pk}", disable=None) as bar:
            while True:
                run.refresh_from_db()
                bar.update(min(run.rows_done, run.items_total) - bar.n)
                bar.set_postfix(status=run.status, errored=run.rows_errored, refresh=False)
                if run.is_finished:
                    return run
                if timeout and time.monotonic() - started > timeout:
                    raise CommandError(f"Run {run.pk} still {run.status} after {timeout:.0f} s (it goes on).")
                time.sleep(0.5)

    def _report(self, run: Run) -> None:
        seconds = run.duration_seconds or 0
        self.stdout.write(
            f"Run {run.pk} {run.status} in {seconds:.1f} s: {run.rows_done} items, {run.rows_errored} errored."
        )
        for name, m in run_metrics(run=run).items():
            mean = "-" if m["mean"] is None else f"{m['mean']:.3f}"
            rate = "-" if m["pass_rate"] is None else f"{m['pass_rate']:.0%}"
            self.stdout.write(f"  {name:<26} mean {mean:>8}  pass {rate:>5}  errors {m['n_errors']}")
