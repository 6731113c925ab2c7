"""Source pulls: 1,000,000 Delta rows and an MLflow experiment's traces at 5% sampling, through the real pull.

Target (issue 14 section 6): the Delta scan >= 100,000 rows/s, memory flat. A project with a source of
each kind and one rule, ``percent: 5``; each source is pulled by ``source_pull_execute`` in this
process, as a worker runs it (batches of SOURCES_BATCH_SIZE, each committed with its watermark to the
bench PostgreSQL database). Printed per source: rows scanned per second (the whole pull, and the time
spent in the reader alone), items ingested per second, RSS at 10% and 100% of the rows and the peak;
and, for the limit, a bare pyarrow scan of the same Delta files in the same run.

The Delta table (10 appends) and the MLflow store (SQLite, traces logged with ``mlflow.start_span``)
are written by child processes, so their memory does not count. Logging a trace through MLflow (a
root span and a retriever span, SQLite store) took about 0.2 s on the shared 2-core bench machine,
so the trace count defaults to 2,000 (``--traces 100000`` for the issue's figure: hours of logging).
``--rows N`` (BENCH_SOURCE_ROWS), ``--traces N`` (BENCH_SOURCE_TRACES), ``--percent P``;
``--only delta|mlflow``. Prints figures, never asserts.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ["CELERY_BROKER_URL"] = "memory://"  # pulls run here; queued task messages go nowhere
os.environ.setdefault("SOURCES_PULL_MAX_SECONDS", "7200")  # one pull reads everything

from bench.common import ROOT, ensure_database, print_table, setup_django
from bench.source_delta_scan import MAPPING, METADATA, VERSIONS, bare_scan, rss_mb

SLUG = "bench-pulls"
EXPERIMENT = "bench-pulls"


def write_traces(uri: str, artifacts: str, count: int) -> None:
    """``count`` finished traces in experiment ``EXPERIMENT`` of the MLflow store at ``uri`` (child process)."""
    import random

    os.environ["MLFLOW_ENABLE_ASYNC_TRACE_LOGGING"] = "false"  # written as the span ends
    import logging

    import mlflow
    from mlflow.entities import Document, SpanType

    from bench.common import WORDS

    logging.getLogger("mlflow").setLevel(logging.ERROR)
    mlflow.set_tracking_uri(uri)
    experiment_id = mlflow.create_experiment(EXPERIMENT, artifact_location=Path(artifacts).as_uri())
    mlflow.set_experiment(experiment_id=experiment_id)
    rnd = random.Random(11)
    texts = [" ".join(rnd.choice(WORDS) for _ in range(rnd.randint(8, 40))) for _ in range(500)]
    for n in range(count):
        with mlflow.start_span(name="rag", span_type=SpanType.CHAIN) as root:
            root.set_inputs({"messages": [{"role": "user", "content": texts[n % 500]}]})
            with mlflow.start_span(name="retrieve", span_type=SpanType.RETRIEVER) as retriever:
                retriever.set_inputs({"query": texts[n % 500]})
                retriever.set_outputs(
                    [Document(page_content=texts[(n + k) % 500], metadata={"doc_uri": f"doc-{k}"}) for k in range(2)]
                )
            root.set_outputs({"response": texts[(n * 7) % 500]})


class Probe:
    """Wraps a source kind's reader: time inside it, rows scanned, RSS as the rows go by."""

    def __init__(self, reader: Any) -> None:
        self.reader, self.seconds, self.scanned, self.samples = reader, 0.0, 0, [(0, rss_mb())]

    def __call__(self, source: Any, watermark: dict[str, Any], limit: int) -> Any:
        started = time.perf_counter()
        batch = self.reader(source, watermark, limit)
        self.seconds += time.perf_counter() - started
        self.scanned += batch.scanned
        self.samples.append((self.scanned, rss_mb()))
        return batch

    def rss_at(self, share: float) -> float:
        target = self.scanned * share
        return next((mb for n, mb in self.samples if n >= target), self.samples[-1][1])


def pull(source: Any) -> tuple[Any, Probe, float]:
    from pipelines.sources import readers
    from pipelines.sources.pulls import source_pull_execute, source_pull_request

    probe = Probe(readers.READERS[source.kind])
    readers.READERS[source.kind] = probe
    try:
        started = time.perf_counter()
        request = source_pull_request(source=source, actor=None, enqueue=False)
        done = source_pull_execute(pull_id=request.pk)
        seconds = time.perf_counter() - started
    finally:
        readers.READERS[source.kind] = probe.reader
    return done, probe, seconds


def rows_for(label: str, done: Any, probe: Probe, seconds: float, target: str) -> list[tuple[str, str, str]]:
    return [
        (f"{label}: rows scanned", f"{done.scanned:,}", f"{done.status}; {done.batches} batches; taken {done.taken:,}"),
        (f"{label}: scan rate (pull)", f"{done.scanned / seconds:,.0f} rows/s", f"{seconds:.1f} s, reads + ingest"),
        (f"{label}: scan rate (reader)", f"{probe.scanned / probe.seconds:,.0f} rows/s", target),
        (f"{label}: items ingested", f"{done.created / seconds:,.0f} items/s", f"{done.created:,} items created"),
        (f"{label}: RSS at 10%", f"{probe.rss_at(0.1):,.0f} MB", "flat: about the same as at 100%"),
        (f"{label}: RSS at 100%", f"{probe.rss_at(1.0):,.0f} MB", ""),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=int(os.environ.get("BENCH_SOURCE_ROWS", "1000000")))
    parser.add_argument("--traces", type=int, default=int(os.environ.get("BENCH_SOURCE_TRACES", "2000")))
    parser.add_argument("--percent", type=float, default=5.0)
    parser.add_argument("--only", choices=["delta", "mlflow"])
    parser.add_argument("--write-traces", nargs=2, help=argparse.SUPPRESS)  # child: store uri, artifact folder
    args = parser.parse_args()
    if args.write_traces:
        write_traces(*args.write_traces, args.traces)
        return

    with tempfile.TemporaryDirectory(prefix="bench-source-pulls-") as folder:
        table = str(Path(folder) / "request_log")
        store = f"sqlite:///{Path(folder) / 'mlflow.db'}"
        os.environ["MLFLOW_TRACKING_URI"] = store
        os.environ["MLFLOW_ARTIFACT_ROOT"] = str(Path(folder) / "artifacts")
        setup_django()
        ensure_database()
        notes = []
        if args.only != "mlflow":
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "bench.source_delta_scan", "--rows", str(args.rows), "--write", table],
                cwd=ROOT,
                check=True,
            )
            notes.append(
                f"wrote {args.rows:,} Delta rows in {VERSIONS} versions in {time.perf_counter() - started:.0f} s"
            )
        if args.only != "delta":
            started = time.perf_counter()
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "bench.source_pulls",
                    "--traces",
                    str(args.traces),
                    "--write-traces",
                    store,
                    str(Path(folder) / "traces"),
                ],
                cwd=ROOT,
                check=True,
            )
            notes.append(f"logged {args.traces:,} MLflow traces in {time.perf_counter() - started:.0f} s")
        print("  (" + "; ".join(notes) + ")", flush=True)

        from django.conf import settings

        from bench.fixtures import bench_project
        from pipelines.sources.services import source_create

        project = bench_project(SLUG, reset=True)
        rules = [{"kind": "percent", "percent": args.percent}]
        rows: list[tuple[str, str, str]] = []
        baseline = rss_mb()
        if args.only != "mlflow":
            delta = source_create(
                project=project,
                values={
                    "name": "request log",
                    "kind": "delta_table",
                    "settings": {"uri": table},
                    "column_mapping": {**MAPPING, "metadata": METADATA},
                    "rules": rules,
                },
                actor=None,
            )
            done, probe, seconds = pull(delta)
            rows += rows_for("Delta", done, probe, seconds, "target >= 100,000 rows/s")
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            rows.append(("Delta: peak RSS", f"{peak:,.0f} MB", "whole process, up to the end of the Delta pull"))
            bare_rows, bare_seconds, _ = bare_scan(table)
            rows.append(
                ("Delta: machine limit", f"{bare_rows / bare_seconds:,.0f} rows/s", "bare pyarrow scan to dicts")
            )
        if args.only != "delta":
            traces = source_create(
                project=project,
                values={
                    "name": "traces",
                    "kind": "mlflow_traces",
                    "settings": {"experiment": EXPERIMENT},
                    "rules": rules,
                },
                actor=None,
            )
            done, probe, seconds = pull(traces)
            rows += rows_for("MLflow", done, probe, seconds, "")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rows += [
            ("RSS before pulls", f"{baseline:,.0f} MB", ""),
            ("peak RSS", f"{peak:,.0f} MB", "whole process, with the bare scan (pyarrow's dataset scanner)"),
            (
                "batch size",
                f"{settings.SOURCES_BATCH_SIZE}",
                f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs",
            ),
        ]
    print_table(f"Source pulls at {args.percent:g}% sampling", rows)


if __name__ == "__main__":
    main()
